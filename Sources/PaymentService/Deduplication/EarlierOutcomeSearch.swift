import Foundation
import Logging
import RabbitMQ
import Synchronization

/// Looks in the outcomes stream (`payment-outcomes-log`) for an outcome of one payment published since a time: what
/// an instance does when it takes over the expired claim of an instance that died, which may have published the
/// outcome just before it could record the settlement.
struct EarlierOutcomeSearch: Sendable {
    let stream: String
    let consumeConnection: AMQPConnection
    let publishChannel: ConfirmedChannel
    let logger: Logger

    /// How far before the expired claim the search starts: stream timestamps are per chunk, in whole seconds.
    static let lookBehind: TimeInterval = 30

    /// The outcome of `paymentID` published at or after `since` (milliseconds since 1970), if any; reads the stream
    /// from a little before `since` up to now.
    ///
    /// - Throws: ``AMQPError`` when the stream cannot be read.
    func outcome(of paymentID: String, since: Int64) async throws -> PaymentOutcome.Kind? {
        let sinceDate = Date(timeIntervalSince1970: TimeInterval(since) / 1000)
        // An outcome carries its publish time in whole seconds, and clocks of instances differ a little.
        let earliest = sinceDate.addingTimeInterval(-2)
        let found = Mutex<PaymentOutcome.Kind?>(nil)
        let channel = try await consumeConnection.openChannel()
        let reader = StreamLog(
            name: stream, consumeChannel: channel, publishChannel: publishChannel, logger: logger,
            onEntry: { entry in
                guard let timestamp = entry.properties.timestamp, timestamp >= earliest,
                    let outcome = try? JSONDecoder().decode(PaymentOutcome.self, from: entry.body),
                    outcome.paymentId == paymentID
                else { return }
                found.withLock { $0 = outcome.outcome }
            })
        var reading: Task<Void, any Error>?
        do {
            reading = try await reader.start(at: .timestamp(sinceDate.addingTimeInterval(-Self.lookBehind)))
            try await reader.sync()
        } catch {
            // The reader may still be reading, and acknowledging entries: it ends before its channel closes.
            await Self.end(reader, reading, on: channel)
            throw error
        }
        await Self.end(reader, reading, on: channel)
        return found.withLock { $0 }
    }

    /// Stops a reader and closes its channel once its reading has ended: closing the channel before then could
    /// race its last acknowledgement. A cancel the broker does not answer in 5 s must not hold the payment's
    /// handler: the reading task is cancelled then, which ends it.
    private static func end(_ reader: StreamLog, _ reading: Task<Void, any Error>?, on channel: AMQPChannel) async {
        await reader.stop(waitingAtMost: .seconds(5))
        reading?.cancel()
        _ = try? await reading?.value
        try? await channel.close()
    }
}

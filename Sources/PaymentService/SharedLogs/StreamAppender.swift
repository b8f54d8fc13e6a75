import Foundation
import RabbitMQ
import Synchronization

/// Appends records to a stream many per entry: records handed in while entries are on their way are gathered into the
/// next one. Under load an entry carries hundreds of records, so that readers go through history thousands of times
/// faster than one entry per record; alone, a record goes out at once.
///
/// Up to `maxEntriesInFlight` entries await their confirms at once: waiting for each confirm before sending the next
/// entry would add a whole confirm round trip to every append under load.
///
/// ``append(_:)`` returns once the entry that carries the records is confirmed by the broker, or throws
/// `CancellationError` when its task is cancelled first.
final class StreamAppender<Record: Sendable>: Sendable {
    private struct Pending {
        var records: [Record]
        /// Settled once the entry carrying the records is confirmed; the caller may stop waiting before that.
        var done: OneShotResult<Void>
    }

    private struct State {
        var pending: [Pending] = []
        var flushing = false
    }

    private let stream: String
    private let channel: ConfirmedChannel
    private let maxRecordsPerEntry: Int
    private let maxEntriesInFlight: Int
    private let encode: @Sendable ([Record]) -> (Data, AMQPProperties)
    private let state = Mutex(State())

    /// Creates an appender.
    ///
    /// - Parameters:
    ///   - stream: The stream, published to through the default exchange.
    ///   - channel: A channel in confirm mode.
    ///   - maxRecordsPerEntry: The most records one entry carries.
    ///   - maxEntriesInFlight: The most entries awaiting their confirms.
    ///   - encode: Makes one entry of records.
    init(
        stream: String, channel: ConfirmedChannel, maxRecordsPerEntry: Int = 2000, maxEntriesInFlight: Int = 4,
        encode: @escaping @Sendable ([Record]) -> (Data, AMQPProperties)
    ) {
        self.stream = stream
        self.channel = channel
        self.maxRecordsPerEntry = maxRecordsPerEntry
        self.maxEntriesInFlight = maxEntriesInFlight
        self.encode = encode
    }

    /// Appends records; returns once the broker confirmed the entry that carries them.
    ///
    /// - Throws: the publish's failure (``AMQPError``), shared by every record of that entry.
    func append(_ records: [Record]) async throws {
        let done = OneShotResult<Void>()
        let startFlushing = state.withLock { state -> Bool in
            state.pending.append(Pending(records: records, done: done))
            guard !state.flushing else { return false }
            state.flushing = true
            return true
        }
        if startFlushing {
            Task { await self.flush() }
        }
        // A cancelled caller stops waiting; its records still go out with their entry.
        try await done.wait()
    }

    /// Publishes entries until nothing is pending or in flight. One flush runs at a time, on one channel, so entries
    /// keep the order of the calls.
    private func flush() async {
        var inFlight: [(confirmation: ConfirmedChannel.Pending, batch: [Pending])] = []
        while true {
            let batch = inFlight.count < maxEntriesInFlight ? takeBatch(endingFlushIfIdle: inFlight.isEmpty) : []
            if batch.isEmpty {
                // Nothing to send now (or no room): settle the oldest entry, then look again; with nothing in
                // flight either, `takeBatch` has ended the flush.
                guard !inFlight.isEmpty else { return }
                let oldest = inFlight.removeFirst()
                await settle(oldest.batch, confirmation: oldest.confirmation)
                continue
            }
            let (body, properties) = encode(batch.flatMap(\.records))
            do {
                let confirmation = try await channel.startPublish(body, routingKey: stream, properties: properties)
                inFlight.append((confirmation, batch))
            } catch {
                for item in batch { item.done.resume(throwing: error) }
            }
        }
    }

    /// Takes the next entry's worth of pending records; when there are none and `endingFlushIfIdle`, ends the
    /// flush under the same lock, so that the next append starts a new one.
    private func takeBatch(endingFlushIfIdle: Bool) -> [Pending] {
        state.withLock { state -> [Pending] in
            guard !state.pending.isEmpty else {
                if endingFlushIfIdle { state.flushing = false }
                return []
            }
            var taken = 0
            var count = 0
            while taken < state.pending.count
                && (taken == 0 || count + state.pending[taken].records.count <= maxRecordsPerEntry)
            {
                count += state.pending[taken].records.count
                taken += 1
            }
            let batch = Array(state.pending.prefix(taken))
            state.pending.removeFirst(taken)
            return batch
        }
    }

    /// Waits for an entry's confirm and answers every append it carried.
    private func settle(_ batch: [Pending], confirmation: ConfirmedChannel.Pending) async {
        do {
            // Bounded: a confirm lost with a stream's leader would otherwise stall every later entry behind this one.
            try await channel.wait(for: confirmation)
            for item in batch { item.done.resume() }
        } catch {
            for item in batch { item.done.resume(throwing: error) }
        }
    }
}

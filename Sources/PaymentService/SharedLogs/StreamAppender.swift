import Foundation
import RabbitMQ
import Synchronization

/// Appends records to a stream many per entry: records handed in while an entry is on its way are gathered into the
/// next one. Under load an entry carries hundreds of records, so that readers go through history thousands of times
/// faster than one entry per record; alone, a record goes out at once.
///
/// ``append(_:)`` returns once the entry that carries the records is confirmed by the broker.
final class StreamAppender<Record: Sendable>: Sendable {
    private struct Pending {
        var records: [Record]
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var pending: [Pending] = []
        var pendingRecords = 0
        var flushing = false
    }

    private let stream: String
    private let channel: AMQPChannel
    private let maxRecordsPerEntry: Int
    private let encode: @Sendable ([Record]) -> (Data, AMQPProperties)
    private let state = Mutex(State())

    /// Creates an appender.
    ///
    /// - Parameters:
    ///   - stream: The stream, published to through the default exchange.
    ///   - channel: A channel in confirm mode.
    ///   - maxRecordsPerEntry: The most records one entry carries.
    ///   - encode: Makes one entry of records.
    init(
        stream: String, channel: AMQPChannel, maxRecordsPerEntry: Int = 2000,
        encode: @escaping @Sendable ([Record]) -> (Data, AMQPProperties)
    ) {
        self.stream = stream
        self.channel = channel
        self.maxRecordsPerEntry = maxRecordsPerEntry
        self.encode = encode
    }

    /// Appends records; returns once the broker confirmed the entry that carries them.
    ///
    /// - Throws: the publish's failure (``AMQPError``), shared by every record of that entry.
    func append(_ records: [Record]) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let startFlushing = state.withLock { state -> Bool in
                state.pending.append(Pending(records: records, continuation: continuation))
                state.pendingRecords += records.count
                guard !state.flushing else { return false }
                state.flushing = true
                return true
            }
            if startFlushing {
                Task { await self.flush() }
            }
        }
    }

    /// Publishes entries until nothing is pending; one flush runs at a time, so entries keep the order of calls.
    private func flush() async {
        while true {
            let batch = state.withLock { state -> [Pending] in
                guard !state.pending.isEmpty else {
                    state.flushing = false
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
                state.pendingRecords -= count
                return batch
            }
            guard !batch.isEmpty else { return }
            let (body, properties) = encode(batch.flatMap(\.records))
            do {
                try await channel.publish(body, routingKey: stream, properties: properties, mandatory: true)
                for item in batch { item.continuation.resume() }
            } catch {
                for item in batch { item.continuation.resume(throwing: error) }
            }
        }
    }
}

import Foundation
import Logging
import RabbitMQ
import Synchronization

/// A RabbitMQ stream used as a shared, durable log that every instance reads from a chosen offset and then follows.
///
/// The service keeps two: the client registrations (read from the start) and the payment claims (read from the
/// start of the dedupe window). RabbitMQ is then the only store: an instance that starts (or restarts) replays the log
/// and knows what every other instance knew.
///
/// "Caught up" has a precise meaning: ``sync()`` appends a marker of its own to the stream and returns once the
/// follower has read it, so every entry appended before the call has been seen. That is what an instance waits
/// for before it consumes payments, and what it does before trusting its ledger about a redelivered payment.
final class StreamLog: Sendable {
    /// The stream's name.
    let name: String
    private let consumeChannel: AMQPChannel
    private let publishChannel: ConfirmedChannel
    private let logger: Logger
    private let onEntry: @Sendable (AMQPDelivery) -> Void
    private let state = Mutex(SyncState())
    private let consumer = Mutex<AMQPConsumer?>(nil)
    private let stopped = Mutex(false)
    private let reopen: (@Sendable () async throws -> AMQPChannel)?
    /// How long a sync marker may take to be read back before the syncs waiting for it fail (retriably).
    private let markerTimeout: Duration

    /// The default ``markerTimeout``: far above a healthy round trip (milliseconds) and a stream leader's election
    /// (a second or two), and above the 5 s a publish waits for its confirm.
    static let defaultMarkerTimeout = Duration.seconds(15)

    /// Marks sync markers, which readers skip.
    static let markerHeader = "log-marker"
    /// Names the format of an entry's body (``ClaimRecordCodec/format``, ``RegistrationBatchCodec/format``).
    static let formatHeader = "log-format"

    private struct SyncState {
        /// The marker on its way through the stream, and who waits for it.
        var marker: String?
        var markerWaiters = WaiterList<Void>()
        /// Callers that came while a marker was already on its way: they need a later one.
        var nextWaiters = WaiterList<Void>()
        /// Names sync waiters across both lists (the next list becomes the current one).
        var lastToken: UInt64 = 0
        var failure: AMQPError?
    }

    /// Creates a follower; nothing is read until ``start(prefetch:)``.
    ///
    /// - Parameters:
    ///   - reopen: Opens a new channel to consume on when the broker ends the consumer (a node lost on a cluster);
    ///     nil: such an end fails the follower.
    ///   - markerTimeout: How long a sync marker may take to come back (see ``sync()``).
    ///   - onEntry: Called on every entry (markers excluded), in stream order, from one task.
    init(
        name: String, consumeChannel: AMQPChannel, publishChannel: ConfirmedChannel, logger: Logger,
        reopen: (@Sendable () async throws -> AMQPChannel)? = nil, markerTimeout: Duration = defaultMarkerTimeout,
        onEntry: @escaping @Sendable (AMQPDelivery) -> Void
    ) {
        self.reopen = reopen
        self.markerTimeout = markerTimeout
        self.name = name
        self.consumeChannel = consumeChannel
        self.publishChannel = publishChannel
        self.logger = logger
        self.onEntry = onEntry
    }

    /// Declares the stream (durable; `maxAge` limits retention, e.g. `7D`).
    static func declare(_ name: String, maxAge: String?, on channel: AMQPChannel) async throws {
        var arguments: AMQPTable = ["x-queue-type": "stream"]
        if let maxAge { arguments["x-max-age"] = .string(maxAge) }
        _ = try await channel.declareQueue(name, durable: true, arguments: arguments)
    }

    /// Starts reading at `offset` (`"first"`, or a `.timestamp` to start from the entries written since then);
    /// returns the task that reads until the consumer ends.
    ///
    /// The prefetch counts entries, and an entry may carry thousands of records: 64 keep the reader busy without
    /// the broker pushing a whole history into memory at once.
    ///
    /// On a cluster the broker may end the consumer while a node is lost: the connection's recovery cannot start
    /// it again on a node whose replica of the stream is not running yet (406 "does not have a replica on the local
    /// node"), or the stream's member restarts under it. With `reopen`, such an end is not the follower's end: it
    /// consumes again on a new channel from the entry after the last one read, until ``restartLimit`` has passed
    /// without success.
    func start(at offset: AMQPFieldValue = "first", prefetch: UInt16 = 16) async throws -> Task<Void, any Error> {
        let first = try await consume(on: consumeChannel, at: offset, prefetch: prefetch)
        return Task {
            // A consumer recovered after a lost connection starts again at `offset`: entries already read are
            // skipped by their stream offset, so every entry is handled once.
            var lastOffset: Int64 = -1
            var consumer = first
            var failingSince: ContinuousClock.Instant?
            while true {
                do {
                    try await read(consumer, after: &lastOffset, failingSince: &failingSince)
                    // Ended without an error: stopped, or cancelled by the broker (which ends some consumers
                    // quietly when a stream's member restarts).
                    if stopped.withLock({ $0 }) || Task.isCancelled { return }
                    throw AMQPError(.consumerCancelledByBroker, "the broker ended the consumer")
                } catch {
                    let failure = error as? AMQPError ?? AMQPError(.libraryError, "\(error)")
                    guard let next = try await restart(after: failure, from: lastOffset, at: offset,
                        prefetch: prefetch, failingSince: &failingSince)
                    else {
                        fail(AMQPError(failure.code, "following stream \(name) failed: \(failure.message)"))
                        throw error
                    }
                    consumer = next
                }
            }
        }
    }

    /// How long a follower keeps trying to consume again before it fails for good.
    static let restartLimit = Duration.seconds(120)

    private func consume(on channel: AMQPChannel, at offset: AMQPFieldValue, prefetch: UInt16) async throws
        -> AMQPConsumer
    {
        // Streams need a prefetch and manual acknowledgements over AMQP 0-9-1; the acks only grant credit.
        try await channel.setPrefetch(prefetch)
        let consumer = try await channel.consume(queue: name, arguments: ["x-stream-offset": offset])
        self.consumer.withLock { $0 = consumer }
        return consumer
    }

    private func read(_ consumer: AMQPConsumer, after lastOffset: inout Int64, failingSince: inout ContinuousClock.Instant?)
        async throws
    {
        for try await delivery in consumer {
            failingSince = nil
            if let entryOffset = delivery.properties.headers?["x-stream-offset"]?.intValue.map(Int64.init) {
                if entryOffset <= lastOffset {
                    try await delivery.ack()
                    continue
                }
                lastOffset = entryOffset
            }
            if let marker = delivery.properties.headers?[Self.markerHeader]?.stringValue {
                markerSeen(marker)
            } else {
                onEntry(delivery)
            }
            try await delivery.ack()
        }
    }

    /// A new consumer after `failure`, or nil when the follower must fail: it has no `reopen`, was stopped, the
    /// failure is not one a node loss causes, or consuming again kept failing for ``restartLimit``.
    private func restart(
        after failure: AMQPError, from lastOffset: Int64, at offset: AMQPFieldValue, prefetch: UInt16,
        failingSince: inout ContinuousClock.Instant?
    ) async throws -> AMQPConsumer? {
        guard let reopen, !stopped.withLock({ $0 }), Task.isCancelled == false,
            failure.isRetriable || [.channelClosedByBroker, .consumerCancelledByBroker, .channelClosed].contains(failure.code)
        else { return nil }
        let since = failingSince ?? .now
        failingSince = since
        // Syncs waiting now would wait for a marker the old consumer may never read: they fail, retriably.
        abandonSync(AMQPError(.connectionLost, "following stream \(name) is restarting: \(failure.message)"))
        while ContinuousClock.now - since < Self.restartLimit {
            logger.warning(
                "stream consumer ended; consuming again", metadata: ["stream": "\(name)", "error": "\(failure)"])
            try await Task.sleep(for: .seconds(1))
            if stopped.withLock({ $0 }) { return nil }
            do {
                // From the entry after the last one read; entries read already are skipped anyway.
                let resume: AMQPFieldValue = lastOffset >= 0 ? .int64(lastOffset + 1) : offset
                return try await consume(on: try await reopen(), at: resume, prefetch: prefetch)
            } catch {
                logger.warning("consuming stream again failed", metadata: ["stream": "\(name)", "error": "\(error)"])
            }
        }
        return nil
    }

    /// Stops following: the reading task ends.
    func stop() async {
        stopped.withLock { $0 = true }
        let consumer = self.consumer.withLock { $0 }
        try? await consumer?.cancel()
    }

    /// ``stop()``, waiting at most `limit` for the broker to answer the consumer's cancel: a broker that never
    /// answers must not hold whoever stops it. Its owner then cancels the reading task, which ends its reading.
    func stop(waitingAtMost limit: Duration) async {
        await withTaskGroup(of: Void.self) { race in
            race.addTask { await self.stop() }
            race.addTask { try? await Task.sleep(for: limit) }
            await race.next()
            race.cancelAll()
        }
    }

    /// Appends an entry to the stream and waits for the broker's confirm.
    func append(_ body: Data, properties: AMQPProperties) async throws {
        try await publishChannel.publish(body, routingKey: name, properties: properties)
    }

    /// Returns once every entry appended before the call has been read.
    ///
    /// Concurrent callers share markers: one marker answers everyone who asked before it was appended.
    ///
    /// - Throws: The follower's failure, the marker's failed publish (retriable), `AMQPError` `timeout` (retriable)
    ///   when the marker is not read back within the marker timeout, or `CancellationError` when the task is
    ///   cancelled first.
    func sync() async throws {
        let token = state.withLock { state in
            state.lastToken += 1
            return state.lastToken
        }
        try await WaiterList.wait(token: token) { continuation in
            let (immediate, newMarker) = state.withLock { state -> (Result<Void, any Error>?, String?) in
                if let failure = state.failure { return (.failure(failure), nil) }
                guard state.marker == nil else {
                    return (state.nextWaiters.enqueue(continuation, token: token) ? nil : .failure(CancellationError()), nil)
                }
                guard state.markerWaiters.enqueue(continuation, token: token) else {
                    return (.failure(CancellationError()), nil)
                }
                let marker = UUID().uuidString
                state.marker = marker
                return (nil, marker)
            }
            if let newMarker { appendMarker(newMarker) }
            return immediate
        } cancel: { token in
            // The marker stays on its way: it answers whoever else waits for it.
            self.state.withLock { $0.markerWaiters.remove(token: token) ?? $0.nextWaiters.remove(token: token) }
        }
    }

    private func appendMarker(_ marker: String) {
        Task {
            do {
                try await append(Data(), properties: AMQPProperties(headers: [Self.markerHeader: .string(marker)]))
            } catch {
                // Those waiting now fail (retriably, if the connection is recovering); later syncs try again.
                abandonSync(error as? AMQPError ?? AMQPError(.libraryError, "\(error)"))
            }
        }
        // A confirmed marker can still never come back: on RabbitMQ 3.10.8, a stream channel whose confirm was lost
        // with the stream's leader confirms later publishes without storing them. Without a bound, that marker
        // would keep every sync of this follower waiting for ever, and the handlers behind them with it.
        Task { [markerTimeout, name] in
            try? await Task.sleep(for: markerTimeout)
            abandonSync(
                AMQPError(.timeout, "the sync marker was not read back from stream \(name) within \(markerTimeout)"),
                ifStillWaitingFor: marker)
        }
    }

    private func abandonSync(_ error: AMQPError) {
        failWaiters(with: error, permanently: false)
    }

    /// Fails the syncs waiting now, as ``abandonSync(_:)`` does, if `marker` is still the one on its way.
    private func abandonSync(_ error: AMQPError, ifStillWaitingFor marker: String) {
        let waiters = state.withLock { state -> [WaiterList<Void>.Continuation] in
            guard state.marker == marker else { return [] }
            state.marker = nil
            return state.markerWaiters.removeAll() + state.nextWaiters.removeAll()
        }
        guard !waiters.isEmpty else { return }
        logger.warning("stream sync marker lost; the syncs waiting for it fail", metadata: ["stream": "\(name)"])
        for waiter in waiters { waiter.resume(throwing: error) }
    }

    private func markerSeen(_ marker: String) {
        let (waiters, next) = state.withLock { state -> ([WaiterList<Void>.Continuation], String?) in
            guard state.marker == marker else { return ([], nil) }
            let waiters = state.markerWaiters.removeAll()
            state.markerWaiters = state.nextWaiters
            state.nextWaiters = WaiterList()
            state.marker = state.markerWaiters.isEmpty ? nil : UUID().uuidString
            return (waiters, state.marker)
        }
        for waiter in waiters { waiter.resume() }
        if let next { appendMarker(next) }
    }

    private func fail(_ error: AMQPError) {
        failWaiters(with: error, permanently: true)
    }

    /// Fails every sync waiting now; `permanently` also fails every later one (the follower is gone).
    private func failWaiters(with error: AMQPError, permanently: Bool) {
        let waiters = state.withLock { state -> [WaiterList<Void>.Continuation] in
            if permanently { state.failure = error }
            let waiters = state.markerWaiters.removeAll() + state.nextWaiters.removeAll()
            state.marker = nil
            return waiters
        }
        for waiter in waiters { waiter.resume(throwing: error) }
    }
}

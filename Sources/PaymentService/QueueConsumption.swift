import Logging
import RabbitMQ
import Synchronization

/// One of the service's queues being consumed until the service stops: a channel with the service's prefetch and
/// one consumer on it, made anew on a new channel when a ``StarvedConsumerPolicy`` says it starves.
final class QueueConsumption: Sendable {
    /// The queue consumed.
    let queue: String
    private let connection: AMQPConnection
    private let prefetch: UInt16
    private let policy: StarvedConsumerPolicy
    private let logger: Logger
    private let current: Mutex<Subscription>
    private let stopped = Mutex(false)

    /// A channel, its consumer, and what the consumer has been doing.
    private struct Subscription: Sendable {
        let channel: AMQPChannel
        let consumer: AMQPConsumer
        let activity = ConsumerActivity()
    }

    /// Starts consuming `queue` on a new channel of `connection`.
    ///
    /// - Throws: What opening the channel, setting the prefetch or `basic.consume` throws.
    static func start(
        _ queue: String, on connection: AMQPConnection, prefetch: UInt16, policy: StarvedConsumerPolicy, logger: Logger
    ) async throws -> QueueConsumption {
        let first = try await subscribe(queue, on: connection, prefetch: prefetch)
        return QueueConsumption(
            queue: queue, connection: connection, prefetch: prefetch, policy: policy, logger: logger, first: first)
    }

    private init(
        queue: String, connection: AMQPConnection, prefetch: UInt16, policy: StarvedConsumerPolicy, logger: Logger,
        first: Subscription
    ) {
        self.queue = queue
        self.connection = connection
        self.prefetch = prefetch
        self.policy = policy
        self.logger = logger
        current = Mutex(first)
    }

    private static func subscribe(_ queue: String, on connection: AMQPConnection, prefetch: UInt16) async throws
        -> Subscription
    {
        let channel = try await connection.openChannel()
        try await channel.setPrefetch(prefetch)
        return Subscription(channel: channel, consumer: try await channel.consume(queue: queue))
    }

    /// How many of its deliveries are being handled now.
    var handlingCount: Int { current.withLock { $0.activity.handlingCount } }

    /// Stops taking deliveries: cancels the consumer, so that ``run(deliver:)`` returns once its handlers are done.
    func stop() async {
        stopped.withLock { $0 = true }
        try? await current.withLock { $0.consumer }.cancel()
    }

    /// Hands every delivery to `deliver`, each in a task of its own, until the consumer ends after ``stop()``;
    /// replaces a starving consumer meanwhile.
    ///
    /// - Throws: What `deliver` throws (which ends the consuming); the consumer's error when it ends with one; what
    ///   making a starving consumer anew throws when it is not retriable (a retriable failure, such as a recovering
    ///   connection, is tried again every second).
    func run(deliver: @escaping @Sendable (AMQPDelivery) async throws -> Void) async throws {
        while true {
            let subscription = current.withLock { $0 }
            let starved = try await withThrowingTaskGroup(of: Bool.self) { group in
                group.addTask {
                    try await Self.drain(subscription, deliver: deliver)
                    return false
                }
                if policy.idleLimit > .zero {
                    group.addTask { await self.watch(subscription.activity) }
                }
                let starved = try await group.next() ?? false
                // A starved consumer's reading ends here, without a word to the broker, which may not answer.
                group.cancelAll()
                try await group.waitForAll()
                return starved
            }
            guard starved, try await replace(subscription) else { return }
        }
    }

    /// Makes the consumer anew; false when the consumption stopped meanwhile.
    private func replace(_ starved: Subscription) async throws -> Bool {
        let idleFor = starved.activity.idleFor
        // Closing the channel hands back to the queue whatever the broker counts as delivered on it.
        Task { try? await starved.channel.close() }
        let fresh: Subscription
        while true {
            do {
                fresh = try await Self.subscribe(queue, on: connection, prefetch: prefetch)
                break
            } catch let error as AMQPError where error.isRetriable {
                // The connection is recovering: the queue has no consumer until it is back, so keep trying.
                logger.warning(
                    "could not make a starving consumer anew; trying again in 1 s",
                    metadata: ["queue": "\(queue)", "error": "\(error)"])
                guard !stopped.withLock({ $0 }) else { return false }
                try await Task.sleep(for: .seconds(1))
            }
        }
        let replaced = stopped.withLock { stopped -> Bool in
            guard !stopped else { return false }
            current.withLock { $0 = fresh }
            return true
        }
        guard replaced else {
            try? await fresh.channel.close()
            return false
        }
        logger.notice(
            "consumer made anew on a new channel: it had received nothing for a while, with nothing in hand",
            metadata: ["queue": "\(queue)", "idle": "\(idleFor)"])
        return true
    }

    /// Returns true once the consumer starves, false when cancelled first.
    private func watch(_ activity: ConsumerActivity) async -> Bool {
        while true {
            do {
                try await Task.sleep(for: policy.checkInterval)
            } catch {
                return false
            }
            let stopping = stopped.withLock { $0 }
            if policy.shouldReplace(idleFor: activity.idleFor, inHand: activity.handlingCount, stopping: stopping) {
                return true
            }
        }
    }

    /// Hands one consumer's deliveries to `deliver` until it ends; returns once their handlers are done.
    private static func drain(
        _ subscription: Subscription, deliver: @escaping @Sendable (AMQPDelivery) async throws -> Void
    ) async throws {
        let activity = subscription.activity
        // The prefetch bounds how many deliveries are in hand, so it also bounds these tasks; a discarding group
        // forgets each as it finishes, and a handler's error ends the consumer.
        try await withThrowingDiscardingTaskGroup { group in
            for try await delivery in subscription.consumer {
                activity.delivered()
                group.addTask { try await activity.inHand { try await deliver(delivery) } }
            }
        }
    }
}

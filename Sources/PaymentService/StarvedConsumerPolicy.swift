import Synchronization

/// When a consumer of a quorum queue that receives nothing is made anew, on a new channel.
///
/// Why: on the three-node test cluster (RabbitMQ 3.10.8), an instance whose own node stayed up once stopped receiving
/// payments after a queue's leader moved: the queue counted hundreds of messages as unacknowledged by it while it
/// held none, and they stayed so until its consumer ended (RabbitMQ reports the same behaviour as
/// rabbitmq-server#11228 and #15473). A consumer that has received nothing for ``idleLimit`` and has nothing in hand
/// costs nothing to replace, and replacing it hands such stranded messages back to the queue.
public struct StarvedConsumerPolicy: Sendable, Equatable {
    /// How long a consumer may receive nothing, with nothing in hand, before it is made anew; zero: never.
    public var idleLimit: Duration

    /// Creates a policy.
    ///
    /// - Parameter idleLimit: How long a consumer may receive nothing before it is made anew; zero: never.
    public init(idleLimit: Duration) {
        self.idleLimit = idleLimit
    }

    /// Never made anew.
    public static let off = StarvedConsumerPolicy(idleLimit: .zero)

    /// Whether to make the consumer anew now.
    ///
    /// - Parameters:
    ///   - idleFor: How long ago the consumer received its last delivery (or was made).
    ///   - inHand: How many of its deliveries are being handled.
    ///   - stopping: Whether the service is shutting down.
    /// - Returns: `true` when the limit is on and passed, nothing is in hand and the service is not stopping.
    public func shouldReplace(idleFor: Duration, inHand: Int, stopping: Bool) -> Bool {
        idleLimit > .zero && !stopping && inHand == 0 && idleFor >= idleLimit
    }

    /// How often to look: a quarter of the limit, so a starved consumer is replaced at most a quarter late.
    var checkInterval: Duration { idleLimit / 4 }
}

/// What one consumer has been doing, for ``StarvedConsumerPolicy``: its last delivery and its deliveries in hand.
final class ConsumerActivity: Sendable {
    private let lastDelivery = Mutex(ContinuousClock.now)
    private let handling = Atomic<Int>(0)

    /// Records a delivery.
    func delivered() {
        lastDelivery.withLock { $0 = .now }
    }

    /// Runs `body` counted as a delivery in hand.
    func inHand<T>(_ body: () async throws -> T) async rethrows -> T {
        handling.add(1, ordering: .relaxed)
        defer { handling.subtract(1, ordering: .relaxed) }
        return try await body()
    }

    /// How long ago the last delivery came.
    var idleFor: Duration { ContinuousClock.now - lastDelivery.withLock { $0 } }

    /// How many deliveries are being handled.
    var handlingCount: Int { handling.load(ordering: .relaxed) }
}

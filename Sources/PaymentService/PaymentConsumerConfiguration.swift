import RabbitMQ

/// How the payment consumer runs.
public struct PaymentConsumerConfiguration: Sendable {
    /// Where the broker is.
    public var connection: AMQPConfiguration
    /// When to retry payments of unknown clients, and when to park them.
    public var policy: RetryPolicy
    /// How delayed retries are made.
    public var delayMode: DelayMode
    /// The names of queues and exchanges.
    public var topology: PaymentTopology
    /// How payments of unknown clients are held for their registration before a delayed retry.
    public var hold: HoldPolicy
    /// The prefetch of each of the three consumers (default 1,000); it also bounds how many deliveries of a queue
    /// are handled at once, held ones included.
    public var prefetch: UInt16
    /// How often the counters are summed up in the log (default 30 s); zero turns the summary off.
    public var summaryInterval: Duration
    /// How long a settled payment makes later copies duplicates (default 1 h); also how much of the claims stream
    /// an instance reads at start. See ``PaymentConsumerConfiguration/defaultDedupeWindow``.
    public var dedupeWindow: Duration
    /// How long a claim holds a payment unless settled or released (default 10 s): how long copies wait for an
    /// instance that died holding a claim.
    public var claimLease: Duration
    /// How long a graceful shutdown waits for the running handlers (default 10 s); after it they are cancelled and
    /// their deliveries go back to their queues, as if the instance had crashed, so that a stop always ends.
    public var shutdownGrace: Duration
    /// When a consumer of a quorum queue that receives nothing is made anew (default: after 30 s with nothing in
    /// hand); classic queues never are.
    public var starvedConsumers: StarvedConsumerPolicy

    /// One hour: it covers a payment's whole retry schedule (55 s by default, at most `maxAttempts × maxDelay`), the
    /// redelivery of a delivery whose consumer died (RabbitMQ's consumer timeout is 30 min), and a producer's
    /// republish after a lost confirm, with room to spare; an hour of settlements costs about 100 bytes each.
    public static let defaultDedupeWindow = Duration.seconds(3600)
    /// The shortest claim lease: a holder stops starting outcomes 3 s before its lease ends.
    public static let shortestClaimLease = Duration.seconds(5)

    /// Creates a configuration; every parameter but the connection has a default.
    ///
    /// Nothing is checked here; ``PaymentConsumerService/run()`` calls ``validate()`` first.
    ///
    /// - Parameters:
    ///   - connection: Where the broker is.
    ///   - policy: When to retry payments of unknown clients, and when to park them. Default: 1 s more per attempt,
    ///     at most 10 s, 10 retries.
    ///   - delayMode: How delayed retries are made. Default ``DelayMode/auto``.
    ///   - topology: The names of queues and exchanges. Default: the service's names, classic queues.
    ///   - hold: How long payments of unknown clients are held for their registration. Default up to 800 for 5 s.
    ///   - prefetch: The prefetch of each consumer. Default 1,000.
    ///   - summaryInterval: How often the counters are logged; zero turns it off. Default 30 s.
    ///   - dedupeWindow: How long a settled payment makes later copies duplicates. Default ``defaultDedupeWindow``.
    ///   - claimLease: How long a claim holds a payment. Default 10 s; at least ``shortestClaimLease``.
    ///   - shutdownGrace: How long a graceful shutdown waits for running handlers. Default 10 s.
    ///   - starvedConsumers: When a quorum queue's consumer that receives nothing is made anew. Default 30 s.
    public init(
        connection: AMQPConfiguration, policy: RetryPolicy = RetryPolicy(), delayMode: DelayMode = .auto,
        topology: PaymentTopology = PaymentTopology(), hold: HoldPolicy = HoldPolicy(), prefetch: UInt16 = 1000,
        summaryInterval: Duration = .seconds(30), dedupeWindow: Duration = defaultDedupeWindow,
        claimLease: Duration = .seconds(10), shutdownGrace: Duration = .seconds(10),
        starvedConsumers: StarvedConsumerPolicy = StarvedConsumerPolicy(idleLimit: .seconds(30))
    ) {
        self.connection = connection
        self.policy = policy
        self.delayMode = delayMode
        self.topology = topology
        self.hold = hold
        self.prefetch = prefetch
        self.summaryInterval = summaryInterval
        self.dedupeWindow = dedupeWindow
        self.claimLease = claimLease
        self.shutdownGrace = shutdownGrace
        self.starvedConsumers = starvedConsumers
    }

    /// Checks what the options cannot check one by one.
    ///
    /// - Throws: ``PaymentServiceError`` naming the offending setting.
    public func validate() throws(PaymentServiceError) {
        try policy.validate()
        guard hold.time == .zero || hold.maxHeld < Int(prefetch) else {
            throw PaymentServiceError("at most \(hold.maxHeld) held payments need a prefetch above that, not \(prefetch)")
        }
        guard dedupeWindow > .zero, dedupeWindow <= PaymentTopology.longestDedupeWindow else {
            throw PaymentServiceError(
                "the dedupe window must be positive and at most the streams' retention (7 days), not \(dedupeWindow)")
        }
        guard claimLease >= Self.shortestClaimLease else {
            throw PaymentServiceError("the claim lease must be at least \(Self.shortestClaimLease), not \(claimLease)")
        }
        guard starvedConsumers.idleLimit >= .zero else {
            throw PaymentServiceError(
                "the starved-consumer limit cannot be negative, not \(starvedConsumers.idleLimit)")
        }
        guard shutdownGrace > .zero else {
            throw PaymentServiceError("the shutdown grace must be positive, not \(shutdownGrace)")
        }
    }
}

import RabbitMQ

/// The queues and exchanges of the payment service, and how they are declared.
///
/// The names are the service's contract with other services; only tests give them a prefix, to run in isolation.
///
/// ```
/// clients-processor        registrations                    (durable queue)
/// payment-processor        new payments                     (durable queue)
/// payment-reprocessor      payments coming back from a delay (durable queue)
/// payment-parking-lot      parked payments and unreadable messages, reason in header "parking-reason"
/// payment-delayed          x-delayed-message exchange (x-delayed-type direct) → payment-reprocessor
/// payment-retry-<ms>ms     without the plugin: one queue per delay, TTL dead-lettering to payment-reprocessor
/// payment-events           topic exchange: payment.processed, payment.parked
/// payment-clients-log      stream: every registration, many per entry, replayed by each instance at start
/// payment-claims-log       stream: claims and settlements of payments, read from the dedupe window's start (7 days kept)
/// payment-outcomes-log     stream bound to payment-events: every outcome, searched on a takeover (7 days kept)
/// ```
public struct PaymentTopology: Sendable, Equatable {
    /// The kind of the work queues.
    public enum QueueType: String, Sendable, CaseIterable {
        /// Classic queues on one node.
        case classic
        /// Replicated quorum queues, with a delivery limit and dead-lettering to the parking lot.
        case quorum
    }

    /// A prefix for every name (empty in production).
    public var prefix: String
    /// The kind of the work queues (classic by default).
    public var queueType: QueueType

    /// Creates the topology, with every name prefixed by `prefix`.
    ///
    /// - Parameters:
    ///   - prefix: Put before every queue, exchange and stream name; empty (the default) in production.
    ///   - queueType: The kind of the work queues and the parking lot. Default ``QueueType/classic``.
    public init(prefix: String = "", queueType: QueueType = .classic) {
        self.prefix = prefix
        self.queueType = queueType
    }

    /// How often a quorum queue delivers a message before dead-lettering it to the parking lot. The service rejects
    /// nothing, so this bounds a message that keeps killing consumers; before RabbitMQ 4.3 every requeue counts too,
    /// the service's nacks after a retriable failure included (see <doc:DelayedRetry#Delivery-limit-on-quorum-queues>).
    public static let deliveryLimit: Int32 = 20
    /// How long the outcomes and claims streams keep their entries; also the longest dedupe window.
    public static let streamRetention = "7D"
    /// ``streamRetention`` as a duration.
    public static let longestDedupeWindow = Duration.seconds(7 * 24 * 3600)

    /// `clients-processor`: client registrations.
    public var clientsQueue: String { prefix + "clients-processor" }
    /// `payment-processor`: payments to process.
    public var paymentsQueue: String { prefix + "payment-processor" }
    /// `payment-reprocessor`: payments back from a delayed retry.
    public var retriesQueue: String { prefix + "payment-reprocessor" }
    /// `payment-parking-lot`: parked payments and unreadable messages.
    public var parkingLot: String { prefix + "payment-parking-lot" }
    /// `payment-delayed`: the delayed-message exchange retries go through.
    public var delayedExchange: String { prefix + "payment-delayed" }
    /// `payment-events`: the topic exchange outcomes are published to.
    public var eventsExchange: String { prefix + "payment-events" }
    /// `payment-clients-log`: the stream of every registration.
    public var clientsLog: String { prefix + "payment-clients-log" }
    /// `payment-outcomes-log`: the stream of every outcome.
    public var outcomesLog: String { prefix + "payment-outcomes-log" }
    /// `payment-claims-log`: the stream of claims and settlements that makes outcomes exactly-once.
    public var claimsLog: String { prefix + "payment-claims-log" }

    /// The header that carries a parked message's reason.
    public static let parkingReasonHeader = "parking-reason"
    /// The header that names the queue a parked message came from.
    public static let parkingSourceHeader = "parking-source-queue"
    /// The header that carries the attempt number of a retried payment (ours, never the broker's `x-delay`).
    public static let attemptHeader = "payment-attempt"

    /// The TTL queue that holds retries of one delay level.
    ///
    /// - Parameter delay: The delay level, rounded up to whole milliseconds in the name.
    /// - Returns: The queue's name, such as `payment-retry-2000ms`.
    public func delayQueue(for delay: Duration) -> String {
        prefix + "payment-retry-\(Self.milliseconds(delay))ms"
    }

    /// Declares the queues, the events exchange and the three streams every mode uses. All are durable.
    ///
    /// - Parameter channel: The channel to declare on.
    /// - Throws: `AMQPError` from the channel: `channelClosedByBroker` when the broker refuses a declaration, such
    ///   as 406 PRECONDITION_FAILED for an existing queue with other arguments (a queue's type cannot change), after
    ///   which the channel is closed; `channelClosed` on a closed channel; or the connection's error.
    public func declareCommon(on channel: AMQPChannel) async throws {
        var workArguments: AMQPTable = [:]
        var parkingArguments: AMQPTable = [:]
        if queueType == .quorum {
            workArguments = [
                "x-queue-type": "quorum", "x-delivery-limit": .int32(Self.deliveryLimit),
                "x-dead-letter-exchange": "", "x-dead-letter-routing-key": .string(parkingLot),
            ]
            parkingArguments = ["x-queue-type": "quorum"]
        }
        _ = try await channel.declareQueue(parkingLot, durable: true, arguments: parkingArguments)
        for queue in [clientsQueue, paymentsQueue, retriesQueue] {
            _ = try await channel.declareQueue(queue, durable: true, arguments: workArguments)
        }
        try await channel.declareExchange(eventsExchange, type: .topic, durable: true)
        try await StreamLog.declare(clientsLog, maxAge: nil, on: channel)
        try await StreamLog.declare(outcomesLog, maxAge: Self.streamRetention, on: channel)
        try await StreamLog.declare(claimsLog, maxAge: Self.streamRetention, on: channel)
        try await channel.bindQueue(outcomesLog, to: eventsExchange, routingKey: "payment.#")
    }

    /// Declares the delayed-message exchange, and nothing else: it doubles as the probe for the plugin, which must
    /// run before anything else is declared (the broker closes the connection when the plugin is missing).
    ///
    /// - Parameter channel: The channel to declare on; without the plugin, its whole connection is closed by the
    ///   broker.
    /// - Throws: `AMQPError` with code `delayedMessagePluginMissing` when the broker lacks the plugin;
    ///   `channelClosedByBroker` (406 PRECONDITION_FAILED) when `payment-delayed` exists with another type or other
    ///   arguments; `channelClosed` on a closed channel; or the connection's error.
    public func declareDelayedExchange(on channel: AMQPChannel) async throws {
        _ = try await AMQPDelayedExchange.declare(delayedExchange, on: channel, routingType: .direct)
    }

    /// Declares `payment-delayed` as a stock `direct` exchange with the plugin's `x-delayed-type` argument: the
    /// test-only stand-in for the plugin's exchange, which routes at once instead of after `x-delay`.
    ///
    /// - Parameter channel: The channel to declare on.
    /// - Throws: `AMQPError` from the channel: `channelClosedByBroker` (406 PRECONDITION_FAILED) when
    ///   `payment-delayed` already exists with another type, such as the plugin's; `channelClosed` on a closed
    ///   channel; or the connection's error.
    public func declareDelayedExchangeStandIn(on channel: AMQPChannel) async throws {
        try await channel.declareExchange(
            delayedExchange, type: .direct, durable: true,
            arguments: ["x-delayed-type": .string(AMQPExchangeType.direct.rawValue)])
    }

    /// Binds `payment-reprocessor` to `payment-delayed`, with the queue's name as routing key; needs both declared.
    ///
    /// - Parameter channel: The channel to bind on.
    /// - Throws: `AMQPError` from the channel: `channelClosedByBroker` (404 NOT_FOUND) when the queue or the exchange
    ///   does not exist; `channelClosed` on a closed channel; or the connection's error.
    public func bindDelayedExchange(on channel: AMQPChannel) async throws {
        try await channel.bindQueue(retriesQueue, to: delayedExchange, routingKey: retriesQueue)
    }

    /// Declares one queue per delay level, whose messages expire after that delay into `payment-reprocessor`.
    ///
    /// One queue per level keeps expiry in arrival order: a per-message TTL in a shared queue would hold a short
    /// delay behind a long one (see <doc:DelayedRetry#One-queue-per-delay>). On quorum queues the dead-lettering is
    /// made at-least-once (see <doc:DelayedRetry#At-least-once-dead-lettering>).
    ///
    /// - Parameters:
    ///   - channel: The channel to declare on.
    ///   - levels: The delays to declare a queue for, usually ``RetryPolicy/delayLevels``.
    /// - Throws: `AMQPError` from the channel: `channelClosedByBroker` when the broker refuses a declaration, such
    ///   as 406 PRECONDITION_FAILED for an existing queue with other arguments (a queue's type cannot change), after
    ///   which the channel is closed; `channelClosed` on a closed channel; or the connection's error.
    public func declareTTLDelay(on channel: AMQPChannel, levels: [Duration]) async throws {
        for delay in levels {
            var arguments: AMQPTable = [
                "x-message-ttl": .int64(Int64(Self.milliseconds(delay))),
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": .string(retriesQueue),
            ]
            if queueType == .quorum {
                // Dead-lettering is at-most-once unless the quorum queue is told otherwise
                // (see <doc:DelayedRetry#At-least-once-dead-lettering>).
                arguments["x-queue-type"] = "quorum"
                arguments["x-dead-letter-strategy"] = "at-least-once"
                arguments["x-overflow"] = "reject-publish"
            }
            _ = try await channel.declareQueue(delayQueue(for: delay), durable: true, arguments: arguments)
        }
    }

    /// A duration in whole milliseconds, rounded up.
    static func milliseconds(_ duration: Duration) -> Int {
        let (seconds, attoseconds) = duration.components
        return Int(seconds) * 1000 + Int((attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000)
    }
}

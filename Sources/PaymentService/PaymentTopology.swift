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
/// ```
public struct PaymentTopology: Sendable, Equatable {
    /// A prefix for every name (empty in production).
    public var prefix: String

    /// Creates the topology, with every name prefixed by `prefix`.
    public init(prefix: String = "") {
        self.prefix = prefix
    }

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

    /// The header that carries a parked message's reason.
    public static let parkingReasonHeader = "parking-reason"
    /// The header that names the queue a parked message came from.
    public static let parkingSourceHeader = "parking-source-queue"
    /// The header that carries the attempt number of a retried payment (ours, never the broker's `x-delay`).
    public static let attemptHeader = "payment-attempt"

    /// The TTL queue that holds retries of one delay level.
    public func delayQueue(for delay: Duration) -> String {
        prefix + "payment-retry-\(Self.milliseconds(delay))ms"
    }

    /// Declares the queues and the events exchange every mode uses. All are durable.
    public func declareCommon(on channel: AMQPChannel) async throws {
        for queue in [clientsQueue, paymentsQueue, retriesQueue, parkingLot] {
            _ = try await channel.declareQueue(queue, durable: true)
        }
        try await channel.declareExchange(eventsExchange, type: .topic, durable: true)
    }

    /// Declares the delayed-message exchange and binds `payment-reprocessor` to it.
    ///
    /// - Throws: ``AMQPError`` with code `delayedMessagePluginMissing` when the broker lacks the plugin (the broker
    ///   then closes the connection).
    public func declarePluginDelay(on channel: AMQPChannel) async throws {
        let exchange = try await AMQPDelayedExchange.declare(delayedExchange, on: channel, routingType: .direct)
        try await channel.bindQueue(retriesQueue, to: exchange.name, routingKey: retriesQueue)
    }

    /// Declares one queue per delay level, whose messages expire after that delay into `payment-reprocessor`.
    ///
    /// One queue per level keeps expiry in arrival order: a per-message TTL in a shared queue would hold a short
    /// delay behind a long one.
    public func declareTTLDelay(on channel: AMQPChannel, levels: [Duration]) async throws {
        for delay in levels {
            _ = try await channel.declareQueue(
                delayQueue(for: delay), durable: true,
                arguments: [
                    "x-message-ttl": .int64(Int64(Self.milliseconds(delay))),
                    "x-dead-letter-exchange": "",
                    "x-dead-letter-routing-key": .string(retriesQueue),
                ])
        }
    }

    /// A duration in whole milliseconds, rounded up.
    static func milliseconds(_ duration: Duration) -> Int {
        let (seconds, attoseconds) = duration.components
        return Int(seconds) * 1000 + Int((attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000)
    }
}

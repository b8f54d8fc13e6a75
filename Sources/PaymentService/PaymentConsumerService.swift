import Foundation
import Logging
import RabbitMQ
import ServiceLifecycle
import Synchronization

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

    /// Creates a configuration; every parameter but the connection has a default.
    public init(
        connection: AMQPConfiguration, policy: RetryPolicy = RetryPolicy(), delayMode: DelayMode = .auto,
        topology: PaymentTopology = PaymentTopology(), hold: HoldPolicy = HoldPolicy(), prefetch: UInt16 = 1000,
        summaryInterval: Duration = .seconds(30)
    ) {
        self.connection = connection
        self.policy = policy
        self.delayMode = delayMode
        self.topology = topology
        self.hold = hold
        self.prefetch = prefetch
        self.summaryInterval = summaryInterval
    }
}

/// The payment consumer: declares the topology, consumes the three queues and handles their deliveries, until a
/// graceful shutdown.
///
/// It uses two connections: one consumes, the other publishes with confirms (outcomes, retries, parked messages),
/// so that publishing back-pressure never stalls the deliveries. On a graceful shutdown (SIGTERM, SIGINT) it stops
/// taking deliveries, lets the handlers already running finish and acknowledge, and closes both connections; every
/// delivery not handled yet goes back to its queue.
public final class PaymentConsumerService: Service {
    private let configuration: PaymentConsumerConfiguration
    private let logger: Logger
    /// The service's counters.
    public let metrics: PaymentMetrics
    /// The clients the service knows.
    public let registry = ClientRegistry()
    private let ledger = PaymentLedger()
    private let stopping = Mutex(false)

    /// Creates the service.
    public init(configuration: PaymentConsumerConfiguration, metrics: PaymentMetrics = PaymentMetrics(), logger: Logger) {
        self.configuration = configuration
        self.metrics = metrics
        self.logger = logger
    }

    /// Runs until a graceful shutdown; throws when the broker or the topology fails.
    public func run() async throws {
        try configuration.policy.validate()
        guard configuration.hold.time == .zero || configuration.hold.maxHeld < Int(configuration.prefetch) else {
            throw PaymentServiceError(
                "at most \(configuration.hold.maxHeld) held payments need a prefetch above that, not \(configuration.prefetch)")
        }
        let mode = try await resolveDelayMode()
        let topology = configuration.topology

        // Named after the configuration's connection name when it has one, so instances can be told apart.
        let name = configuration.connection.connectionName ?? "payment-consumer"
        var consuming = configuration.connection
        consuming.connectionName = name
        var publishing = configuration.connection
        publishing.connectionName = "\(name)-publisher"
        let consumeConnection = try await AMQPConnection.connect(configuration: consuming, logger: logger)
        let publishConnection: AMQPConnection
        do {
            publishConnection = try await AMQPConnection.connect(configuration: publishing, logger: logger)
        } catch {
            try? await consumeConnection.close()
            throw error
        }

        let recoveryLogs = [consumeConnection, publishConnection].map { connection in
            Task { await self.logRecovery(of: connection) }
        }
        defer { for task in recoveryLogs { task.cancel() } }

        do {
            let setup = try await consumeConnection.openChannel()
            try await topology.declareCommon(on: setup)
            switch mode {
            case .plugin:
                // The probe declared the exchange; the queue it routes to exists only now.
                try await topology.bindDelayedExchange(on: setup)
            case .pluginStandIn:
                try await topology.declareDelayedExchangeStandIn(on: setup)
                try await topology.bindDelayedExchange(on: setup)
            case .ttl: try await topology.declareTTLDelay(on: setup, levels: configuration.policy.delayLevels)
            }
            try await setup.close()

            let publishChannel = try await publishConnection.openChannel()
            try await publishChannel.enablePublisherConfirms(maxOutstanding: 1000)
            let handlerBox = HandlerBox()
            let clientsLog = StreamLog(
                name: topology.clientsLog, consumeChannel: try await consumeConnection.openChannel(),
                publishChannel: publishChannel, logger: logger, onEntry: { handlerBox.handler?.learnRegistration($0) })
            let outcomesLog = StreamLog(
                name: topology.outcomesLog, consumeChannel: try await consumeConnection.openChannel(),
                publishChannel: publishChannel, logger: logger, onEntry: { handlerBox.handler?.learnOutcome($0) })
            let handler = PaymentHandler(
                registry: registry, ledger: ledger, policy: configuration.policy, hold: configuration.hold,
                topology: topology,
                publisher: PaymentPublisher(channel: publishChannel, topology: topology, mode: mode),
                clientsLog: clientsLog, outcomesLog: outcomesLog, metrics: metrics, logger: logger)
            handlerBox.handler = handler

            // Replay both streams before taking a payment: a restarted instance must know every client and every
            // settled payment first.
            let started = ContinuousClock.now
            let followers = [try await clientsLog.start(), try await outcomesLog.start()]
            try await clientsLog.sync()
            try await outcomesLog.sync()
            logger.info(
                "caught up with the shared streams",
                metadata: [
                    "clients": "\(registry.count)", "elapsed": "\(ContinuousClock.now - started)",
                    "streams": "\(topology.clientsLog), \(topology.outcomesLog)",
                ])

            try await consume(with: handler, on: consumeConnection, followers: followers)
            logger.info("payment consumer stopped", metadata: ["summary": "\(metrics.snapshot)"])
        } catch {
            logger.error("payment consumer failed: \(error)")
            try? await consumeConnection.close()
            try? await publishConnection.close()
            throw error
        }
        try await consumeConnection.close()
        try await publishConnection.close()
    }

    private func consume(
        with handler: PaymentHandler, on connection: AMQPConnection, followers: [Task<Void, any Error>]
    ) async throws {
        let topology = configuration.topology
        var started: [QueueConsumer] = []
        for queue in [topology.clientsQueue, topology.paymentsQueue, topology.retriesQueue] {
            let channel = try await connection.openChannel()
            try await channel.setPrefetch(configuration.prefetch)
            let consumer = try await channel.consume(queue: queue)
            let handle: @Sendable (AMQPDelivery) async throws -> Void
            if queue == topology.clientsQueue {
                handle = { delivery in try await handler.handleRegistration(delivery) }
            } else {
                handle = { delivery in try await handler.handlePayment(delivery, from: queue) }
            }
            started.append(QueueConsumer(consumer: consumer, handle: handle))
        }
        let consumers = started
        logger.info(
            "payment consumer running",
            metadata: [
                "queues": "\(topology.clientsQueue), \(topology.paymentsQueue), \(topology.retriesQueue)",
                "prefetch": "\(configuration.prefetch)",
            ])

        try await withGracefulShutdownHandler {
            try await withThrowingTaskGroup(of: Bool.self) { group in
                for queueConsumer in consumers {
                    group.addTask {
                        try await self.drain(queueConsumer.consumer, handle: queueConsumer.handle)
                        return true
                    }
                }
                for follower in followers {
                    group.addTask {
                        try await follower.value
                        if !self.stopping.withLock({ $0 }) {
                            throw PaymentServiceError("a shared stream's consumer ended unexpectedly")
                        }
                        return false
                    }
                }
                let summary = Task { await self.logSummaries() }
                defer { summary.cancel() }
                var drained = 0
                while drained < consumers.count, let isDrain = try await group.next() {
                    if isDrain { drained += 1 }
                }
                for follower in followers { follower.cancel() }
                try await group.waitForAll()
            }
        } onGracefulShutdown: {
            self.logger.info("shutting down: no new deliveries are taken; running handlers finish")
            self.stopping.withLock { $0 = true }
            self.registry.cancelWaits()
            Task {
                for queueConsumer in consumers { try? await queueConsumer.consumer.cancel() }
            }
        }
    }

    /// Lets the stream followers, created before the handler, reach it once it exists.
    private final class HandlerBox: Sendable {
        private let value = Mutex<PaymentHandler?>(nil)
        var handler: PaymentHandler? {
            get { value.withLock { $0 } }
            set { value.withLock { $0 = newValue } }
        }
    }

    /// A consumer and the handler of its queue.
    private struct QueueConsumer: Sendable {
        let consumer: AMQPConsumer
        let handle: @Sendable (AMQPDelivery) async throws -> Void
    }

    /// Handles one consumer's deliveries, at most `concurrency` at once, until the consumer ends.
    private func drain(_ consumer: AMQPConsumer, handle: @escaping @Sendable (AMQPDelivery) async throws -> Void)
        async throws
    {
        // The prefetch bounds how many deliveries are in hand, so it also bounds these tasks; a discarding group
        // forgets each as it finishes, and a handler's non-retriable error ends the consumer.
        try await withThrowingDiscardingTaskGroup { group in
            for try await delivery in consumer {
                // Deliveries already buffered when the shutdown began stay unacknowledged: closing the channel
                // hands them back to the broker, as if they had never arrived.
                if stopping.withLock({ $0 }) { continue }
                group.addTask { try await self.handleOrGiveBack(delivery, handle: handle) }
            }
        }
    }

    /// Runs a handler. A retriable failure (the connection is recovering, the broker refused a publish) gives the
    /// delivery back to its queue after a pause, so it is tried again without a hot loop; any other failure stops
    /// the service, which then exits non-zero.
    private func handleOrGiveBack(
        _ delivery: AMQPDelivery, handle: @Sendable (AMQPDelivery) async throws -> Void
    ) async throws {
        do {
            try await handle(delivery)
        } catch let error as AMQPError where error.isRetriable {
            logger.warning(
                "handling failed; the delivery goes back to its queue",
                metadata: [
                    "error": "\(error)", "queue.routing_key": "\(delivery.routingKey)",
                    "delivery_tag": "\(delivery.deliveryTag)",
                ])
            try? await Task.sleep(for: .seconds(1))
            // After a recovery this is a no-op: the broker already requeued what the old connection held.
            try? await delivery.nack(requeue: true)
        }
    }

    /// Reports the connection's automatic recovery in the service's log: the library logs it at info at most.
    private func logRecovery(of connection: AMQPConnection) async {
        let name = connection.configuration.connectionName ?? "connection"
        for await event in connection.recoveryEvents {
            switch event {
            case .started(let cause):
                logger.warning("connection lost; recovering", metadata: ["connection": "\(name)", "error": "\(cause)"])
            case .attemptFailed(let attempt, let error, let delay):
                logger.warning(
                    "connection recovery attempt failed",
                    metadata: [
                        "connection": "\(name)", "attempt": "\(attempt)", "error": "\(error)", "retry_in": "\(delay)",
                    ])
            case .recovered(let attempts):
                logger.notice("connection recovered", metadata: ["connection": "\(name)", "attempts": "\(attempts)"])
            case .queueRenamed:
                break
            case .gaveUp(let error):
                logger.error("connection recovery gave up", metadata: ["connection": "\(name)", "error": "\(error)"])
            }
        }
    }

    private func logSummaries() async {
        let interval = configuration.summaryInterval
        guard interval > .zero else { return }
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: interval)
            } catch {
                return
            }
            logger.info("summary", metadata: ["summary": "\(metrics.snapshot)", "clients": "\(registry.count)"])
        }
    }

    /// Picks the delay mechanism: the plugin's exchange when asked for or available, TTL queues otherwise.
    ///
    /// The probe runs on a connection of its own, because a broker without the plugin answers the declaration with
    /// 503 COMMAND_INVALID and closes the whole connection.
    private func resolveDelayMode() async throws -> ResolvedDelayMode {
        switch configuration.delayMode {
        case .ttl:
            logTTLMode(reason: "as asked (--delay-mode ttl)")
            return .ttl
        case .pluginStandIn:
            logger.warning(
                "delay mode: plugin-stand-in (tests only: retries are not delayed)",
                metadata: ["exchange": "\(configuration.topology.delayedExchange)", "type": "direct"])
            return .pluginStandIn
        case .auto, .plugin:
            break
        }
        var probing = configuration.connection
        probing.connectionName = "payment-consumer-probe"
        // Without the plugin the probe's connection is closed by the broker: expected, so not worth a log line.
        var quiet = logger
        quiet.logLevel = .warning
        let probe = try await AMQPConnection.connect(configuration: probing, logger: quiet)
        do {
            let channel = try await probe.openChannel()
            try await configuration.topology.declareDelayedExchange(on: channel)
            try await probe.close()
            logger.info(
                "delay mode: plugin",
                metadata: ["exchange": "\(configuration.topology.delayedExchange)", "type": "x-delayed-message"])
            return .plugin
        } catch let error as AMQPError where error.code == .delayedMessagePluginMissing {
            guard configuration.delayMode == .auto else {
                throw PaymentServiceError(
                    "--delay-mode plugin: the broker lacks the rabbitmq_delayed_message_exchange plugin "
                        + "(it answered 503 COMMAND_INVALID); enable it, or use --delay-mode ttl or auto")
            }
            logTTLMode(reason: "the broker lacks the delayed-message plugin")
            return .ttl
        } catch {
            try? await probe.close()
            throw error
        }
    }

    private func logTTLMode(reason: String) {
        let levels = configuration.policy.delayLevels.map { configuration.topology.delayQueue(for: $0) }
        logger.info(
            "delay mode: ttl",
            metadata: ["reason": "\(reason)", "delay_queues": "\(levels.joined(separator: ", "))"])
    }
}

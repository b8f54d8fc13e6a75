import Foundation
import Logging
import RabbitMQ
import ServiceLifecycle
import Synchronization

/// The payment consumer: declares the topology, consumes the three queues and handles their deliveries, until a
/// graceful shutdown.
///
/// It uses two connections: one consumes, the other publishes with confirms (outcomes, retries, parked messages),
/// so that publishing back-pressure never stalls the deliveries. On a graceful shutdown (SIGTERM, SIGINT) it stops
/// taking deliveries, lets the handlers already running finish and acknowledge, and closes both connections; every
/// delivery not handled yet goes back to its queue.
public final class PaymentConsumerService: Service {
    let configuration: PaymentConsumerConfiguration
    let logger: Logger
    /// The service's counters.
    public let metrics: PaymentMetrics
    /// The clients the service knows.
    public let registry = ClientRegistry()
    private let claims: ClaimBoard
    private let stopping = Mutex(false)
    /// Where the service is, for ``readiness``.
    let lifecycle = Mutex(Lifecycle())

    /// Creates the service; nothing connects until ``run()``.
    ///
    /// - Parameters:
    ///   - configuration: How the consumer runs.
    ///   - metrics: The counters to update. Default: new ones, reported through the bootstrapped metrics backend.
    ///   - logger: Where the service and its connections log.
    public init(configuration: PaymentConsumerConfiguration, metrics: PaymentMetrics = PaymentMetrics(), logger: Logger) {
        self.configuration = configuration
        self.metrics = metrics
        self.logger = logger
        claims = ClaimBoard(
            arbiter: ClaimArbiter(
                leaseMilliseconds: Int64(PaymentTopology.milliseconds(configuration.claimLease)),
                windowMilliseconds: Int64(PaymentTopology.milliseconds(configuration.dedupeWindow))))
    }

    /// Runs until a graceful shutdown; throws when the broker or the topology fails.
    ///
    /// - Throws: ``PaymentServiceError`` when the configuration is invalid, when `--delay-mode plugin` meets a broker
    ///   without the delayed-message plugin, or when a shared stream's consumer ends on its own. `AMQPError` when
    ///   connecting fails, when the broker refuses the topology (such as 406 PRECONDITION_FAILED for an existing
    ///   queue with other arguments), when a handler fails with an error that is not retriable, or when a consumer
    ///   ends with an error (its channel closed by the broker, or its connection failed without recovery or after
    ///   recovery gave up). `CancellationError` when the task running it is cancelled while a handler waits for a
    ///   claim.
    public func run() async throws {
        defer { enter(.stopped) }
        try configuration.validate()
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
        watch([consumeConnection, publishConnection])

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

            let publishChannel = try await ConfirmedChannel.open(on: publishConnection)
            // The shared logs get a channel of their own, so that their appends never queue behind outcomes.
            let logChannel = try await ConfirmedChannel.open(on: publishConnection)
            let clientsLog = try await followClients(on: consumeConnection, markersOn: logChannel)
            let claimsLog = try await followClaims(on: consumeConnection, markersOn: logChannel)
            let handler = PaymentHandler(
                registry: registry, claims: claims,
                claimsLog: StreamAppender(stream: topology.claimsLog, channel: logChannel) {
                    ClaimRecordCodec.entry($0)
                },
                registrationsLog: StreamAppender(stream: topology.clientsLog, channel: logChannel) {
                    RegistrationBatchCodec.entry($0)
                },
                earlierOutcomes: EarlierOutcomeSearch(
                    stream: topology.outcomesLog, consumeConnection: consumeConnection, publishChannel: logChannel,
                    logger: logger),
                policy: configuration.policy, hold: configuration.hold, lease: configuration.claimLease,
                topology: topology,
                publisher: PaymentPublisher(channel: publishChannel, topology: topology, mode: mode),
                metrics: metrics, logger: logger)

            // Read both streams up to now before taking a payment: a restarted instance must know every client and
            // every payment settled inside the dedupe window first.
            let started = ContinuousClock.now
            let followers = [
                try await clientsLog.start(),
                try await claimsLog.start(at: .timestamp(Date() - startOffset)),
            ]
            try await clientsLog.sync()
            try await claimsLog.sync()
            let remembered = claims.count
            logger.info(
                "caught up with the shared streams",
                metadata: [
                    "clients": "\(registry.count)", "settled_in_window": "\(remembered.settled)",
                    "elapsed": "\(ContinuousClock.now - started)",
                    "streams": "\(topology.clientsLog), \(topology.claimsLog)",
                ])

            try await consume(with: handler, on: consumeConnection, followers: followers, logs: [clientsLog, claimsLog])
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
        with handler: PaymentHandler, on connection: AMQPConnection, followers: [Task<Void, any Error>],
        logs: [StreamLog]
    ) async throws {
        let topology = configuration.topology
        var started: [QueueConsumer] = []
        for queue in [topology.clientsQueue, topology.paymentsQueue, topology.retriesQueue] {
            let channel = try await connection.openChannel()
            try await channel.setPrefetch(configuration.prefetch)
            let consumer = try await channel.consume(queue: queue)
            let handle: @Sendable (AMQPDelivery) async throws -> Void
            // Each delivery is handled in its process span: the payment's trace goes on through what it publishes.
            if queue == topology.clientsQueue {
                handle = { delivery in
                    try await delivery.process { _ in try await handler.handleRegistration(delivery) }
                }
            } else {
                handle = { delivery in
                    try await delivery.process { span in
                        try await handler.handlePayment(delivery, from: queue, span: span)
                    }
                }
            }
            started.append(QueueConsumer(consumer: consumer, handle: handle))
        }
        let consumers = started
        // Ready before the line is logged: whoever reads the line may count on the readiness probe answering 200.
        enter(.consuming)
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
                group.addTask {
                    await self.forgetExpiredClaims()
                    return false
                }
                for follower in followers {
                    group.addTask {
                        do {
                            try await follower.value
                        } catch {
                            self.claims.fail(error)
                            throw error
                        }
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
                // The followers are tasks of their own: cancelling the group does not reach them. Their consumers
                // are cancelled first, so each ends as a stopped follower, whichever consumer it has come to read.
                for log in logs { await log.stop() }
                for follower in followers { follower.cancel() }
                group.cancelAll()
                try await group.waitForAll()
            }
        } onGracefulShutdown: {
            self.logger.info("shutting down: no new deliveries are taken; running handlers finish")
            self.stopping.withLock { $0 = true }
            self.enter(.stopping)
            self.registry.cancelWaits()
            Task {
                for queueConsumer in consumers { try? await queueConsumer.consumer.cancel() }
            }
        }
    }

    /// How far back the claims stream is read at start: the dedupe window, plus a lease for claims still live,
    /// plus a minute for clocks that differ.
    private var startOffset: TimeInterval {
        let window = configuration.dedupeWindow + configuration.claimLease + .seconds(60)
        return TimeInterval(window.components.seconds)
    }

    /// Follows the clients stream into the registry.
    private func followClients(on connection: AMQPConnection, markersOn channel: ConfirmedChannel) async throws -> StreamLog {
        let registry = self.registry
        return try await follow(configuration.topology.clientsLog, on: connection, markersOn: channel) { entry in
            registry.register(contentsOf: try RegistrationBatchCodec.clientIDs(in: entry))
        }
    }

    /// Follows the claims stream into the claim board.
    private func followClaims(on connection: AMQPConnection, markersOn channel: ConfirmedChannel) async throws -> StreamLog {
        let claims = self.claims
        return try await follow(configuration.topology.claimsLog, on: connection, markersOn: channel) { entry in
            claims.apply(try ClaimRecordCodec.records(in: entry))
        }
    }

    /// A follower of `stream` that hands each entry to `read`; an entry `read` cannot make sense of is skipped
    /// with a warning, since stopping would stop every payment for one bad entry.
    private func follow(
        _ stream: String, on connection: AMQPConnection, markersOn channel: ConfirmedChannel,
        read: @escaping @Sendable (AMQPDelivery) throws -> Void
    ) async throws -> StreamLog {
        let logger = self.logger
        return StreamLog(
            name: stream, consumeChannel: try await connection.openChannel(), publishChannel: channel, logger: logger,
            reopen: { try await connection.openChannel() },
            onEntry: { entry in
                do {
                    try read(entry)
                } catch {
                    logger.warning(
                        "unreadable stream entry skipped", metadata: ["stream": "\(stream)", "reason": "\(error)"])
                }
            })
    }

    /// Forgets settlements that left the dedupe window, now and then, so memory stays bound by the window.
    private func forgetExpiredClaims() async {
        let interval = min(configuration.dedupeWindow, .seconds(60))
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: interval)
            } catch {
                return
            }
            claims.forgetExpired()
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
            case .recovered(let attempts, let endpoint):
                logger.notice(
                    "connection recovered",
                    metadata: ["connection": "\(name)", "attempts": "\(attempts)", "endpoint": "\(endpoint)"])
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
}

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
/// taking deliveries, lets the handlers already running finish and acknowledge (for at most
/// ``PaymentConsumerConfiguration/shutdownGrace``, after which they are cancelled), and closes both connections;
/// every delivery not handled yet goes back to its queue.
public final class PaymentConsumerService: Service {
    let configuration: PaymentConsumerConfiguration
    let logger: Logger
    /// The service's counters.
    public let metrics: PaymentMetrics
    /// The clients the service knows.
    public let registry = ClientRegistry()
    let claims: ClaimBoard
    let stopping = Mutex(false)
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
    func forgetExpiredClaims() async {
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

    func logSummaries() async {
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

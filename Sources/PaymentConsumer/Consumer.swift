import ArgumentParser
import Logging
import Metrics
import PaymentCommandLine
import PaymentService
import Prometheus
import RabbitMQ
import ServiceLifecycle
import UnixSignals

/// `consumer`: the payment service. Everything it does lives in PaymentService; this only reads options.
@main
struct Consumer: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Consumes client registrations and payments; retries payments of unknown clients with a delay.",
        discussion: """
            Declares its durable topology, replays the shared clients stream and the dedupe window of the claims \
            stream, then consumes \
            clients-processor, payment-processor and payment-reprocessor with manual acknowledgements and publishes \
            outcomes to the payment-events exchange. A payment of an unknown client is held up to --hold-time for its \
            registration, then retried after attempt × --retry-step (at most --max-delay), --max-attempts times, then \
            parked in payment-parking-lot. Several instances may run side by side: every payment gets one outcome, \
            however many copies arrive within --dedupe-window. SIGINT or SIGTERM stop it cleanly: \
            running handlers get --shutdown-grace to finish. With --http-port it \
            serves Prometheus metrics on /metrics and probes on /health/live and /health/ready. With --otlp-endpoint \
            it exports traces, as service payment-consumer.
            """)

    @OptionGroup var connection: ConnectionOptions

    @OptionGroup var http: HTTPOptions

    @OptionGroup var tracing: TracingOptions

    @Option(help: "How retries are delayed: auto (the plugin if the broker has it, else TTL queues; always TTL queues with --queue-type quorum, as the plugin keeps delayed messages on one node), plugin, ttl, or plugin-stand-in (tests only: the plugin's path on a stock direct exchange, without the delay).")
    var delayMode: DelayMode = .auto

    @Option(help: "The delay added per retry, such as 1s or 250ms.")
    var retryStep = DurationArgument(.seconds(1))

    @Option(help: "The longest retry delay.")
    var maxDelay = DurationArgument(.seconds(10))

    @Option(help: "How many delayed retries a payment of an unknown client gets before it is parked.")
    var maxAttempts = 10

    @Option(help: "How long a payment of an unknown client is held for its registration before a delayed retry (0s: never held).")
    var holdTime = DurationArgument(.seconds(5))

    @Option(help: "The most payments held at once; must be below --prefetch.")
    var maxHeld = 800

    @Option(help: "Unacknowledged deliveries per queue; also bounds the deliveries handled at once.")
    var prefetch: UInt16 = 1000

    @Option(help: "The kind of work queues: classic, or quorum (replicated, with a delivery limit and dead-lettering to the parking lot).")
    var queueType: PaymentTopology.QueueType = .classic

    @Option(help: "How often a summary of the counters is logged (0s: never).")
    var summaryInterval = DurationArgument(.seconds(30))

    @Option(help: "How long a settled payment makes later copies duplicates, and how much history an instance reads at start (at most 7 days).")
    var dedupeWindow = DurationArgument(PaymentConsumerConfiguration.defaultDedupeWindow)

    @Option(help: "How long a claim on a payment holds it for one instance: how long copies wait for an instance that died holding one (at least 5s).")
    var claimLease = DurationArgument(.seconds(10))

    @Option(help: "How long SIGTERM or SIGINT waits for running handlers before cancelling them; their deliveries go back to their queues.")
    var shutdownGrace = DurationArgument(.seconds(10))

    @Option(help: "With --queue-type quorum: a consumer that received nothing for this long, with nothing in hand, is made anew on a new channel, which hands back deliveries RabbitMQ may have stranded after a queue leader moved (0s: never).")
    var starvedConsumerLimit = DurationArgument(.seconds(30))

    func validate() throws {
        guard maxAttempts >= 0 else { throw ValidationError("--max-attempts cannot be negative") }
        guard retryStep.duration > .zero else { throw ValidationError("--retry-step must be positive") }
        guard maxDelay.duration >= retryStep.duration else {
            throw ValidationError("--max-delay must be at least --retry-step")
        }
        guard prefetch > 0 else { throw ValidationError("--prefetch must be at least 1") }
        guard maxHeld >= 0 else { throw ValidationError("--max-held cannot be negative") }
        guard holdTime.duration == .zero || maxHeld < Int(prefetch) else {
            throw ValidationError("--max-held (\(maxHeld)) must be below --prefetch (\(prefetch))")
        }
        guard dedupeWindow.duration > .zero, dedupeWindow.duration <= PaymentTopology.longestDedupeWindow else {
            throw ValidationError("--dedupe-window must be positive and at most 7 days (the streams' retention)")
        }
        guard shutdownGrace.duration > .zero else { throw ValidationError("--shutdown-grace must be positive") }
        guard claimLease.duration >= PaymentConsumerConfiguration.shortestClaimLease else {
            throw ValidationError("--claim-lease must be at least \(PaymentConsumerConfiguration.shortestClaimLease)")
        }
    }

    func run() async throws {
        let logger = connection.bootstrapLogging(label: "consumer")
        // Before any connection exists: a connection looks the tracer up once, when it is created.
        let traceExport = try tracing.bootstrapTracing(serviceName: "payment-consumer", logger: logger)
        // Before the service exists: a swift-metrics counter is bound to the backend of the moment it is created.
        let prometheus = http.port.map { _ in Self.bootstrapPrometheus() }
        var amqp = try connection.configuration()
        // The library's metrics are opt-in; they are wanted where /metrics serves them.
        amqp.observability.metrics = prometheus != nil
        let service = PaymentConsumerService(
            configuration: PaymentConsumerConfiguration(
                connection: amqp,
                policy: RetryPolicy(step: retryStep.duration, maxDelay: maxDelay.duration, maxAttempts: maxAttempts),
                delayMode: delayMode, topology: PaymentTopology(prefix: connection.namePrefix, queueType: queueType),
                hold: HoldPolicy(time: holdTime.duration, maxHeld: maxHeld), prefetch: prefetch,
                summaryInterval: summaryInterval.duration, dedupeWindow: dedupeWindow.duration,
                claimLease: claimLease.duration, shutdownGrace: shutdownGrace.duration,
                starvedConsumers: StarvedConsumerPolicy(idleLimit: starvedConsumerLimit.duration)),
            logger: logger)
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if let traceExport {
            // First, so that the group stops it last and it exports the spans of the drain. Its end, even by an
            // error, never stops payments: traces are for looking at them, not for handling them.
            services.append(
                .init(service: traceExport, successTerminationBehavior: .ignore, failureTerminationBehavior: .ignore))
        }
        if let port = http.port, let prometheus {
            // Before the payment service, so that the group, which shuts services down in reverse order, stops it
            // after the payment service: the readiness probe answers 503 while the service drains.
            let endpoints = HTTPEndpoints(registry: prometheus, service: service)
            let server = HTTPServerService(host: http.httpHost, port: port, endpoints: endpoints, logger: logger)
            services.append(.init(service: server))
        }
        services.append(.init(service: service, successTerminationBehavior: .gracefullyShutdownGroup))
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: services,
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        try await group.run()
    }

    /// Makes Prometheus the swift-metrics backend of the process (the service's counters, the library's
    /// `messaging.client.*` metrics), and returns the registry that `/metrics` reads. Only with HTTP endpoints:
    /// without them nothing would ever read what it collects.
    private static func bootstrapPrometheus() -> PrometheusCollectorRegistry {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        return registry
    }
}

extension DelayMode: ExpressibleByArgument {}
extension PaymentTopology.QueueType: ExpressibleByArgument {}

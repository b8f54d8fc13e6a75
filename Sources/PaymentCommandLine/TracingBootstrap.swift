import Foundation
import Logging
import OTel
import ServiceLifecycle

extension TracingOptions {
    /// The environment variables this type decides itself, which swift-otel must not read again: the endpoint (the
    /// flag wins over them, and a base URL would otherwise be taken as the full one, or the other way round), the
    /// protocol and exporter (only OTLP/HTTP with protobuf is built), and the propagators (the library's message
    /// headers carry W3C `traceparent` and `tracestate`, which the other side expects).
    static let decidedVariables: Set<String> = [
        OTLPTracesEndpoint.sharedVariable, OTLPTracesEndpoint.tracesVariable,
        "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_TRACES_EXPORTER", "OTEL_PROPAGATORS",
    ]

    /// Makes swift-otel's tracer the process's tracer, exporting to the configured endpoint over OTLP/HTTP with
    /// protobuf through a batch span processor, and propagating W3C trace context; does nothing when no endpoint is
    /// configured. Traces only: logs and metrics stay with their own backends.
    ///
    /// Call it once, at start, before any connection is made: a connection looks the tracer up when it is created.
    /// The other standard variables still apply, such as `OTEL_SERVICE_NAME` (over `serviceName`),
    /// `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_BSP_*`,
    /// `OTEL_TRACES_SAMPLER` and `OTEL_SDK_DISABLED`.
    ///
    /// Spans are never waited for on the path of a message: a finished span is handed to the batch processor, which
    /// exports in the background. A collector that is down costs a warning and the batch, each time; as the HTTP
    /// client keeps trying to connect until the export's timeout (10 s by default), the service's graceful shutdown,
    /// which exports what is left, is bounded by `exportGrace`.
    ///
    /// - Parameters:
    ///   - serviceName: The `service.name` resource attribute, such as `payment-consumer`.
    ///   - logger: Where swift-otel logs what it does and its export failures.
    ///   - exportGrace: How long the last export may take once a graceful shutdown began; then it is cancelled and
    ///     its spans are lost.
    ///   - environment: The environment to read the variables from.
    /// - Returns: The service that batches and exports the spans, to run until the process stops; nil when no
    ///   endpoint is configured.
    /// - Throws: ArgumentParser's `ValidationError` for an invalid endpoint; swift-otel's error when its
    ///   configuration is invalid, such as a certificate file that does not exist.
    public func bootstrapTracing(
        serviceName: String, logger: Logger, exportGrace: Duration = .seconds(5),
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> ServiceGroup? {
        guard let endpoint = try tracesEndpoint(environment: environment) else { return nil }
        var configuration = OTel.Configuration.default
        configuration.serviceName = serviceName
        configuration.diagnosticLogger = .custom(logger)
        configuration.propagators = [.traceContext]
        configuration.logs.enabled = false
        configuration.metrics.enabled = false
        configuration.traces.exporter = .otlp
        configuration.traces.otlpExporter.protocol = .httpProtobuf
        // Set explicitly, so swift-otel uses it as it is: the path is already complete.
        configuration.traces.otlpExporter.endpoint = endpoint.url
        let exporter = try OTel.bootstrap(
            configuration: configuration, environment: environment.filter { !Self.decidedVariables.contains($0.key) })
        logger.info(
            "exporting traces",
            metadata: ["endpoint": "\(endpoint.url)", "from": "\(endpoint.source)", "protocol": "http/protobuf"])
        var group = ServiceGroupConfiguration(services: [.init(service: exporter)], logger: logger)
        group.maximumGracefulShutdownDuration = exportGrace
        group.maximumCancellationDuration = .seconds(1)
        return ServiceGroup(configuration: group)
    }

    /// Runs a one-shot `operation` with tracing: bootstraps it as
    /// ``bootstrapTracing(serviceName:logger:exportGrace:environment:)`` does, runs the export service beside
    /// `operation`, then shuts it down, which exports the spans still batched before this returns. Without an
    /// endpoint, just runs `operation`.
    ///
    /// - Parameters:
    ///   - serviceName: The `service.name` resource attribute, such as `payment-producer`.
    ///   - logger: Where swift-otel logs what it does and its export failures.
    ///   - exportGrace: How long the last spans may take to leave: a collector that is down delays the return by
    ///     that much at most, and loses those spans.
    ///   - operation: The work to trace.
    /// - Returns: What `operation` returns.
    /// - Throws: What `operation` throws, or what ``bootstrapTracing(serviceName:logger:exportGrace:environment:)``
    ///   throws (before `operation` runs). An export failure is only logged.
    public func withTracing<Value: Sendable>(
        serviceName: String, logger: Logger, exportGrace: Duration = .seconds(5),
        _ operation: () async throws -> Value
    ) async throws -> Value {
        guard let group = try bootstrapTracing(serviceName: serviceName, logger: logger, exportGrace: exportGrace)
        else {
            return try await operation()
        }
        async let exporting: Void = group.run()
        let outcome: Result<Value, any Error>
        do {
            outcome = .success(try await operation())
        } catch {
            outcome = .failure(error)
        }
        // Remembered by the group even if it has not started yet; the spans batched so far are exported.
        await group.triggerGracefulShutdown()
        do {
            try await exporting
        } catch {
            logger.warning(
                "trace export ended early: spans not yet exported are lost", metadata: ["error": "\(error)"])
        }
        return try outcome.get()
    }
}

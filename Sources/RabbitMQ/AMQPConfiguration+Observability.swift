extension AMQPConfiguration {
    /// What a connection reports about its work: spans to the tracer the application bootstrapped, and metrics to its
    /// metrics backend.
    ///
    /// Spans follow the OpenTelemetry messaging conventions for RabbitMQ (see <doc:Observability>); with no tracer
    /// bootstrapped (`InstrumentationSystem`), the connection sees the no-op tracer once, when it is created, and
    /// skips every span from then on. Metrics are opt-in, since a process may bootstrap a metrics backend for other
    /// reasons and not want one time series per exchange and routing key.
    public struct Observability: Sendable, Hashable {
        /// Whether the connection records spans (publish, process, receive, settle) and propagates the trace context
        /// in message headers, when a tracer is bootstrapped. Default `true`.
        public var tracing: Bool
        /// Whether the connection records the `messaging.client.*` and `messaging.process.duration` metrics, and its
        /// connection, channel, recovery and blocked-time metrics, through swift-metrics. Default `false`.
        public var metrics: Bool

        /// Creates observability settings; every argument has the default its property documents.
        ///
        /// - Parameters:
        ///   - tracing: Record spans and propagate the trace context. Default `true`.
        ///   - metrics: Record metrics. Default `false`.
        public init(tracing: Bool = true, metrics: Bool = false) {
            self.tracing = tracing
            self.metrics = metrics
        }
    }
}

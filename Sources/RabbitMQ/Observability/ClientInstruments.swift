import Tracing

/// What one connection reports to: the tracer, when tracing is on and a real tracer is bootstrapped, and the metrics,
/// when they are on. Both are looked up once, when the connection is made, so that a publish with neither costs two
/// nil checks.
final class ClientInstruments: Sendable {
    /// The tracer spans go to; nil when ``AMQPConfiguration/Observability/tracing`` is off or no tracer is
    /// bootstrapped (the no-op tracer would only be asked for spans that go nowhere).
    let tracer: (any Tracer)?
    /// The metrics; nil unless ``AMQPConfiguration/Observability/metrics`` is on.
    let metrics: ClientMetrics?

    init(_ observability: AMQPConfiguration.Observability) {
        let tracer = InstrumentationSystem.tracer
        self.tracer = observability.tracing && !(tracer is NoOpTracer) ? tracer : nil
        metrics = observability.metrics ? ClientMetrics() : nil
    }

    /// Whether there is anything to record at all.
    var isActive: Bool { tracer != nil || metrics != nil }
}

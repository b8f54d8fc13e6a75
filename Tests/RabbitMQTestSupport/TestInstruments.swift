import InMemoryTracing
import Metrics
import MetricsTestKit
import Tracing

/// The process-wide tracer and metrics backend of the test process, bootstrapped once on first use.
///
/// swift-distributed-tracing and swift-metrics take one bootstrap per process, and every test target runs in one
/// process, so the tests that look at spans or metrics share these. A connection looks its tracer up when it is
/// made: connections made before the first use record nothing. Tell a test's spans from others' by their trace or
/// destination, not by clearing the tracer.
public enum TestInstruments {
    /// The in-memory tracer every connection made after the first use reports to.
    public static let tracer: InMemoryTracer = {
        let tracer = InMemoryTracer()
        InstrumentationSystem.bootstrap(tracer)
        return tracer
    }()

    /// The in-memory metrics backend connections with metrics on report to.
    public static let metrics: TestMetrics = {
        let metrics = TestMetrics()
        MetricsSystem.bootstrap(metrics)
        return metrics
    }()
}

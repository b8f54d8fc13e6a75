import RabbitMQ
import Tracing

/// What a republished payment (a retry, a parked copy) does with the trace context it arrived with.
///
/// A copy keeps the original's headers. When a tracer is bootstrapped, the context the original arrived with is
/// removed, so that the library writes the current one (the retry's own publish span, inside the attempt's process
/// span) and the next attempt joins the payment's trace under it; the library never replaces headers a caller set.
/// With no tracer, the headers stay as they came: the context a message arrived with is passed on untouched, for a
/// traced process downstream.
enum InheritedTraceContext {
    /// Removes from `headers` the keys the bootstrapped tracer writes, when there is a tracer and a current context.
    static func dropInherited(from headers: inout AMQPTable) {
        let tracer = InstrumentationSystem.tracer
        guard !(tracer is NoOpTracer), let context = ServiceContext.current else { return }
        var written = AMQPTable()
        tracer.inject(context, into: &written, using: AMQPHeadersInjector())
        for key in written.keys { headers[key] = nil }
    }

    /// The W3C headers an outcome carries on when no tracer is bootstrapped: the payment's own `traceparent` and
    /// `tracestate`, so that a traced consumer of the outcomes joins the payment's trace. With a tracer, none: the
    /// library writes the outcome's publish span, inside the payment's trace.
    static func passedOn(from delivery: AMQPDelivery) -> AMQPTable? {
        guard InstrumentationSystem.tracer is NoOpTracer, let headers = delivery.properties.headers else { return nil }
        var carried = AMQPTable()
        for key in w3cHeaders { carried[key] = headers[key] }
        return carried.isEmpty ? nil : carried
    }

    /// The W3C Trace Context headers, the de-facto carrier of trace context in AMQP 0-9-1 messages.
    static let w3cHeaders = ["traceparent", "tracestate"]
}

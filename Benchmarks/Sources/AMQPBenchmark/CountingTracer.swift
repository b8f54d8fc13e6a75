import Synchronization
import Tracing

/// A tracer that does per span what an OpenTelemetry SDK does before export: new ids, the parent's trace, a
/// name, attributes and status kept under a lock, a W3C `traceparent` written and read, an end recorded; then
/// it drops the span instead of exporting it. `--tracer counting` runs the Swift side with it, so the difference to
/// a run without a tracer is what the library's tracing costs per message, apart from any exporter.
final class CountingTracer: Tracer {
    private let ended = Atomic<Int>(0)

    /// How many spans have ended so far.
    var endedSpans: Int { ended.load(ordering: .relaxed) }

    func startSpan<Instant: TracerInstant>(
        _ operationName: String, context: @autoclosure () -> ServiceContext, ofKind kind: SpanKind,
        at instant: @autoclosure () -> Instant, function: String, file fileID: String, line: UInt
    ) -> CountingSpan {
        var context = context()
        let traceID = context[SpanIDs.Key.self]?.traceID ?? SpanIDs.random(bytes: 16)
        context[SpanIDs.Key.self] = SpanIDs(traceID: traceID, spanID: SpanIDs.random(bytes: 8))
        return CountingSpan(context: context, operationName: operationName, tracer: self)
    }

    func forceFlush() {}

    func inject<Carrier, Inject: Injector>(
        _ context: ServiceContext, into carrier: inout Carrier, using injector: Inject
    ) where Inject.Carrier == Carrier {
        guard let ids = context[SpanIDs.Key.self] else { return }
        injector.inject("00-\(ids.traceID)-\(ids.spanID)-01", forKey: "traceparent", into: &carrier)
    }

    func extract<Carrier, Extract: Extractor>(
        _ carrier: Carrier, into context: inout ServiceContext, using extractor: Extract
    ) where Extract.Carrier == Carrier {
        guard let header = extractor.extract(key: "traceparent", from: carrier) else { return }
        let parts = header.split(separator: "-")
        guard parts.count == 4 else { return }
        context[SpanIDs.Key.self] = SpanIDs(traceID: String(parts[1]), spanID: String(parts[2]))
    }

    fileprivate func didEnd() {
        ended.add(1, ordering: .relaxed)
    }
}

/// A span's trace and span ids, as lowercase hex.
struct SpanIDs: Sendable {
    enum Key: ServiceContextKey {
        typealias Value = SpanIDs
    }

    let traceID: String
    let spanID: String

    static func random(bytes: Int) -> String {
        var text = ""
        for _ in 0..<(bytes / 8) {
            let word = String(UInt64.random(in: .min ... .max), radix: 16)
            text += String(repeating: "0", count: 16 - word.count) + word
        }
        return text
    }
}

/// A span of ``CountingTracer``.
final class CountingSpan: Span {
    private struct State {
        var operationName: String
        var attributes = SpanAttributes()
        var status: SpanStatus?
        var events: [SpanEvent] = []
        var links: [SpanLink] = []
    }

    let context: ServiceContext
    private let state: Mutex<State>
    private let tracer: CountingTracer

    fileprivate init(context: ServiceContext, operationName: String, tracer: CountingTracer) {
        self.context = context
        self.tracer = tracer
        state = Mutex(State(operationName: operationName))
    }

    var isRecording: Bool { true }

    var operationName: String {
        get { state.withLock { $0.operationName } }
        set { state.withLock { $0.operationName = newValue } }
    }

    var attributes: SpanAttributes {
        get { state.withLock { $0.attributes } }
        set { state.withLock { $0.attributes = newValue } }
    }

    func setStatus(_ status: SpanStatus) { state.withLock { $0.status = status } }
    func addEvent(_ event: SpanEvent) { state.withLock { $0.events.append(event) } }
    func addLink(_ link: SpanLink) { state.withLock { $0.links.append(link) } }

    func recordError<Instant: TracerInstant>(
        _ error: any Error, attributes: SpanAttributes, at instant: @autoclosure () -> Instant
    ) {
        addEvent(SpanEvent(name: "exception", attributes: attributes))
    }

    func end<Instant: TracerInstant>(at instant: @autoclosure () -> Instant) {
        tracer.didEnd()
    }
}

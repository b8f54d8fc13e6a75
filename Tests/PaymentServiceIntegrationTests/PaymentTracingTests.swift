import Foundation
import InMemoryTracing
import PaymentService
import RabbitMQ
import RabbitMQTestSupport
import Tracing
import XCTest

/// One trace per payment: the service, in this process, reports to the test process's in-memory tracer while a
/// payment whose client registers late goes through two delayed retries (TTL queues) before it is processed.
final class PaymentTracingTests: XCTestCase {
    private var tracer: InMemoryTracer { TestInstruments.tracer }
    private let prefix = PaymentTestBroker.uniquePrefix()
    private var topology: PaymentTopology { PaymentTopology(prefix: prefix) }

    override func tearDown() async throws {
        let admin = try await PaymentTestBroker.connect(name: "payment-tests-cleanup")
        try await admin.deleteTopology(topology)
        try await admin.close()
    }

    private func attempt(of span: FinishedInMemorySpan) -> Int64? {
        if case .int64(let value) = span.attributes["payment.attempt"]?.toSpanAttribute() { return value }
        return nil
    }

    func testAPaymentRetriedThroughTTLQueuesIsOneTraceFromItsPublishToItsOutcome() async throws {
        try await assertOneTrace(
            delayMode: .ttl, retryPublishPrefix: "publish amq.default:\(topology.prefix)payment-retry-",
            retryDestination: "amq.default:\(topology.retriesQueue):\(topology.retriesQueue)")
    }

    /// The plugin's path, on the stand-in exchange CI has: the same declarations and headers, but it routes at once,
    /// so attempts follow each other without a delay until the client registers.
    func testAPaymentRetriedThroughThePluginsExchangeIsOneTrace() async throws {
        try await assertOneTrace(
            delayMode: .pluginStandIn,
            retryPublishPrefix: "publish \(topology.delayedExchange):\(topology.retriesQueue)",
            retryDestination: "\(topology.delayedExchange):\(topology.retriesQueue):\(topology.retriesQueue)")
    }

    /// Runs a payment whose client registers once its second attempt failed, and checks its one trace: the
    /// producer's publish, every attempt (numbered 1, 2, 3, ...) parented on the publish that brought it, a retry
    /// publish between two attempts, the claim and its settlement, and the outcome, whose headers carry the trace.
    private func assertOneTrace(
        delayMode: DelayMode, retryPublishPrefix: String, retryDestination: String,
        file: StaticString = #filePath, line: UInt = #line
    ) async throws {
        _ = tracer  // before any connection is made: a connection looks its tracer up once
        let connection = try AMQPConfiguration(url: PaymentTestBroker.url)
        let service = PaymentConsumerService(
            configuration: PaymentConsumerConfiguration(
                connection: connection,
                policy: RetryPolicy(step: .milliseconds(200), maxDelay: .seconds(1), maxAttempts: 100_000),
                delayMode: delayMode, topology: topology, hold: .off, summaryInterval: .zero),
            logger: PaymentTestBroker.logger)
        let running = Task { try await service.run() }
        defer { running.cancel() }
        try await eventually(30, "the service to consume") { service.readiness.isReady ? () : nil }

        // The outcome, read with its headers.
        let observer = try await PaymentTestBroker.connect(name: "payment-tests-trace-observer")
        let observing = try await observer.openChannel()
        let outcomes = try await observing.declareQueue(exclusive: true).name
        try await observing.bindQueue(outcomes, to: topology.eventsExchange, routingKey: "payment.#")

        let producer = EventProducer(connection: connection, topology: topology, logger: PaymentTestBroker.logger)
        let paymentID = "traced-\(UUID().uuidString.prefix(8))"
        let clientID = "late-client-\(UUID().uuidString.prefix(8))"
        try await tracer.withSpan("checkout") { _ in
            _ = try await producer.send([
                PaymentRequest(paymentId: paymentID, clientId: clientID, amount: "9.99", currency: "EUR")
            ])
        }
        let checkout = try XCTUnwrap(tracer.finishedSpans.last { $0.operationName == "checkout" })
        let traceID = checkout.traceID

        // The client registers only once the payment's second attempt has failed: two retries.
        let processName = "process \(retryDestination)"
        try await eventually(30, "the second attempt") {
            let attempts = self.tracer.finishedSpans.filter { $0.operationName == processName }.map(self.attempt(of:))
            return attempts.contains(2) ? () : nil
        }
        _ = try await producer.send([ClientRegistration(clientId: clientID)])

        let outcome = try await eventually(30, "the payment's outcome") {
            try await observing.get(queue: outcomes, noAck: true)
        }
        XCTAssertEqual(outcome.routingKey, "payment.processed", file: file, line: line)
        XCTAssertEqual(outcome.properties.headers?[InMemoryTracer.traceIDKey], .string(traceID), file: file, line: line)

        // Every span of the payment's hops, in the order they started, once the last attempt's span has ended too:
        // as many attempts as publishes that brought one (the payment's and each retry's).
        let claimsLog = "publish amq.default:\(topology.claimsLog)"
        let outcomePublish = "publish \(topology.eventsExchange):payment.processed"
        let spans = try await eventually(10, "the last attempt's span") { () -> [FinishedInMemorySpan]? in
            let spans = self.tracer.finishedSpans.filter { $0.traceID == traceID }
            let attempts = spans.filter { $0.kind == .consumer }.count
            let bringers = spans.filter {
                $0.kind == .producer && $0.operationName != claimsLog && $0.operationName != outcomePublish
            }.count
            let done = spans.contains { $0.operationName == outcomePublish } && attempts == bringers
                && spans.filter { $0.operationName == claimsLog }.count == 2
            return done ? spans : nil
        }
        let hops = spans.filter { ($0.kind == .producer || $0.kind == .consumer) && $0.operationName != claimsLog }
            .sorted { $0.startInstant.nanosecondsSinceEpoch < $1.startInstant.nanosecondsSinceEpoch }
        let names = hops.map(\.operationName)
        let attempts = hops.filter { $0.kind == .consumer }.map(attempt(of:))
        XCTAssertGreaterThanOrEqual(attempts.count, 3, "\(names)", file: file, line: line)
        XCTAssertEqual(attempts, (1...max(attempts.count, 1)).map { Int64($0) }, "\(names)", file: file, line: line)
        var expected = ["publish amq.default:\(topology.paymentsQueue)"]
        expected.append("process amq.default:\(topology.paymentsQueue):\(topology.paymentsQueue)")
        for _ in 1..<max(attempts.count, 1) { expected += [retryPublishPrefix, "process \(retryDestination)"] }
        expected.append(outcomePublish)
        XCTAssertEqual(names.count, expected.count, "\(names)", file: file, line: line)
        for (name, pattern) in zip(names, expected) {
            XCTAssertTrue(name.hasPrefix(pattern), "\(name) where \(pattern) was due: \(names)", file: file, line: line)
        }
        // Each attempt is parented on the publish that brought it.
        for (index, hop) in hops.enumerated() where hop.kind == .consumer && index > 0 {
            XCTAssertEqual(hop.parentSpanID, hops[index - 1].spanID, "\(hop.operationName)", file: file, line: line)
        }
        XCTAssertTrue(spans.contains { $0.operationName.hasPrefix("ack ") }, "the attempts' acknowledgements")
        try await observer.close()
    }
}

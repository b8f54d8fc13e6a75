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

    func testAPaymentRetriedTwiceIsOneTraceFromItsPublishToItsOutcome() async throws {
        _ = tracer  // before any connection is made: a connection looks its tracer up once
        let connection = try AMQPConfiguration(url: PaymentTestBroker.url)
        let service = PaymentConsumerService(
            configuration: PaymentConsumerConfiguration(
                connection: connection, policy: RetryPolicy(step: .milliseconds(200), maxDelay: .seconds(1)),
                delayMode: .ttl, topology: topology, hold: .off, summaryInterval: .zero),
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
        let processName = "process amq.default:\(topology.retriesQueue):\(topology.retriesQueue)"
        try await eventually(30, "the second attempt") {
            self.tracer.finishedSpans.contains { $0.operationName == processName && self.attempt(of: $0) == 2 } ? () : nil
        }
        _ = try await producer.send([ClientRegistration(clientId: clientID)])

        let outcome = try await eventually(30, "the payment's outcome") {
            try await observing.get(queue: outcomes, noAck: true)
        }
        XCTAssertEqual(outcome.routingKey, "payment.processed")
        XCTAssertEqual(outcome.properties.headers?[InMemoryTracer.traceIDKey], .string(traceID))

        // Every span of the payment's hops, in the order they started.
        let spans = try await eventually(10, "the outcome's publish span") { () -> [FinishedInMemorySpan]? in
            let spans = self.tracer.finishedSpans.filter { $0.traceID == traceID }
            return spans.contains { $0.operationName.hasPrefix("publish \(self.topology.eventsExchange)") } ? spans : nil
        }
        // The claim and its settlement, appended to the claims stream by the exactly-once design, are in it too.
        let claimsLog = "publish amq.default:\(topology.claimsLog)"
        XCTAssertEqual(spans.filter { $0.operationName == claimsLog }.count, 2, "\(spans.map(\.operationName))")
        let hops = spans.filter { ($0.kind == .producer || $0.kind == .consumer) && $0.operationName != claimsLog }
            .sorted { $0.startInstant.nanosecondsSinceEpoch < $1.startInstant.nanosecondsSinceEpoch }
        let names = hops.map(\.operationName)
        XCTAssertEqual(
            names,
            [
                "publish amq.default:\(topology.paymentsQueue)",
                "process amq.default:\(topology.paymentsQueue):\(topology.paymentsQueue)",
                "publish amq.default:\(topology.delayQueue(for: .milliseconds(200)))",
                processName,
                "publish amq.default:\(topology.delayQueue(for: .milliseconds(400)))",
                processName,
                "publish \(topology.eventsExchange):payment.processed",
            ], "\(names)")
        XCTAssertEqual(hops.filter { $0.kind == .consumer }.map(attempt(of:)), [1, 2, 3])
        // Each attempt is parented on the publish that brought it.
        for (index, hop) in hops.enumerated() where hop.kind == .consumer && index > 0 {
            XCTAssertEqual(hop.parentSpanID, hops[index - 1].spanID, "\(hop.operationName)")
        }
        XCTAssertTrue(spans.contains { $0.operationName.hasPrefix("ack ") }, "the attempts' acknowledgements")
        try await observer.close()
    }
}

import Foundation
import PaymentService
import RabbitMQ
import RabbitMQTestSupport
import XCTest

/// The `consumer` executable bootstraps no tracer (nothing is exported without one): the W3C context a payment
/// arrived with still goes on, through its retry, to its outcome on `payment-events`.
final class TraceContextPassOnTests: PaymentScenarioTestCase {
    func testWithoutATracerTheContextAPaymentArrivedWithReachesItsOutcome() async throws {
        let consumer = try await startConsumer()
        let observing = try await broker.openChannel()
        let outcomes = try await observing.declareQueue(exclusive: true).name
        try await observing.bindQueue(outcomes, to: topology.eventsExchange, routingKey: "payment.#")

        // Published as a traced producer in another process would: with a traceparent header, here set by hand.
        let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        let quiet = try await PaymentTestBroker.connect(name: "payment-tests-traced-producer")
        let channel = try await quiet.openChannel()
        let payment = PaymentRequest(paymentId: "pay-traced", clientId: "client-traced", amount: "1.00", currency: "EUR")
        try await channel.publish(
            try JSONEncoder().encode(payment), routingKey: topology.paymentsQueue,
            properties: AMQPProperties(
                contentType: "application/json", headers: ["traceparent": .string(traceparent)],
                deliveryMode: .persistent, messageID: payment.paymentId))
        try await quiet.close()

        try await consumer.waitForLog("payment retry scheduled", "payment.id=pay-traced ")
        try await produce(["client", "client-traced"], printing: ["client-traced"])
        let outcome = try await eventually(15, "the payment's outcome") {
            try await observing.get(queue: outcomes, noAck: true)
        }
        XCTAssertEqual(outcome.routingKey, "payment.processed")
        XCTAssertEqual(outcome.properties.headers?["traceparent"], .string(traceparent))
        try await assertNothingLeft()
    }
}

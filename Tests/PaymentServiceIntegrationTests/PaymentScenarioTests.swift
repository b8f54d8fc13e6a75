import Foundation
import PaymentService
import RabbitMQ
import XCTest

/// The scenarios, run against the built `consumer` and `producer`.
final class PaymentScenarioTests: PaymentScenarioTestCase {
    /// (a) A payment that arrives before its client is retried, then processed once the client is registered; once.
    func testAPaymentBeforeItsClientIsProcessedOnceTheClientArrives() async throws {
        let consumer = try await startConsumer()
        let outcomes = try await observeOutcomes()

        try await produce(["payment", "client-a", "--payment-id", "pay-a"], printing: ["pay-a"])
        // The first attempt found the client unknown and scheduled a retry.
        try await consumer.waitForLog("payment retry scheduled", "payment.id=pay-a ")
        try await produce(["client", "client-a"], printing: ["client-a"])

        let observed = try await outcomes.next(seconds: 15)
        XCTAssertEqual(observed.outcome.paymentId, "pay-a")
        XCTAssertEqual(observed.outcome.clientId, "client-a")
        XCTAssertEqual(observed.outcome.outcome, .processed)
        XCTAssertGreaterThan(observed.outcome.attempts, 1, "it was processed on a retry, not at once")
        XCTAssertNil(observed.outcome.reason)
        XCTAssertEqual(observed.routingKey, "payment.processed")
        XCTAssertEqual(observed.messageID, "pay-a")

        let later = try await outcomes.drain(for: gracePeriod)
        XCTAssertEqual(later.map(\.description), [], "no second outcome")
        try await assertNothingLeft()
    }

    /// (b) A payment of a known client is processed on its first attempt.
    func testAPaymentAfterItsClientIsProcessedAtOnce() async throws {
        let consumer = try await startConsumer()
        let outcomes = try await observeOutcomes()

        try await register("client-b", with: consumer)
        try await produce(["payment", "client-b", "--payment-id", "pay-b"], printing: ["pay-b"])

        let observed = try await outcomes.next()
        XCTAssertEqual(observed.outcome.paymentId, "pay-b")
        XCTAssertEqual(observed.outcome.clientId, "client-b")
        XCTAssertEqual(observed.outcome.outcome, .processed)
        XCTAssertEqual(observed.outcome.attempts, 1)
        XCTAssertEqual(consumer.logLines(containing: "payment retry scheduled"), 0)

        let later = try await outcomes.drain(for: gracePeriod)
        XCTAssertEqual(later.map(\.description), [])
        try await assertNothingLeft()
    }

    /// (c) The same payment published three times has one outcome; the copies are acknowledged as duplicates.
    func testThreeCopiesOfAPaymentHaveOneOutcome() async throws {
        let consumer = try await startConsumer()
        let outcomes = try await observeOutcomes()
        try await register("client-c", with: consumer)

        for _ in 1...3 {
            try await produce(["payment", "client-c", "--payment-id", "pay-c"], printing: ["pay-c"])
        }

        let observed = try await outcomes.next()
        XCTAssertEqual(observed.outcome.paymentId, "pay-c")
        XCTAssertEqual(observed.outcome.outcome, .processed)
        XCTAssertEqual(observed.outcome.attempts, 1)
        try await consumer.waitForLog("duplicate payment skipped", "payment.id=pay-c ", count: 2)

        let later = try await outcomes.drain(for: gracePeriod)
        XCTAssertEqual(later.map(\.description), [], "one outcome for three copies")
        XCTAssertEqual(consumer.logLines(containing: "payment processed", "payment.id=pay-c "), 1)
        XCTAssertEqual(consumer.logLines(containing: "duplicate payment skipped", "payment.id=pay-c "), 2)
        try await assertNothingLeft()
    }

    /// (c) Copies of a payment that all arrive before the client go round the retries separately; still only one of
    /// them is processed once the client arrives.
    func testCopiesOfAnEarlyPaymentHaveOneOutcome() async throws {
        let consumer = try await startConsumer()
        let outcomes = try await observeOutcomes()

        for _ in 1...3 {
            try await produce(["payment", "client-c2", "--payment-id", "pay-c2"], printing: ["pay-c2"])
        }
        try await consumer.waitForLog("payment retry scheduled", "attempt=1 ", "payment.id=pay-c2 ", count: 3)
        try await produce(["client", "client-c2"], printing: ["client-c2"])

        let observed = try await outcomes.next(seconds: 15)
        XCTAssertEqual(observed.outcome.paymentId, "pay-c2")
        XCTAssertEqual(observed.outcome.outcome, .processed)
        XCTAssertGreaterThan(observed.outcome.attempts, 1)
        try await consumer.waitForLog("duplicate payment skipped", "payment.id=pay-c2 ", count: 2, seconds: 15)

        let later = try await outcomes.drain(for: gracePeriod)
        XCTAssertEqual(later.map(\.description), [], "one outcome for three copies")
        try await assertNothingLeft()
    }

    /// (d) With `--max-attempts 2`, a payment whose client never comes is parked on its third attempt, with a reason
    /// in the outcome and in the parked message's headers.
    func testTheAttemptLimitParksThePayment() async throws {
        try await startConsumer(["--max-attempts", "2"])
        let outcomes = try await observeOutcomes()

        try await produce(["payment", "nobody", "--payment-id", "pay-d", "--amount", "12.34"], printing: ["pay-d"])

        let observed = try await outcomes.next(seconds: 15)
        XCTAssertEqual(observed.outcome.paymentId, "pay-d")
        XCTAssertEqual(observed.outcome.clientId, "nobody")
        XCTAssertEqual(observed.outcome.outcome, .parked)
        XCTAssertEqual(observed.routingKey, "payment.parked")
        XCTAssertEqual(observed.outcome.attempts, 3, "two retries, then the third attempt parks")
        let reason = try XCTUnwrap(observed.outcome.reason, "a parked outcome says why")
        XCTAssertTrue(reason.contains("\"nobody\""), reason)
        XCTAssertTrue(reason.contains("3 attempts"), reason)

        let channel = try await broker.openChannel()
        let parked = try await eventually(5, "the payment in \(topology.parkingLot)") {
            try await channel.get(queue: topology.parkingLot, noAck: true)
        }
        let headers = try XCTUnwrap(parked.properties.headers)
        XCTAssertEqual(headers[PaymentTopology.parkingReasonHeader]?.stringValue, reason)
        XCTAssertEqual(headers[PaymentTopology.parkingSourceHeader]?.stringValue, topology.retriesQueue)
        XCTAssertEqual(headers[PaymentTopology.attemptHeader]?.intValue, 3)
        XCTAssertEqual(parked.properties.messageID, "pay-d")
        XCTAssertEqual(parked.properties.deliveryMode, .persistent)
        XCTAssertEqual(
            try JSONDecoder().decode(PaymentRequest.self, from: parked.body),
            PaymentRequest(paymentId: "pay-d", clientId: "nobody", amount: "12.34", currency: "EUR"))

        let later = try await outcomes.drain(for: gracePeriod)
        XCTAssertEqual(later.map(\.description), [])
        try await assertNothingLeft()
    }
}

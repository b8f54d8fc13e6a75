import Foundation
import PaymentService
import RabbitMQ
import XCTest

/// An instance that dies holding a claim, made exact: the test writes the dead instance's claim (and, in one case,
/// its outcome) into the streams itself, then publishes a copy of the payment. Shows that the copy waits for the
/// lease, takes the claim over, and then either finds the dead holder's outcome (no second outcome) or processes the
/// payment (exactly one outcome).
final class ClaimTakeoverTests: PaymentScenarioTestCase {
    /// The holder died after publishing the outcome, before recording the settlement.
    func testATakeoverFindsTheOutcomeOfAHolderThatDiedBeforeSettling() async throws {
        let consumer = try await startConsumer(["--claim-lease", "5s"])
        let payment = PaymentRequest(paymentId: "takeover-found", clientId: "takeover-client", amount: "1.00", currency: "EUR")
        try await register(payment.clientId, with: consumer)
        try await writeClaim(on: payment.paymentId, as: "dead-instance-1")
        try await publishOutcome(PaymentOutcome(
            paymentId: payment.paymentId, clientId: payment.clientId, attempts: 1, outcome: .processed))
        let observer = try await observeOutcomes()
        let copySent = ContinuousClock.now
        try await publishRaw(JSONEncoder().encode(payment), to: topology.paymentsQueue, messageID: payment.paymentId)

        let id = "payment.id=\(payment.paymentId) "
        try await consumer.waitForLog("duplicate payment skipped", id, seconds: 20)
        XCTAssertGreaterThanOrEqual(
            ContinuousClock.now - copySent, .seconds(3), "the copy was settled before the dead holder's lease ended")
        XCTAssertEqual(consumer.logLines(containing: "took over the expired claim", id, "earlier_outcome=processed"), 1,
            consumer.stderrTail)
        XCTAssertEqual(consumer.logLines(containing: "payment processed", id), 0, consumer.stderrTail)
        let outcomes = try await observer.drain(for: .seconds(2))
        XCTAssertEqual(outcomes.map(\.description), [], "outcomes of the copy")
        await stop(consumer)
        try await assertNothingLeft()
    }

    /// The holder died before publishing anything.
    func testATakeoverProcessesAPaymentWhoseHolderDiedBeforeItsOutcome() async throws {
        let consumer = try await startConsumer(["--claim-lease", "5s"])
        let payment = PaymentRequest(paymentId: "takeover-none", clientId: "takeover-client-2", amount: "1.00", currency: "EUR")
        try await register(payment.clientId, with: consumer)
        try await writeClaim(on: payment.paymentId, as: "dead-instance-1")
        let observer = try await observeOutcomes()
        let copySent = ContinuousClock.now
        try await publishRaw(JSONEncoder().encode(payment), to: topology.paymentsQueue, messageID: payment.paymentId)

        let outcome = try await observer.next(seconds: 20)
        XCTAssertGreaterThanOrEqual(ContinuousClock.now - copySent, .seconds(3), "processed inside the dead holder's lease")
        XCTAssertEqual(outcome.outcome.paymentId, payment.paymentId)
        XCTAssertEqual(outcome.routingKey, PaymentOutcome.Kind.processed.routingKey)
        let id = "payment.id=\(payment.paymentId) "
        XCTAssertEqual(consumer.logLines(containing: "took over the expired claim", id, "earlier_outcome=none"), 1,
            consumer.stderrTail)
        let later = try await observer.drain(for: gracePeriod)
        XCTAssertEqual(later.map(\.description), [], "outcomes after the first")
        await stop(consumer)
        try await assertNothingLeft()
    }

    // MARK: - Helpers

    /// Publishes an outcome to `payment-events` as the dead instance did, stamped now.
    private func publishOutcome(_ outcome: PaymentOutcome) async throws {
        let channel = try await broker.openChannel()
        try await channel.enablePublisherConfirms()
        try await channel.publish(
            JSONEncoder().encode(outcome), exchange: topology.eventsExchange, routingKey: outcome.outcome.routingKey,
            properties: AMQPProperties(
                contentType: "application/json", deliveryMode: .persistent, messageID: outcome.paymentId,
                timestamp: Date()))
        try await channel.close()
    }
}

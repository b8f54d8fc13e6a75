import Foundation
import PaymentService
import RabbitMQ
import XCTest

/// A stop always ends: a handler still waiting when `--shutdown-grace` runs out is cancelled, the consumer exits 0,
/// and the payment goes back to its queue unprocessed, for the next instance to process once.
final class ShutdownGraceTests: PaymentScenarioTestCase {
    func testAHandlerStillWaitingWhenTheGraceEndsIsCancelledAndItsPaymentGoesBack() async throws {
        // Another instance's live claim on the payment makes this instance's copy wait up to the 60 s lease: a
        // handler that a SIGTERM alone does not end.
        let consumer = try await startConsumer([
            "--claim-lease", "60s", "--shutdown-grace", "2s", "--log-level", "debug",
        ])
        let payment = PaymentRequest(
            paymentId: "grace-waiting", clientId: "grace-client", amount: "1.00", currency: "EUR")
        try await register(payment.clientId, with: consumer)
        try await writeClaim(on: payment.paymentId, as: "busy-instance-1")
        let observer = try await observeOutcomes()
        try await publishRaw(JSONEncoder().encode(payment), to: topology.paymentsQueue, messageID: payment.paymentId)
        try await consumer.waitForLog("payment claimed by another copy; waiting", "payment.id=\(payment.paymentId) ")

        let stopping = ContinuousClock.now
        await stop(consumer)
        let stoppedAfter = ContinuousClock.now - stopping
        print("shutdown grace 2 s: exited \(stoppedAfter) after SIGTERM")
        XCTAssertGreaterThanOrEqual(stoppedAfter, .milliseconds(1900), "stopped before the grace was over")
        XCTAssertLessThan(stoppedAfter, .seconds(10), "the grace is 2 s")
        XCTAssertEqual(consumer.logLines(containing: "shutdown grace over", "handlers=1"), 1, consumer.stderrTail)
        XCTAssertEqual(consumer.logLines(containing: "payment processed"), 0, consumer.stderrTail)
        let broker = try broker
        let paymentsQueue = topology.paymentsQueue
        try await eventually(10, "the payment back in \(paymentsQueue)") { () -> Void? in
            try await broker.messageCount(paymentsQueue) == 1 ? () : nil
        }

        // The next instance, with a lease the other claim has outlived, takes it over and processes the payment once.
        // It knows the client from the clients stream.
        let next = try await startConsumer(["--claim-lease", "5s"])
        let outcome = try await observer.next(seconds: 20)
        XCTAssertEqual(outcome.outcome.paymentId, payment.paymentId)
        XCTAssertEqual(outcome.routingKey, PaymentOutcome.Kind.processed.routingKey)
        let later = try await observer.drain(for: gracePeriod)
        XCTAssertEqual(later.map(\.description), [], "outcomes after the first")
        await stop(next)
        try await assertNothingLeft()
    }
}

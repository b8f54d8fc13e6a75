import Foundation
import PaymentService
import RabbitMQ
import XCTest

/// With quorum queues, a consumer that received nothing for `--starved-consumer-limit` with nothing in hand is made
/// anew on a new channel, and the service goes on consuming with it; one with a delivery in hand is left alone; with
/// classic queues nothing is replaced. (What it is for, deliveries RabbitMQ strands after a leader moved, cannot be
/// made to happen on demand; ClusterServiceTests runs the service through such moves.)
final class StarvedConsumerTests: PaymentScenarioTestCase {
    private static let replaced = "consumer made anew on a new channel"

    func testAnIdleQuorumConsumerIsMadeAnewAndTheServiceGoesOnConsuming() async throws {
        holdTime = "8s"
        let consumer = try await startConsumer(["--queue-type", "quorum", "--starved-consumer-limit", "2s"])
        let payments = "queue=\(topology.paymentsQueue)"
        try await consumer.waitForLog(Self.replaced, payments, seconds: 10)

        // A held payment is in hand for up to 8 s: its consumer is not replaced meanwhile, however idle.
        let held = PaymentRequest(paymentId: "starved-held", clientId: "starved-late", amount: "1.00", currency: "EUR")
        let observer = try await observeOutcomes()
        try await publishRaw(JSONEncoder().encode(held), to: topology.paymentsQueue, messageID: held.paymentId)
        try await Task.sleep(for: .milliseconds(600))
        let replacementsBeforeHold = consumer.logLines(containing: Self.replaced, payments)
        try await Task.sleep(for: .seconds(4))
        XCTAssertEqual(
            consumer.logLines(containing: Self.replaced, payments), replacementsBeforeHold,
            "replaced with a payment in hand:\n\(consumer.stderrTail)")

        // The registration wakes the held payment: processed once, through the replaced consumers.
        try await register(held.clientId, with: consumer)
        let outcome = try await observer.next(seconds: 10)
        XCTAssertEqual(outcome.outcome.paymentId, held.paymentId)
        XCTAssertEqual(outcome.routingKey, PaymentOutcome.Kind.processed.routingKey)

        // And a payment that arrives after more replacements is processed too.
        try await consumer.waitForLog(Self.replaced, payments, count: replacementsBeforeHold + 1, seconds: 10)
        let later = PaymentRequest(
            paymentId: "starved-later", clientId: "starved-late", amount: "2.00", currency: "EUR")
        try await publishRaw(JSONEncoder().encode(later), to: topology.paymentsQueue, messageID: later.paymentId)
        let second = try await observer.next(seconds: 10)
        XCTAssertEqual(second.outcome.paymentId, later.paymentId)
        let extra = try await observer.drain(for: gracePeriod)
        XCTAssertEqual(extra.map(\.description), [], "outcomes after the two")
        await stop(consumer)
        try await assertNothingLeft()
    }

    func testClassicQueueConsumersAreNeverReplaced() async throws {
        let consumer = try await startConsumer(["--starved-consumer-limit", "1s"])
        try await Task.sleep(for: .seconds(3))
        XCTAssertEqual(consumer.logLines(containing: Self.replaced), 0, consumer.stderrTail)
        await stop(consumer)
    }
}

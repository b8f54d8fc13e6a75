import Foundation
import PaymentService
import RabbitMQ
import XCTest

/// Exactly one outcome per `paymentId`: copies of a payment published at once to several instances, an instance
/// killed mid-run, copies inside and outside `--dedupe-window`, and a copy that arrives while the first one waits
/// in its delayed retry.
final class ExactlyOnceTests: PaymentScenarioTestCase {
    override func setUp() async throws {
        try await super.setUp()
        holdTime = "5s"
    }

    /// How many copies of each payment the copy race publishes, back to back.
    private static let copies = 3

    /// Three instances, 1,000 payments published three times each; half of the clients are registered before their
    /// payments, half 0 to 2 s after. Shows that every payment gets exactly one outcome, none is parked, every copy
    /// is consumed and acknowledged, and nothing is left in the queues.
    func testThreeCopiesOfEveryPaymentOnThreeInstancesGiveOneOutcomeEach() async throws {
        try await runCopyRace(killingAnInstance: false)
    }

    /// The same race with one of the three instances killed (SIGKILL) a second into it and started again. Shows that
    /// a crash, and the redeliveries it causes, still leave every payment with exactly one outcome.
    func testThreeCopiesOfEveryPaymentWithAKilledInstanceGiveOneOutcomeEach() async throws {
        try await runCopyRace(killingAnInstance: true)
    }

    /// `--dedupe-window 3s`: a copy published within a second of the payment's outcome is acknowledged as
    /// `duplicate payment skipped` with no second outcome; a copy 8 s after the outcome is processed again (a second
    /// `payment.processed`); and a fresh instance, started when the window has passed, processes a late copy too.
    func testDedupeWindowSkipsACopyInsideItAndProcessesCopiesWellAfterIt() async throws {
        let consumer = try await startConsumer(["--dedupe-window", "3s"])
        let observer = try await observeOutcomes()
        try await register("window-client", with: consumer)
        let payment = PaymentRequest(
            paymentId: "window-pay", clientId: "window-client", amount: "5.00", currency: "EUR")
        try await publishCopy(of: payment)
        let first = try await observer.next(seconds: 10)
        let settled = ContinuousClock.now
        XCTAssertEqual(first.outcome.paymentId, payment.paymentId)
        XCTAssertEqual(first.routingKey, PaymentOutcome.Kind.processed.routingKey)

        // Inside the window: skipped.
        try await publishCopy(of: payment)
        XCTAssertLessThan(ContinuousClock.now - settled, .seconds(1), "the copy went out within a second")
        try await consumer.waitForLog("duplicate payment skipped", "payment.id=\(payment.paymentId) ", seconds: 5)
        let inside = try await observer.drain(for: .seconds(2))
        XCTAssertEqual(inside.map(\.description), [], "outcomes of a copy inside the window")

        // Well outside it: processed again.
        try await Task.sleep(until: settled + .seconds(8))
        try await publishCopy(of: payment)
        let second = try await eventually(10, "an outcome for a copy 8 s after the first outcome (window 3 s)") {
            try await observer.poll()
        }
        let resettled = ContinuousClock.now
        XCTAssertEqual(second.outcome.paymentId, payment.paymentId)
        XCTAssertEqual(second.routingKey, PaymentOutcome.Kind.processed.routingKey)
        let afterSecond = try await observer.drain(for: gracePeriod)
        XCTAssertEqual(afterSecond.map(\.description), [], "outcomes after the copy outside the window")
        XCTAssertEqual(consumer.logLines(containing: "payment processed", "payment.id=\(payment.paymentId) "), 2)
        await stop(consumer)

        // A fresh instance reads only the window of outcomes at start: a late copy is new to it.
        try await Task.sleep(until: resettled + .seconds(6))
        let fresh = try await startConsumer(["--dedupe-window", "3s"])
        try await fresh.waitForLog("caught up with the shared streams", seconds: 30)
        try await publishCopy(of: payment)
        let third = try await eventually(10, "an outcome for a late copy on an instance started after the window") {
            try await observer.poll()
        }
        XCTAssertEqual(third.outcome.paymentId, payment.paymentId)
        XCTAssertEqual(third.routingKey, PaymentOutcome.Kind.processed.routingKey)
        XCTAssertEqual(fresh.logLines(containing: "duplicate payment skipped"), 0, fresh.stderrTail)
        await stop(fresh)
        try await assertNothingLeft()
    }

    /// Hold off: a payment of an unknown client goes into its delayed retry (2.5 s); meanwhile its client is
    /// registered and a second copy is published. Shows that exactly one outcome arrives, and none more in the 3 s
    /// after the retried copy came back and was settled too.
    func testACopyPublishedWhileTheFirstWaitsInItsDelayGetsNoSecondOutcome() async throws {
        holdTime = "0s"
        // 2.5 s and 5 s delays: queues the clean-up knows (those of the fault tests' 500 ms step).
        let consumer = try await startConsumer(["--retry-step", "2500ms", "--max-attempts", "2"])
        let observer = try await observeOutcomes()
        let payment = PaymentRequest(
            paymentId: "copy-in-delay", clientId: "late-client", amount: "7.00", currency: "EUR")
        let id = "payment.id=\(payment.paymentId) "
        try await publishCopy(of: payment)
        try await consumer.waitForLog("payment retry scheduled", id, seconds: 10)
        let delayed = ContinuousClock.now

        try await register(payment.clientId, with: consumer)
        try await publishCopy(of: payment)
        XCTAssertLessThan(
            ContinuousClock.now - delayed, .milliseconds(2500), "the second copy went out while the first waited")
        let outcome = try await observer.next(seconds: 15)
        XCTAssertEqual(outcome.outcome.paymentId, payment.paymentId)
        XCTAssertEqual(outcome.routingKey, PaymentOutcome.Kind.processed.routingKey)

        // Both copies settled: one processed, the other skipped, whichever came first.
        try await eventually(15, "both copies to be settled; the log ends with:\n\(consumer.stderrTail)") {
            () -> Void? in
            consumer.logLines(containing: "payment processed", id)
                + consumer.logLines(containing: "duplicate payment skipped", id) >= 2 ? () : nil
        }
        let later = try await observer.drain(for: .seconds(3))
        XCTAssertEqual(later.map(\.description), [], "outcomes after the retried copy came back")
        XCTAssertEqual(consumer.logLines(containing: "payment processed", id), 1, consumer.stderrTail)
        XCTAssertGreaterThanOrEqual(consumer.logLines(containing: "duplicate payment skipped", id), 1)
        await stop(consumer)
        try await assertNothingLeft()
        let broker = try broker
        for delay in [Duration.milliseconds(2500), .seconds(5)] {
            let queue = topology.delayQueue(for: delay)
            guard let info = try await broker.queueInfo(queue) else { continue }
            XCTAssertEqual(info.messageCount, 0, "messages left in \(queue)")
        }
    }

    // MARK: - Helpers

    /// The copy race of the first two tests, and its checks.
    private func runCopyRace(killingAnInstance: Bool) async throws {
        var instances = [try await startConsumer(), try await startConsumer(), try await startConsumer()]
        let observer = try await observeOutcomes()
        let raceTopology = topology
        async let published = Self.publishCopyRace(
            topology: raceTopology, payments: 1000, perSecond: 500, seed: killingAnInstance ? 11 : 10)

        var killed: RunningProgram?
        if killingAnInstance {
            try await Task.sleep(for: .seconds(1))
            instances[1].crash()
            _ = try? await instances[1].waitForExit(seconds: 10)
            killed = instances[1]
            try await Task.sleep(for: .milliseconds(500))
            instances[1] = try await startConsumer()
            try await instances[1].waitForLog("caught up with the shared streams", seconds: 30)
        }
        let paymentIDs = try await published

        var outcomes: [String: [ObservedOutcome]] = [:]
        try await eventually(120, "an outcome for every payment (\(outcomes.count) of \(paymentIDs.count) so far)") {
            () -> Void? in
            for outcome in try await observer.takeAll() {
                outcomes[outcome.outcome.paymentId, default: []].append(outcome)
            }
            return outcomes.count >= paymentIDs.count ? () : nil
        }
        // A second outcome of any of them would show up within a moment.
        for outcome in try await observer.drain(for: .seconds(3)) {
            outcomes[outcome.outcome.paymentId, default: []].append(outcome)
        }

        let duplicated = outcomes.filter { $0.value.count > 1 }
        let parked = outcomes.values.joined().filter { $0.outcome.outcome == .parked }
        let everyInstance = instances + (killed.map { [$0] } ?? [])
        let skipped = everyInstance.map { $0.logLines(containing: "duplicate payment skipped") }.reduce(0, +)
        let processed = everyInstance.map { $0.logLines(containing: "payment processed") }.reduce(0, +)
        print(
            "exactly-once (\(instances.count) instances\(killingAnInstance ? ", one killed and restarted" : "")): "
                + "payments=\(paymentIDs.count) copies=\(paymentIDs.count * Self.copies) "
                + "outcomes=\(outcomes.values.joined().count) duplicates=\(duplicated.count) parked=\(parked.count) "
                + "processed_lines=\(processed) duplicate_skipped_lines=\(skipped)")
        XCTAssertEqual(Set(outcomes.keys), Set(paymentIDs), "payments with an outcome")
        XCTAssertTrue(
            duplicated.isEmpty,
            "\(duplicated.count) payments with more than one outcome, such as "
                + "\(duplicated.sorted { $0.key < $1.key }.prefix(3).map { "\($0.key): \($0.value)" })")
        XCTAssertTrue(parked.isEmpty, "parked: \(parked.prefix(5))")

        for instance in instances { await stop(instance) }
        try await assertNothingLeft()
    }

    /// One message of the copy race's schedule; `order` keeps the schedule's order among messages due together.
    private struct Scheduled {
        let due: ContinuousClock.Instant
        let order: Int
        let queue: String
        let body: Data
        let messageID: String
    }

    /// Publishes `payments` payments of distinct clients at `perSecond`, each as ``copies`` copies back to back on
    /// one channel. The registration of an even-numbered client goes out up to 0.5 s before its payment, that of an
    /// odd-numbered one 0 to 2 s after it. Waits for every confirm; returns the payment ids.
    private static func publishCopyRace(
        topology: PaymentTopology, payments: Int, perSecond: Double, seed: UInt64
    ) async throws -> [String] {
        let encoder = JSONEncoder()
        var generator = SeededGenerator(seed: seed)
        let start = ContinuousClock.now
        var schedule: [Scheduled] = []
        var paymentIDs: [String] = []
        for index in 0..<payments {
            let client = "once-client-\(index)"
            let payment = PaymentRequest(paymentId: "once-\(index)", clientId: client, amount: "12.34", currency: "EUR")
            paymentIDs.append(payment.paymentId)
            let paidAt = start + .milliseconds(Int(Double(index) / perSecond * 1000))
            let registeredAt =
                index.isMultiple(of: 2)
                ? paidAt - .milliseconds(Int.random(in: 0...500, using: &generator))
                : paidAt + .milliseconds(Int.random(in: 0...2000, using: &generator))
            let registration = try encoder.encode(ClientRegistration(clientId: client))
            schedule.append(
                Scheduled(
                    due: registeredAt, order: schedule.count, queue: topology.clientsQueue, body: registration,
                    messageID: client))
            let body = try encoder.encode(payment)
            for _ in 0..<copies {
                schedule.append(
                    Scheduled(
                        due: paidAt, order: schedule.count, queue: topology.paymentsQueue, body: body,
                        messageID: payment.paymentId))
            }
        }
        schedule.sort { ($0.due, $0.order) < ($1.due, $1.order) }

        let connection = try await PaymentTestBroker.connect(name: "exactly-once-producer")
        do {
            let channel = try await connection.openChannel()
            try await channel.enablePublisherConfirms(maxOutstanding: 1000)
            var pending: [AMQPPublishConfirmation] = []
            for item in schedule {
                if item.due > .now { try await Task.sleep(until: item.due) }
                let properties = AMQPProperties(
                    contentType: "application/json", deliveryMode: .persistent, messageID: item.messageID)
                if let confirmation = try await channel.startPublish(
                    item.body, routingKey: item.queue, properties: properties, mandatory: true)
                {
                    pending.append(confirmation)
                }
            }
            for confirmation in pending { try await confirmation.wait() }
            try await connection.close()
        } catch {
            try? await connection.close()
            throw error
        }
        return paymentIDs
    }

    /// Publishes one copy of `payment` to the payments queue, confirmed, as the producer would.
    private func publishCopy(of payment: PaymentRequest) async throws {
        try await publishRaw(JSONEncoder().encode(payment), to: topology.paymentsQueue, messageID: payment.paymentId)
    }
}

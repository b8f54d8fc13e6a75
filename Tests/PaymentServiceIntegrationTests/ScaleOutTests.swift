import Foundation
import PaymentService
import RabbitMQ
import XCTest

/// Several consumer instances, restarts and crashes: the registry and the record of outcomes live in RabbitMQ
/// streams, so every instance knows every client and no payment gets two outcomes.
final class ScaleOutTests: PaymentScenarioTestCase {
    override func setUp() async throws {
        try await super.setUp()
        holdTime = "5s"
    }

    /// Publishes one payment per client, and each client's registration after a random lag, on schedule.
    private static func publishRace(
        topology: PaymentTopology, clients: Int, paymentsPerSecond: Double, maxLag: Duration, seed: UInt64
    ) async throws -> [String] {
        let connection = try await PaymentTestBroker.connect(name: "scale-out-producer")
        let channel = try await connection.openChannel()
        try await channel.enablePublisherConfirms(maxOutstanding: 1000)
        var generator = SeededGenerator(seed: seed)
        let start = ContinuousClock.now
        var schedule: [(due: ContinuousClock.Instant, queue: String, body: Data, id: String)] = []
        var paymentIDs: [String] = []
        let encoder = JSONEncoder()
        let maxLagMilliseconds = Int(maxLag.components.seconds * 1000)
        for index in 0..<clients {
            let client = "client-\(index)"
            let payment = PaymentRequest(paymentId: "payment-\(index)", clientId: client, amount: "10.00", currency: "EUR")
            paymentIDs.append(payment.paymentId)
            let paidAt = start + .milliseconds(Int(Double(index) / paymentsPerSecond * 1000))
            let lag = Duration.milliseconds(Int.random(in: 0...maxLagMilliseconds, using: &generator))
            schedule.append((paidAt, topology.paymentsQueue, try encoder.encode(payment), payment.paymentId))
            schedule.append(
                (paidAt + lag, topology.clientsQueue, try encoder.encode(ClientRegistration(clientId: client)), client))
        }
        schedule.sort { $0.due < $1.due }
        var pending: [AMQPPublishConfirmation] = []
        for item in schedule {
            if item.due > .now { try await Task.sleep(until: item.due) }
            let confirmation = try await channel.startPublish(
                item.body, routingKey: item.queue,
                properties: AMQPProperties(contentType: "application/json", deliveryMode: .persistent, messageID: item.id),
                mandatory: true)
            if let confirmation { pending.append(confirmation) }
        }
        for confirmation in pending { try await confirmation.wait() }
        try await connection.close()
        return paymentIDs
    }

    func testThreeInstancesWithAKilledOneProcessEveryPaymentExactlyOnce() async throws {
        let instances = [try await startConsumer(), try await startConsumer(), try await startConsumer()]
        let observer = try await observeOutcomes()
        let raceTopology = topology
        async let published = Self.publishRace(
            topology: raceTopology, clients: 5000, paymentsPerSecond: 1000, maxLag: .seconds(3), seed: 42)

        // Mid-run, one instance dies without any chance to clean up, and comes back.
        try await Task.sleep(for: .seconds(2))
        instances[1].crash()
        _ = try? await instances[1].waitForExit(seconds: 10)
        try await Task.sleep(for: .milliseconds(500))
        let restarted = try await startConsumer()
        try await restarted.waitForLog("caught up with the shared streams", seconds: 30)

        let paymentIDs = try await published
        var outcomes: [String: [ObservedOutcome]] = [:]
        try await eventually(90, "every payment to be processed (\(outcomes.count) of \(paymentIDs.count) so far)") {
            () -> Void? in
            for outcome in try await observer.takeAll() { outcomes[outcome.outcome.paymentId, default: []].append(outcome) }
            return outcomes.count == paymentIDs.count ? () : nil
        }
        // Late duplicates would show up within a moment.
        for outcome in try await observer.drain(for: .seconds(3)) {
            outcomes[outcome.outcome.paymentId, default: []].append(outcome)
        }

        let duplicated = outcomes.filter { $0.value.count > 1 }
        let parked = outcomes.values.flatMap { $0 }.filter { $0.outcome.outcome == .parked }
        XCTAssertEqual(Set(outcomes.keys), Set(paymentIDs))
        XCTAssertTrue(duplicated.isEmpty, "payments with more than one outcome: \(duplicated.keys.sorted().prefix(10))")
        XCTAssertTrue(parked.isEmpty, "parked: \(parked.prefix(5))")
        let retried = instances.map { $0.logLines(containing: "payment retry scheduled") }.reduce(0, +)
            + restarted.logLines(containing: "payment retry scheduled")
        print("scale-out: \(paymentIDs.count) payments, 0 duplicates, 0 parked, \(retried) retries")

        for instance in [instances[0], instances[2], restarted] { await stop(instance) }
        try await assertNothingLeft()
    }

    func testARestartedConsumerKnowsEarlierClientsAtOnce() async throws {
        let first = try await startConsumer()
        for client in ["old-1", "old-2"] { try await register(client, with: first) }
        await stop(first)

        let second = try await startConsumer()
        try await second.waitForLog("caught up with the shared streams", "clients=2")
        let observer = try await observeOutcomes()
        try await produce(["payment", "old-2", "--payment-id", "after-restart"], printing: ["after-restart"])
        let outcome = try await observer.next(seconds: 10)
        XCTAssertEqual(outcome.outcome.paymentId, "after-restart")
        XCTAssertEqual(outcome.outcome.outcome, .processed)
        XCTAssertEqual(outcome.outcome.attempts, 1)
        XCTAssertEqual(second.logLines(containing: "payment retry scheduled"), 0)
        await stop(second)
    }

    func testAPaymentIsHeldAndWokenByItsRegistrationFromAnotherInstance() async throws {
        let holder = try await startConsumer()
        let other = try await startConsumer()
        let observer = try await observeOutcomes()
        try await produce(["payment", "late-client", "--payment-id", "held"], printing: ["held"])
        try await Task.sleep(for: .milliseconds(500))
        let registered = ContinuousClock.now
        try await produce(["client", "late-client"], printing: ["late-client"])
        let outcome = try await observer.next(seconds: 10)
        XCTAssertEqual(outcome.outcome.paymentId, "held")
        XCTAssertEqual(outcome.outcome.attempts, 1, "woken, not retried")
        XCTAssertLessThan(ContinuousClock.now - registered, .seconds(3))
        let retries = [holder, other].map { $0.logLines(containing: "payment retry scheduled") }.reduce(0, +)
        XCTAssertEqual(retries, 0)
        for instance in [holder, other] { await stop(instance) }
    }

    func testQuorumQueueTypeDeclaresReplicatedQueuesWithDeliveryLimitAndDeadLettering() async throws {
        let consumer = try await startConsumer(["--queue-type", "quorum"])
        let listing = try PaymentTestBroker.rabbitmqctl(
            "list_queues", "name", "type", "arguments", "--no-table-headers", "-q")
        for queue in [topology.clientsQueue, topology.paymentsQueue, topology.retriesQueue] {
            let line: String = try XCTUnwrap(
                listing.split(separator: "\n").map(String.init).first { $0.hasPrefix(queue + "\t") }, listing)
            XCTAssertTrue(line.contains("quorum"), line)
            XCTAssertTrue(line.contains("x-delivery-limit"), line)
            XCTAssertTrue(line.contains(topology.parkingLot), line)
        }
        let parking: String = try XCTUnwrap(
            listing.split(separator: "\n").map(String.init).first { $0.hasPrefix(topology.parkingLot + "\t") })
        XCTAssertTrue(parking.contains("quorum"))

        // The service works the same on them.
        let observer = try await observeOutcomes()
        try await register("quorum-client", with: consumer)
        try await produce(["payment", "quorum-client", "--payment-id", "on-quorum"], printing: ["on-quorum"])
        let outcome = try await observer.next(seconds: 10)
        XCTAssertEqual(outcome.outcome.paymentId, "on-quorum")
        XCTAssertEqual(outcome.outcome.outcome, .processed)
        await stop(consumer)
    }
}

/// A small deterministic generator (SplitMix64), so a run's lags can be reproduced.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var value = state
        value = (value ^ (value >> 30)) &* 0xBF58_476D_1CE4_E5B9
        value = (value ^ (value >> 27)) &* 0x94D0_49BB_1331_11EB
        return value ^ (value >> 31)
    }
}

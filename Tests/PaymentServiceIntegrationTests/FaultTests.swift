import Foundation
import PaymentService
import RabbitMQ
import RabbitMQTestSupport
import Synchronization
import XCTest

/// The service and the producer while things fail: processes killed, connections closed under them, the broker
/// stopped and started. Nothing may be lost and nothing may be processed twice.
final class FaultTests: PaymentScenarioTestCase {
    override func setUp() async throws {
        try await super.setUp()
        holdTime = "5s"
    }

    // MARK: - Producer

    func testProducerSurvivesAConnectionClosedMidRun() async throws {
        // The consumer declares the topology, then leaves the payments in their queue for counting.
        await stop(try await startConsumer())
        let proxy = try LoopbackProxy(targetPort: try AMQPConfiguration(url: PaymentTestBroker.url).port)
        defer { proxy.close() }
        let producer = try RunningProgram(
            "producer",
            [
                "payment", "busy-client", "--count", "10000", "--payment-id", "bulk",
                "--url", "amqp://guest:guest@127.0.0.1:\(proxy.port)/", "--name-prefix", prefix,
            ])
        let broker = try broker
        let queue = topology.paymentsQueue
        // Mid-run: once a thousand payments are in, the connection is cut under the producer.
        try await eventually(30, "the producer to publish a thousand payments") { () -> Void? in
            try await broker.messageCount(queue) >= 1000 ? () : nil
        }
        proxy.dropConnections()

        let result = try await producer.waitForExit(seconds: 120)
        XCTAssertEqual(result.status, 0, "producer: \(result.stderrTail)")
        let expected = Set((1...10_000).map { "bulk-\($0)" })
        XCTAssertEqual(result.stdoutLines.count, 10_000, "every id reported once")
        XCTAssertEqual(Set(result.stdoutLines), expected)
        XCTAssertTrue(
            result.stderr.contains("publishing again the messages whose confirm was lost"),
            "the connection was not cut mid-run: \(result.stderrTail)")

        // Everything confirmed is in the queue (a message whose confirm was lost may be there twice).
        var seen = Set<String>()
        let channel = try await broker.openChannel()
        while let delivery = try await channel.get(queue: queue, noAck: true) {
            if let id = delivery.properties.messageID { seen.insert(id) }
        }
        XCTAssertEqual(seen, expected)
    }

    // MARK: - Service

    func testServiceUnderFaultsProcessesEveryPaymentExactlyOnce() async throws {
        var consumer = try await startConsumer(["--retry-step", "500ms"])
        let raceTopology = topology
        async let published = Self.publishRace(topology: raceTopology, payments: 2000, perSecond: 200, maxLag: 3)

        // Faults at seeded random moments of the ~10 s publishing window.
        var generator = SeededGenerator(seed: 7)
        func pause(_ range: ClosedRange<Int>) async throws {
            try await Task.sleep(for: .milliseconds(Int.random(in: range, using: &generator)))
        }
        var faults: [String] = []
        try await pause(500...1500)
        consumer.crash()
        faults.append("SIGKILL")
        consumer = try await restartConsumer()
        try await pause(300...1000)
        try await forceCloseConsumerConnectionsOnceBack()
        faults.append("close_connection")
        try await pause(300...1000)
        consumer.crash()
        faults.append("SIGKILL")
        consumer = try await restartConsumer()
        try await pause(300...800)
        _ = try PaymentTestBroker.rabbitmqctl("stop_app")
        try await Task.sleep(for: .seconds(2))
        _ = try PaymentTestBroker.rabbitmqctl("start_app")
        _ = try PaymentTestBroker.rabbitmqctl("await_startup")
        faults.append("stop_app/start_app")
        try await pause(500...1500)
        try await forceCloseConsumerConnectionsOnceBack()
        faults.append("close_connection")
        try await pause(300...1000)
        consumer.crash()
        faults.append("SIGKILL")
        consumer = try await restartConsumer()

        let paymentIDs = try await published
        // The outcomes stream holds every outcome ever published: read it all, until every payment has one.
        let outcomes = try await readOutcomes(expecting: Set(paymentIDs), seconds: 120)
        let processed = outcomes.filter { $0.outcome == .processed }
        let counts = Dictionary(grouping: processed, by: \.paymentId).mapValues(\.count)
        let parked = outcomes.filter { $0.outcome == .parked }
        let missing = Set(paymentIDs).subtracting(counts.keys)
        let duplicated = counts.filter { $0.value > 1 }
        print(
            "service under faults (\(faults.joined(separator: ", "))): payments=\(paymentIDs.count) "
                + "processed=\(counts.count) duplicates=\(duplicated.count) parked=\(parked.count) missing=\(missing.count)")
        XCTAssertTrue(missing.isEmpty, "no outcome for \(missing.sorted().prefix(10))")
        XCTAssertTrue(duplicated.isEmpty, "more than one outcome for \(duplicated.keys.sorted().prefix(10))")
        XCTAssertTrue(parked.isEmpty, "parked: \(parked.prefix(5))")
        await stop(consumer)
    }

    /// Starts a consumer again, retrying while the broker is not reachable (a consumer that cannot connect at
    /// start exits non-zero, as it should).
    private func restartConsumer() async throws -> RunningProgram {
        var lastError: (any Error)?
        for _ in 0..<15 {
            do {
                return try await startConsumer(["--retry-step", "500ms"])
            } catch {
                lastError = error
                try await Task.sleep(for: .seconds(1))
            }
        }
        throw lastError ?? TestTimeout(seconds: 15, what: "the consumer to start")
    }

    /// Closes the consumer's connections as soon as they exist: after a broker restart they come back only when
    /// the consumer's recovery, backing off, tries again.
    private func forceCloseConsumerConnectionsOnceBack() async throws {
        try await eventually(60, "the consumer's connections to be back", every: .milliseconds(500)) { () -> Void? in
            try self.forceCloseConsumerConnections() > 0 ? () : nil
        }
    }

    /// Closes the consumer's connections on the broker's side, as an operator would; returns how many.
    private func forceCloseConsumerConnections() throws -> Int {
        let listing = try PaymentTestBroker.rabbitmqctl(
            "list_connections", "pid", "client_properties", "--no-table-headers", "-q")
        var closed = 0
        for line in listing.split(separator: "\n")
        where line.contains("\"payment-consumer\"") || line.contains("\"payment-consumer-publisher\"") {
            guard let pid = line.split(separator: "\t").first else { continue }
            _ = try PaymentTestBroker.rabbitmqctl("close_connection", String(pid), "closed by a fault test")
            closed += 1
        }
        return closed
    }

    /// Publishes one payment per client and each registration after a random lag, each with a confirm, trying again
    /// while the connection recovers (so a payment may be published twice: the service must cope).
    private static func publishRace(
        topology: PaymentTopology, payments: Int, perSecond: Double, maxLag: Int
    ) async throws -> [String] {
        let connection = try await PaymentTestBroker.connect(name: "fault-test-producer")
        let channel = try await connection.openChannel()
        try await channel.enablePublisherConfirms()
        let race = try PaymentRaceSchedule(
            name: "faulty", topology: topology, payments: payments, perSecond: perSecond, maxLag: maxLag, seed: 99)
        for item in race.messages {
            if item.due > .now { try await Task.sleep(until: item.due) }
            let properties = AMQPProperties(contentType: "application/json", deliveryMode: .persistent, messageID: item.id)
            while true {
                do {
                    try await channel.publish(item.body, routingKey: item.queue, properties: properties, mandatory: true)
                    break
                } catch let error as AMQPError where error.isRetriable {
                    try await Task.sleep(for: .milliseconds(200))
                }
            }
        }
        try await connection.close()
        return race.paymentIDs
    }

    /// Reads the outcomes stream from its start until every expected payment has an outcome, then a little longer
    /// for late duplicates.
    private func readOutcomes(expecting ids: Set<String>, seconds: Double) async throws -> [PaymentOutcome] {
        let connection = try await PaymentTestBroker.connect(name: "fault-test-outcomes")
        let channel = try await connection.openChannel()
        try await channel.setPrefetch(1000)
        let consumer = try await channel.consume(queue: topology.outcomesLog, arguments: ["x-stream-offset": "first"])
        let collected = Mutex<[PaymentOutcome]>([])
        let reader = Task {
            for try await delivery in consumer {
                try await delivery.ack()
                if let outcome = try? JSONDecoder().decode(PaymentOutcome.self, from: delivery.body) {
                    collected.withLock { $0.append(outcome) }
                }
            }
        }
        defer { reader.cancel() }
        try await eventually(seconds, "an outcome for every payment", every: .milliseconds(200)) { () -> Void? in
            let seen = Set(collected.withLock { $0.map(\.paymentId) })
            return ids.isSubset(of: seen) ? () : nil
        }
        try await Task.sleep(for: .seconds(3))
        try await consumer.cancel()
        try await connection.close()
        return collected.withLock { $0 }
    }
}

import Foundation
import PaymentService
import RabbitMQ
import RabbitMQTestSupport
import XCTest

/// The service on the real three-node test cluster (scripts/start-cluster.sh): three instances, each given every
/// node's URL, on quorum queues, while nodes crash. Skipped outside CI when the cluster does not run.
final class ClusterServiceTests: PaymentScenarioTestCase {
    /// Nodes this test killed and has not started again: tearDown starts them, so the cluster is whole afterwards
    /// even when the test fails halfway.
    private var killedNodes: Set<Int> = []
    /// The test's consumer instances, whose logs tearDown keeps when the test failed (the base class deletes them).
    private var instances: [RunningProgram] = []

    /// The test's names, on quorum queues.
    private var clusterTopology: PaymentTopology { PaymentTopology(prefix: prefix, queueType: .quorum) }

    override func setUp() async throws {
        try TestCluster.requireCluster { XCTSkip($0) }
        try await super.setUp()
    }

    override func tearDown() async throws {
        if (testRun?.totalFailureCount ?? 0) > 0 {
            for (index, instance) in instances.enumerated() {
                let file = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)instance-\(index + 1).log")
                try? instance.stderr.write(to: file, atomically: true, encoding: .utf8)
                print("instance \(index + 1)'s log: \(file.path)")
            }
        }
        for node in killedNodes.sorted() {
            do {
                try await startAndWait(node: node)
            } catch {
                XCTFail("could not start cluster node \(node) again: \(error)")
            }
        }
        if !prefix.isEmpty, let admin = try? await ClusterScenario.connect(name: "cluster-test-cleanup") {
            do {
                try await admin.deleteTopology(clusterTopology)
            } catch {
                XCTFail("could not delete the cluster queues of prefix \(prefix): \(error)")
            }
            try? await admin.close()
        }
        try await super.tearDown()
    }

    func testThreeInstancesOnQuorumQueuesProcessEveryPaymentOnceThroughNodeLosses() async throws {
        let began = ContinuousClock.now
        let topology = clusterTopology
        var instances: [RunningProgram] = []
        for node in TestCluster.nodes {
            instances.append(try startClusterConsumer(firstNode: node))
        }
        self.instances = instances
        for instance in instances {
            try await instance.waitForLog("payment consumer running", seconds: 60)
        }
        assertEveryQueueIsReplicatedOnEveryNode()

        // 2,000 payments over 50 s, each registration 0 to 3 s after its payment, while both faults land.
        // The last fifth waits for the second fault: a node may take 10 to 40 s to start again, and the second kill
        // must land while payments still come.
        let raceStart = Date()
        let lastPayments = RaceGate()
        async let published = ClusterScenario.publishRace(
            topology: topology, payments: 2000, perSecond: 40, maxLag: 3, seed: 2024, gate: lastPayments)

        // Fault 1: the node holding the most connections crashes, and comes back.
        try await Task.sleep(for: .seconds(3))
        let first = try await busiestNode(among: TestCluster.nodes)
        let firstKill = Date()
        try await kill(node: first)
        try await Task.sleep(for: .seconds(1))
        try await startAndWait(node: first)

        // Fault 2: another node crashes for good (tearDown starts it again).
        try await Task.sleep(for: .seconds(2))
        let second = try await busiestNode(among: TestCluster.nodes.filter { $0 != first })
        let secondKill = Date()
        try await kill(node: second)
        lastPayments.open()

        let race = try await published
        let raceEnd = Date()
        let liveNode = TestCluster.nodes.first { $0 != second } ?? 1
        let outcomes = try await ClusterScenario.readOutcomes(
            of: topology, expecting: Set(race.paymentIDs), seconds: 120, first: liveNode)

        let processed = outcomes.filter { $0.outcome == .processed }
        let counts = Dictionary(grouping: processed, by: \.paymentId).mapValues(\.count)
        let parked = outcomes.filter { $0.outcome == .parked }
        let missing = Set(race.paymentIDs).subtracting(counts.keys)
        let duplicated = counts.filter { $0.value > 1 }
        var where_ = ""
        if !missing.isEmpty || !parked.isEmpty {
            // Where the unsettled payments are: the queues' depths, and whether the clients stream holds the
            // registrations of the payments without a processed outcome.
            let inLog = try await ClusterScenario.clientsInLog(of: topology, first: liveNode)
            let unsettled = missing.union(parked.map(\.paymentId))
            let absent = unsettled.filter { !inLog.contains($0.replacingOccurrences(of: "cluster-", with: "cluster-client-")) }
            where_ = "\n\(absent.count) of \(unsettled.count) unsettled payments have no registration in the clients "
                + "stream (\(inLog.count) clients there): \(absent.sorted().prefix(10))\nqueues:\n"
                + ClusterScenario.queueListing(prefix: prefix, liveNode: liveNode)
        }
        XCTAssertEqual(race.paymentIDs.count, 2000)
        XCTAssertTrue(missing.isEmpty, "\(missing.count) payments without an outcome: \(missing.sorted().prefix(10))\(where_)")
        XCTAssertTrue(duplicated.isEmpty, "more than one outcome for \(duplicated.keys.sorted().prefix(10))")
        XCTAssertTrue(parked.isEmpty, "parked: \(parked.prefix(5))\(where_)")
        // A payment the broker dead-letters (delivery limit) reaches the parking lot without an outcome.
        let admin = try await ClusterScenario.connect(name: "cluster-test-admin", first: liveNode)
        let parkedByBroker = try await admin.messageCount(topology.parkingLot)
        try? await admin.close()
        XCTAssertEqual(parkedByBroker, 0, "messages in \(topology.parkingLot)")
        for (index, instance) in instances.enumerated() {
            XCTAssertTrue(instance.isRunning, "instance \(index + 1) exited; its log ends with:\n\(instance.stderrTail)")
        }

        // Registration → processed, as the broker confirmed the registration and the instance logged the payment.
        let logs = instances.map(\.stderr)
        let processedAt = ClusterScenario.processedTimes(in: logs)
        let latencies = race.paymentIDs.enumerated().compactMap { index, id -> Double? in
            guard let done = processedAt[id], let registered = race.registeredAt["cluster-client-\(index)"] else {
                return nil
            }
            return max(0, done.timeIntervalSince(registered))
        }
        XCTAssertEqual(latencies.count, race.paymentIDs.count - missing.count, "a processed payment has no log line")
        let times = Array(processedAt.values)
        let pauses = [(first, firstKill), (second, secondKill)].map { node, at -> String in
            let firstAfter = times.filter { $0 > at }.min().map { $0.timeIntervalSince(at) } ?? .nan
            let pause = ClusterScenario.longestPause(in: times, from: at, within: 20)?.seconds ?? .nan
            return String(format: "node %d killed: first outcome after %.2f s, longest pause %.2f s", node, firstAfter, pause)
        }
        let recoveries = logs.map { $0.components(separatedBy: "\"connection recovered\"").count - 1 }.reduce(0, +)
        func milliseconds(_ q: Double) -> String {
            ClusterScenario.quantile(q, of: latencies).map { String(format: "%.0f ms", $0 * 1000) } ?? "-"
        }
        print(
            "cluster service: payments=\(race.paymentIDs.count) processed=\(counts.count) "
                + "duplicates=\(duplicated.count) parked=\(parked.count) missing=\(missing.count) "
                + "recoveries=\(recoveries) unanswered-publishes=\(race.unanswered); registration→processed p50=\(milliseconds(0.5)) "
                + "p99=\(milliseconds(0.99)) max=\(milliseconds(1)); \(pauses.joined(separator: "; ")); "
                + String(
                    format: "kills at %.1f s and %.1f s of a %.1f s race; ", firstKill.timeIntervalSince(raceStart),
                    secondKill.timeIntervalSince(raceStart), raceEnd.timeIntervalSince(raceStart))
                + "run time \(ContinuousClock.now - began)")
        // The second fault must land while payments still come, or the test shows nothing about it.
        XCTAssertLessThan(secondKill, raceEnd.addingTimeInterval(-3), "the second node was killed after the race")

        for instance in instances { await stop(instance) }
    }

    // MARK: - Helpers

    /// Starts an instance given all three nodes, `firstNode`'s first, on quorum queues, logging JSON (for the
    /// millisecond timestamps of `payment processed`).
    private func startClusterConsumer(firstNode: Int) throws -> RunningProgram {
        let urls = ClusterScenario.urls(first: firstNode).flatMap { ["--url", $0] }
        return try startConsumer(
            exactly: urls + [
                "--name-prefix", prefix, "--queue-type", "quorum", "--retry-step", "500ms", "--hold-time", "5s",
                "--summary-interval", "0s", "--log-format", "json",
            ])
    }

    /// Every queue and stream the instances declared is a quorum queue or a stream with a member on each node:
    /// nothing the service needs lives on one node only.
    private func assertEveryQueueIsReplicatedOnEveryNode() {
        let rows = ClusterScenario.queueListing(prefix: prefix, liveNode: 1).split(separator: "\n")
        XCTAssertGreaterThanOrEqual(rows.count, 7, "work queues, parking lot, delay queues and streams:\n\(rows)")
        for row in rows {
            let columns = row.split(separator: "\t").map(String.init)
            guard columns.count >= 6 else {
                XCTFail("unexpected rabbitmqctl row: \(row)")
                continue
            }
            XCTAssertTrue(["quorum", "stream"].contains(columns[1]), "\(columns[0]) is a \(columns[1]) queue")
            for node in TestCluster.nodes {
                XCTAssertTrue(
                    columns[5].contains(TestCluster.name(node: node)), "\(columns[0]) has no member on node \(node)")
            }
        }
        print("cluster queues: \(rows.count), each a quorum queue or stream with members on all three nodes")
    }

    /// The node of `nodes` with the most client connections (the lowest number on a tie).
    private func busiestNode(among nodes: [Int]) async throws -> Int {
        var counts: [(node: Int, count: Int)] = []
        for node in nodes { counts.append((node, try await TestCluster.connectionCount(node: node))) }
        print("cluster connections: " + counts.map { "node \($0.node): \($0.count)" }.joined(separator: ", "))
        return counts.max { $0.count < $1.count || ($0.count == $1.count && $0.node > $1.node) }?.node ?? nodes[0]
    }

    private func kill(node: Int) async throws {
        killedNodes.insert(node)
        try await TestCluster.kill(node: node)
    }

    /// Starts a node and waits until its AMQP listener accepts connections, which may come a moment after
    /// `TestCluster.start` returns.
    private func startAndWait(node: Int) async throws {
        try await TestCluster.start(node: node)
        try await eventually(60, "cluster node \(node) to accept AMQP connections", every: .milliseconds(200)) {
            TestCluster.isAccepting(node: node) ? () : nil
        }
        killedNodes.remove(node)
    }
}

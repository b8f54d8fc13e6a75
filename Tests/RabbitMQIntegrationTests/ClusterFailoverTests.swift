import Foundation
import RabbitMQ
import RabbitMQTestSupport
import Synchronization
import XCTest

/// A connection to a real three-node cluster (scripts/start-cluster.sh) when the node it is on is killed (-9):
/// it resumes on another node with its topology, channels and consumers; confirms in flight fail retriably.
final class ClusterFailoverTests: XCTestCase {
    private var killed: [Int] = []

    override func setUp() async throws {
        try TestCluster.requireCluster { XCTSkip($0) }
    }

    override func tearDown() async throws {
        // The tests that follow need the whole cluster back.
        for node in killed {
            try await TestCluster.start(node: node)
            // Back in the cluster is not yet listening: wait for its AMQP port too.
            try await withTimeout(60, "node \(node)'s AMQP listener") {
                while !TestCluster.isAccepting(node: node) { try await Task.sleep(for: .milliseconds(200)) }
            }
        }
        killed = []
    }

    private func kill(_ node: Int) async throws {
        killed.append(node)
        try await TestCluster.kill(node: node)
    }

    /// A connection to the cluster, nodes in the given order, recovering quickly.
    private func connect(order: [Int]) async throws -> AMQPConnection {
        var configuration = try AMQPConfiguration(urls: order.map { TestCluster.url(node: $0) })
        configuration.connectionName = "cluster-tests"
        configuration.recovery = .enabled(initialDelay: .milliseconds(200), maxDelay: .seconds(2))
        return try await AMQPConnection.connect(configuration: configuration, logger: TestBroker.logger)
    }

    private func nodeOf(_ endpoint: AMQPConfiguration.Endpoint) -> Int? {
        TestCluster.ports.firstIndex(of: endpoint.port).map { $0 + 1 }
    }

    private func waitForRecovery(of connection: AMQPConnection) async throws -> AMQPConfiguration.Endpoint {
        try await withTimeout(30, "the connection to recover on another node") {
            for await event in connection.recoveryEvents {
                if case .recovered(_, let endpoint) = event { return endpoint }
            }
            throw TestClusterError("the connection ended without recovering")
        }
    }

    func testAConnectionWhoseNodeIsKilledResumesOnAnotherNodeWithItsTopologyAndConsumers() async throws {
        let connection = try await connect(order: [2, 3, 1])
        XCTAssertEqual(nodeOf(connection.endpoint), 2)
        let channel = try await connection.openChannel()
        let queue = "cluster-failover-\(UInt32.random(in: 0...999_999))"
        _ = try await channel.declareQueue(queue, durable: true, arguments: ["x-queue-type": "quorum"])
        try await channel.enablePublisherConfirms()
        let consumer = try await channel.consume(queue: queue)
        let received = Task { () -> [String] in
            var bodies: [String] = []
            for try await delivery in consumer {
                bodies.append(String(decoding: delivery.body, as: UTF8.self))
                try await delivery.ack()
                if bodies.count == 2 { break }
            }
            return bodies
        }
        try await channel.publish(Data("before".utf8), routingKey: queue)

        let killedAt = ContinuousClock.now
        try await kill(2)
        let endpoint = try await waitForRecovery(of: connection)
        let pause = ContinuousClock.now - killedAt
        XCTAssertEqual(nodeOf(endpoint), 3, "the next node of the list")
        XCTAssertEqual(connection.endpoint, endpoint)
        XCTAssertLessThan(pause, .seconds(10), "resumed within a few seconds")
        print("cluster failover: resumed on \(endpoint) \(pause) after the kill")

        // The same channel and consumer go on, on the new node (the quorum queue elected a new leader).
        try await withTimeout(30, "a publish after the failover") {
            while true {
                do {
                    try await channel.publish(Data("after".utf8), routingKey: queue)
                    return
                } catch let error as AMQPError where error.isRetriable {
                    try await Task.sleep(for: .milliseconds(200))
                }
            }
        }
        let bodies = try await withTimeout(30, "both deliveries") { try await received.value }
        XCTAssertEqual(bodies.last, "after")
        _ = try await channel.deleteQueue(queue)
        try await connection.close()
    }

    func testConfirmsInFlightWhenTheNodeDiesFailRetriablyAndARepublishSucceeds() async throws {
        let connection = try await connect(order: [3, 1, 2])
        let channel = try await connection.openChannel()
        let queue = "cluster-confirms-\(UInt32.random(in: 0...999_999))"
        _ = try await channel.declareQueue(queue, durable: true, arguments: ["x-queue-type": "quorum"])
        try await channel.enablePublisherConfirms(maxOutstanding: 5000)

        // The node dies while publishes go out, and they go on until it is dead (or one failed), so that some are
        // in flight whatever the machine's speed.
        let padding = String(repeating: "x", count: 1000)
        var confirmations: [(id: Int, confirmation: AMQPPublishConfirmation?)] = []
        var failed: [Int] = []
        let nodeDead = DeadFlag()
        killed.append(3)
        var killing: Task<Void, any Error>?
        var id = 0
        while id < 2000 || (!nodeDead.isSet && failed.isEmpty && id < 100_000) {
            if id == 500 {
                killing = Task {
                    try await TestCluster.kill(node: 3)
                    nodeDead.set()
                }
            }
            do {
                confirmations.append((id, try await channel.startPublish(Data("\(id) \(padding)".utf8), routingKey: queue)))
            } catch let error as AMQPError {
                XCTAssertTrue(error.isRetriable, "\(error)")
                failed.append(id)
            }
            id += 1
        }
        let published = id
        try await killing?.value
        for (id, confirmation) in confirmations {
            do {
                try await confirmation?.wait()
            } catch let error as AMQPError {
                XCTAssertTrue(error.isRetriable, "\(error)")
                failed.append(id)
            }
        }
        _ = try await waitForRecovery(of: connection)
        // Republish what was not confirmed, a window at a time, each round on a new channel: RabbitMQ 3.10 nacks
        // every publish of a channel whose first publish to a quorum queue came while the queue had no leader (see
        // the README's cluster section), and the recovered channel publishes at once. Every message is then in the
        // queue at least once.
        let rounds = try await withTimeout(90, "the republishes") { [failed] in
            var unconfirmed = failed
            var rounds = 0
            while !unconfirmed.isEmpty {
                rounds += 1
                let republishing = try await connection.openChannel()
                try await republishing.enablePublisherConfirms(maxOutstanding: 5000)
                var window: [(Int, AMQPPublishConfirmation?)] = []
                for id in unconfirmed {
                    do {
                        window.append((id, try await republishing.startPublish(Data("\(id) \(padding)".utf8), routingKey: queue)))
                    } catch let error as AMQPError where error.isRetriable {
                        break
                    }
                }
                var stillUnconfirmed: [Int] = []
                for (id, confirmation) in window {
                    do { try await confirmation?.wait() } catch let error as AMQPError where error.isRetriable {
                        stillUnconfirmed.append(id)
                    }
                }
                try? await republishing.close()
                let sent = Set(window.map(\.0))
                unconfirmed = stillUnconfirmed + unconfirmed.filter { !sent.contains($0) }
                if !unconfirmed.isEmpty { try await Task.sleep(for: .milliseconds(200)) }
            }
            return rounds
        }
        // Right after the leader changed, queue.declare-ok may count nothing yet: wait for the new leader's count.
        let count = try await withTimeout(30, "the queue to count every message") {
            while true {
                let count = try await channel.declareQueue(queue, passive: true).messageCount
                if count >= published { return count }
                try await Task.sleep(for: .milliseconds(200))
            }
        }
        XCTAssertGreaterThanOrEqual(count, UInt32(published), "\(failed.count) republished")
        XCTAssertFalse(failed.isEmpty, "no publish was in flight when the node died: the test showed nothing")
        print("cluster confirms: \(failed.count) of \(published) failed retriably with the node and were republished in \(rounds) rounds")
        _ = try await channel.deleteQueue(queue)
        try await connection.close()
    }

    func testAConnectionGivenOnlyDeadEndpointsNamesEachOne() async throws {
        // Nothing listens on these loopback ports.
        var configuration = try AMQPConfiguration(urls: ["amqp://127.0.0.1:5691", "amqp://127.0.0.1:5692"])
        configuration.connectTimeout = .seconds(2)
        do {
            _ = try await AMQPConnection.connect(configuration: configuration, logger: TestBroker.logger)
            XCTFail("connected to a dead endpoint")
        } catch let error as AMQPError {
            XCTAssertEqual(error.code, .connectionRefused)
            XCTAssertTrue(error.message.contains("127.0.0.1:5691") && error.message.contains("127.0.0.1:5692"), error.message)
        }
    }
}

/// Set once, from another task.
private final class DeadFlag: Sendable {
    private let value = Mutex(false)
    var isSet: Bool { value.withLock { $0 } }
    func set() { value.withLock { $0 = true } }
}

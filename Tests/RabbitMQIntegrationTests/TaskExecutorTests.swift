import Foundation
import RabbitMQ
import RabbitMQTestSupport
import XCTest

/// `AMQPConnection.taskExecutor`: tasks that prefer it run on the connection's I/O thread, consume and acknowledge
/// there, and are never stranded when the connection ends.
final class TaskExecutorTests: XCTestCase {
    /// The name of the thread running the caller (Linux keeps the first 15 bytes).
    private static func currentThreadName() -> String {
        let name = (try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? "?"
        return name.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    private func connect(named name: String) async throws -> AMQPConnection {
        try await TestBroker.connect { $0.connectionName = name }
    }

    func testAConsumerOnTheConnectionsExecutorRunsOnItsThreadAndAcknowledgesEveryDelivery() async throws {
        let connection = try await connect(named: "exec-consume")
        let channel = try await connection.openChannel()
        let queue = try await channel.declareTestQueue("executor")
        try await channel.enablePublisherConfirms()
        for index in 0..<500 { try await channel.publish(Data("\(index)".utf8), routingKey: queue) }

        let consuming = try await connection.openChannel()
        try await consuming.setPrefetch(50)
        let consumer = try await consuming.consume(queue: queue)
        let (bodies, threads) = try await withTimeout(20, "500 deliveries on the connection's thread") {
            try await withTaskExecutorPreference(connection.taskExecutor) { () -> ([String], Set<String>) in
                var bodies: [String] = []
                var threads = Set<String>()
                for try await delivery in consumer {
                    threads.insert(Self.currentThreadName())
                    bodies.append(String(decoding: delivery.body, as: UTF8.self))
                    try await delivery.ack()
                    if bodies.count == 500 { break }
                }
                return (bodies, threads)
            }
        }
        XCTAssertEqual(bodies, (0..<500).map { "\($0)" }, "every delivery, in order")
        XCTAssertEqual(threads, ["amqp-exec-consu"], "the consumer ran on the connection's I/O thread only")
        try await consumer.cancel()
        // Every acknowledgement reached the broker: nothing is left, nothing waits for an ack.
        try await consuming.close()
        let requeued = try await channel.declareQueue(queue, passive: true)
        XCTAssertEqual(requeued.messageCount, 0, "closing the channel requeued unacknowledged deliveries")
        try await connection.close()
    }

    func testATaskOnTheExecutorOfAnEndedConnectionRunsElsewhere() async throws {
        let connection = try await connect(named: "exec-ended")
        // While the connection is open, a task preferring the executor runs on the I/O thread.
        let whileOpen = try await withTimeout(5, "a task on the open connection's executor") {
            await Task(executorPreference: connection.taskExecutor) { Self.currentThreadName() }.value
        }
        XCTAssertEqual(whileOpen, "amqp-exec-ended")
        try await connection.close()
        // Once it has ended, such a task still runs, on the global executor.
        let afterClose = try await withTimeout(5, "a task on the ended connection's executor") {
            await Task(executorPreference: connection.taskExecutor) { Self.currentThreadName() }.value
        }
        XCTAssertNotEqual(afterClose, "amqp-exec-ended")
    }

    func testAConsumerWaitingOnTheExecutorEndsWhenTheConnectionCloses() async throws {
        let connection = try await connect(named: "exec-waiting")
        let channel = try await connection.openChannel()
        let queue = try await channel.declareTestQueue("executor-wait")
        let consumer = try await channel.consume(queue: queue)
        let reader = Task(executorPreference: connection.taskExecutor) { () -> Int in
            var count = 0
            do {
                for try await _ in consumer { count += 1 }
            } catch {}
            // The task's last steps run after the I/O thread has gone.
            try? await Task.sleep(for: .milliseconds(10))
            return count
        }
        try await Task.sleep(for: .milliseconds(200))
        try await connection.close()
        let count = try await withTimeout(5, "the waiting consumer to end") { await reader.value }
        XCTAssertEqual(count, 0)
    }
}

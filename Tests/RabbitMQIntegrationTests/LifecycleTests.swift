import Foundation
import Logging
import RabbitMQ
import RabbitMQTestSupport
import ServiceLifecycle
import XCTest

final class LifecycleTests: XCTestCase {
    func testGracefulShutdownCancelsConsumersAndClosesTheConnection() async throws {
        let connection = try await TestBroker.connect()
        let channel = try await connection.openChannel()
        let queue = try await channel.declareTestQueue()
        let consumer = try await channel.consume(queue: queue)
        let consumed = Task { () -> Int in
            var count = 0
            for try await delivery in consumer {
                count += 1
                try await delivery.ack()
            }
            return count
        }
        try await channel.publish(Data("before shutdown".utf8), routingKey: queue)

        let group = ServiceGroup(
            services: [connection], gracefulShutdownSignals: [], cancellationSignals: [], logger: TestBroker.logger)
        let running = Task { try await group.run() }
        try await Task.sleep(for: .milliseconds(300))
        await group.triggerGracefulShutdown()
        try await withTimeout(10, "the service group to stop") { try await running.value }

        // The consumer was cancelled, so its sequence ended normally after what it had received.
        let count = try await withTimeout(5, "the consumer to end") { try await consumed.value }
        XCTAssertEqual(count, 1)
        XCTAssertFalse(connection.isOpen)
        XCTAssertFalse(channel.isOpen)
        let reused = await assertAMQPError(try await connection.openChannel())
        XCTAssertEqual(reused?.code, .connectionClosed)
    }

    func testCloseWaitsForOutstandingConfirms() async throws {
        let connection = try await TestBroker.connect()
        let channel = try await connection.openChannel()
        let queue = try await channel.declareTestQueue()
        try await channel.enablePublisherConfirms(maxOutstanding: 500)
        var confirmations: [AMQPPublishConfirmation] = []
        for index in 0..<300 {
            let confirmation = try await channel.startPublish(Data("\(index)".utf8), routingKey: queue)
            confirmations.append(try XCTUnwrap(confirmation))
        }
        try await connection.close()
        for confirmation in confirmations { try await confirmation.wait() }

        let check = try await TestBroker.connect()
        let ready = try await check.openChannel().messageCount(in: queue)
        XCTAssertEqual(ready, 300)
        try await check.close()
    }

    func testRunMayBeCalledOnlyOnce() async throws {
        let connection = try await TestBroker.connect()
        let first = Task { try await connection.run() }
        try await Task.sleep(for: .milliseconds(100))
        let error = await assertAMQPError(try await connection.run())
        XCTAssertEqual(error?.code, .invalidArgument)
        try await connection.close()
        try await withTimeout(5, "run() to return") { try await first.value }
    }

    func testRunThrowsWhenTheConnectionFails() async throws {
        let connection = try await TestBroker.connect()
        let running = Task { try await connection.run() }
        let channel = try await connection.openChannel()
        _ = try? await channel.declareExchange(TestBroker.uniqueName("bad"), type: "x-no-such-type")
        let result = try await withTimeout(5, "run() to end") { await running.result }
        XCTAssertThrowsError(try result.get()) { error in
            XCTAssertEqual((error as? AMQPError)?.code, .connectionClosedByBroker)
        }
    }
}

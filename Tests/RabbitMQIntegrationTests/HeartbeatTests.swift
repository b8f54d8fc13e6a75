import Foundation
import RabbitMQ
import RabbitMQTestSupport
import XCTest

/// The I/O thread keeps the connection alive on its own: the application may be idle or slow, and with a 2 s
/// heartbeat the broker would drop a connection that stayed silent for about 6 s.
final class HeartbeatTests: XCTestCase {
    func testIdleConnectionSurvivesFiveHeartbeatIntervals() async throws {
        let connection = try await TestBroker.connect { $0.heartbeat = .seconds(2) }
        XCTAssertEqual(connection.parameters.heartbeat, .seconds(2))
        let channel = try await connection.openChannel()
        let queue = try await channel.declareTestQueue()

        try await Task.sleep(for: .seconds(10))

        XCTAssertTrue(connection.isOpen)
        try await channel.publish(Data("after idling".utf8), routingKey: queue)
        let delivery = try await channel.waitForMessage(in: queue)
        XCTAssertEqual(String(decoding: delivery.body, as: UTF8.self), "after idling")
        try await connection.close()
    }

    func testSlowConsumerKeepsTheConnection() async throws {
        let connection = try await TestBroker.connect { $0.heartbeat = .seconds(2) }
        let channel = try await connection.openChannel()
        let queue = try await channel.declareTestQueue()
        try await channel.enablePublisherConfirms()
        for index in 0..<10 { try await channel.publish(Data("\(index)".utf8), routingKey: queue) }
        try await channel.setPrefetch(1)

        let consumer = try await channel.consume(queue: queue)
        let handled = try await withTimeout(30, "ten slow deliveries") { () -> [String] in
            var handled: [String] = []
            for try await delivery in consumer {
                // A handler far slower than the heartbeat, blocking its task (not the connection's thread).
                usleep(1_000_000)
                try await delivery.ack()
                handled.append(String(decoding: delivery.body, as: UTF8.self))
                if handled.count == 10 { break }
            }
            return handled
        }
        XCTAssertEqual(handled, (0..<10).map(String.init))
        XCTAssertTrue(connection.isOpen)
        let ready = try await channel.messageCount(in: queue)
        XCTAssertEqual(ready, 0)
        try await consumer.cancel()
        try await connection.close()
    }

    func testQueuedWorkDoesNotWaitForThePollInterval() async throws {
        // With a 60 s heartbeat the I/O thread polls once a second when idle. If a publish or an ack waited for
        // that poll, 100 confirmed round trips would take 100 s; woken at once, they take milliseconds.
        let connection = try await TestBroker.connect { $0.heartbeat = .seconds(60) }
        let channel = try await connection.openChannel()
        let queue = try await channel.declareTestQueue()
        try await channel.enablePublisherConfirms()
        let started = ContinuousClock.now
        for index in 0..<100 {
            try await channel.publish(Data("\(index)".utf8), routingKey: queue)
            let delivery = try await channel.waitForMessage(in: queue)
            try await delivery.ack()
        }
        let elapsed = ContinuousClock.now - started
        XCTAssertLessThan(elapsed, .seconds(20), "100 round trips took \(elapsed)")
        try await connection.close()
    }
}

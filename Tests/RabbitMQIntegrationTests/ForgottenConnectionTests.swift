import Foundation
import RabbitMQ
import RabbitMQTestSupport
import XCTest

/// A connection the application drops without `close()` closes itself: its I/O thread ends, its socket and wake-up
/// pipe are closed, and the broker sees a clean close.
final class ForgottenConnectionTests: XCTestCase {
    /// The process's threads whose name starts with `prefix` (Linux names threads in /proc/self/task/*/comm).
    private static func threads(named prefix: String) -> Int {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
        return tasks.filter { task in
            let name = (try? String(contentsOfFile: "/proc/self/task/\(task)/comm", encoding: .utf8)) ?? ""
            return name.hasPrefix(prefix)
        }.count
    }

    /// The process's open file descriptors.
    private static func openDescriptors() -> Int {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []).count
    }

    /// Connects, opens a channel, consumes and publishes, then drops every reference without closing.
    private func useAndForget(name: String) async throws {
        let connection = try await TestBroker.connect { $0.connectionName = name }
        let channel = try await connection.openChannel()
        let queue = try await channel.declareTestQueue()
        let consumer = try await channel.consume(queue: queue)
        try await channel.publish(Data("hello".utf8), routingKey: queue)
        for try await delivery in consumer {
            try await delivery.ack()
            break
        }
        XCTAssertEqual(Self.threads(named: "amqp-forgotten"), 1, "the connection's I/O thread, while it is in use")
    }

    func testADroppedConnectionEndsItsThreadAndClosesItsDescriptors() async throws {
        let name = "forgotten-\(UInt32.random(in: 0...999_999))"
        let threadPrefix = "amqp-forgotten"
        let descriptorsBefore = Self.openDescriptors()
        XCTAssertEqual(Self.threads(named: threadPrefix), 0)

        try await useAndForget(name: name)

        try await withTimeout(5, "the forgotten connection's thread to end and its descriptors to close") {
            while Self.threads(named: threadPrefix) > 0 || Self.openDescriptors() > descriptorsBefore {
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        // The broker saw the connection go: it no longer lists it.
        let listed = try TestBroker.rabbitmqctl("list_connections", "client_properties", "--quiet")
        XCTAssertFalse(listed.contains(name), listed)
    }

    func testAChannelKeepsItsConnectionAlive() async throws {
        let channel = try await { () async throws -> AMQPChannel in
            let connection = try await TestBroker.connect()
            return try await connection.openChannel()
        }()
        try await Task.sleep(for: .milliseconds(200))
        XCTAssertTrue(channel.isOpen, "the channel holds its connection")
        let queue = try await channel.declareTestQueue()
        try await channel.publish(Data("still here".utf8), routingKey: queue)
        let delivery = try await channel.waitForMessage(in: queue)
        XCTAssertEqual(delivery.body, Data("still here".utf8))
    }
}

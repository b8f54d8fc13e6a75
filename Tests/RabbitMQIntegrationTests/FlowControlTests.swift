import Foundation
import RabbitMQ
import RabbitMQTestSupport
import XCTest

/// `connection.blocked`: a memory alarm makes the broker block publishing connections. The client surfaces it,
/// makes publishes wait (up to a timeout, then a clear error) and lets acknowledgements through.
final class FlowControlTests: XCTestCase {
    override func tearDown() async throws {
        // Whatever happened, the broker must not stay in alarm for the tests that follow.
        _ = try? TestBroker.rabbitmqctl("set_vm_memory_high_watermark", "0.4")
    }

    func testBlockedConnectionHoldsPublishesButNotAcknowledgements() async throws {
        let connection = try await TestBroker.connect { $0.blockedPublishTimeout = .seconds(1) }
        let channel = try await connection.openChannel()
        let queue = try await channel.declareTestQueue()
        try await channel.publish(Data("to acknowledge".utf8), routingKey: queue)
        let unacknowledged = try await channel.waitForMessage(in: queue)

        _ = try TestBroker.rabbitmqctl("set_vm_memory_high_watermark", "0.0000001")
        // The broker blocks a connection when it publishes during the alarm, and tells it so.
        let reason = try await withTimeout(20, "connection.blocked") { () -> String in
            while true {
                if let reason = connection.blockedReason { return reason }
                try? await channel.publish(Data("during the alarm".utf8), routingKey: queue)
                try await Task.sleep(for: .milliseconds(200))
            }
        }
        XCTAssertFalse(reason.isEmpty)

        // A publish now waits, then fails clearly; an acknowledgement does not wait.
        let started = ContinuousClock.now
        let error = await assertAMQPError(try await channel.publish(Data("blocked".utf8), routingKey: queue))
        XCTAssertEqual(error?.code, .timeout)
        XCTAssertTrue(error?.message.contains("blocked") ?? false, error?.message ?? "")
        XCTAssertGreaterThanOrEqual(ContinuousClock.now - started, .milliseconds(900))
        let ackStarted = ContinuousClock.now
        try await unacknowledged.ack()
        XCTAssertLessThan(ContinuousClock.now - ackStarted, .milliseconds(200))

        // When the alarm clears, the broker unblocks the connection and publishing resumes.
        _ = try TestBroker.rabbitmqctl("set_vm_memory_high_watermark", "0.4")
        try await withTimeout(30, "connection.unblocked") {
            while connection.blockedReason != nil { try await Task.sleep(for: .milliseconds(100)) }
        }
        try await channel.publish(Data("after the alarm".utf8), routingKey: queue)
        try await connection.close()
    }
}

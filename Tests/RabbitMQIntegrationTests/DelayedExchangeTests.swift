import Foundation
import RabbitMQ
import XCTest

final class DelayedExchangeTests: XCTestCase {
    /// Whether the broker has the delayed-message plugin, found out on a throwaway connection (without it the
    /// broker closes the connection that asks).
    static func pluginIsEnabled() async throws -> Bool {
        let probe = try await TestBroker.connect()
        let channel = try await probe.openChannel()
        let name = TestBroker.uniqueName("delayed-probe")
        do {
            _ = try await AMQPDelayedExchange.declare(name, on: channel)
            try await channel.deleteExchange(name)
            try await probe.close()
            return true
        } catch let error as AMQPError where error.code == .delayedMessagePluginMissing {
            return false
        }
    }

    func testMissingPluginIsASpecificError() async throws {
        guard try await !Self.pluginIsEnabled() else {
            throw XCTSkip("the broker has the delayed-message plugin enabled; the missing-plugin path cannot be shown")
        }
        let connection = try await TestBroker.connect()
        let channel = try await connection.openChannel()
        let bystander = try await connection.openChannel()
        let error = await assertAMQPError(
            try await AMQPDelayedExchange.declare(TestBroker.uniqueName("delayed"), on: channel))
        XCTAssertEqual(error?.code, .delayedMessagePluginMissing)
        XCTAssertEqual(error?.replyCode, 503)
        XCTAssertEqual(error?.replyCodeName, "COMMAND_INVALID")
        XCTAssertTrue(error?.message.contains("rabbitmq_delayed_message_exchange") ?? false)
        XCTAssertTrue(error?.isFatal ?? false)
        // The broker closed the whole connection, not just the channel.
        XCTAssertFalse(connection.isOpen)
        XCTAssertFalse(bystander.isOpen)
    }

    func testDelayedDeliveryWhenThePluginIsEnabled() async throws {
        guard try await Self.pluginIsEnabled() else {
            throw XCTSkip(
                "the broker lacks the rabbitmq_delayed_message_exchange plugin (it cannot be installed here); "
                    + "run with a broker that has it (docker compose up) to test delayed delivery")
        }
        let connection = try await TestBroker.connect()
        let channel = try await connection.openChannel()
        let exchange = try await AMQPDelayedExchange.declare(TestBroker.uniqueName("delayed"), on: channel, durable: false)
        let queue = try await channel.declareTestQueue()
        try await channel.bindQueue(queue, to: exchange.name, routingKey: "later")
        try await channel.enablePublisherConfirms()
        let started = ContinuousClock.now
        try await exchange.publish(Data("later".utf8), routingKey: "later", delay: .milliseconds(1500))
        let early = try await channel.get(queue: queue)
        XCTAssertNil(early, "the message arrived before its delay")
        let delivery = try await channel.waitForMessage(in: queue, seconds: 10)
        XCTAssertGreaterThanOrEqual(ContinuousClock.now - started, .milliseconds(1400))
        XCTAssertNotNil(delivery.properties.headers?["x-delay"])
        try await channel.deleteExchange(exchange.name)
        try await connection.close()
    }

    func testDelayIsRangeCheckedBeforeSending() async throws {
        let connection = try await TestBroker.connect()
        let channel = try await connection.openChannel()
        let exchange = AMQPDelayedExchange(name: "unused", channel: channel)
        for delay in [Duration.milliseconds(-1), AMQPDelayedExchange.maximumDelay + .milliseconds(1)] {
            let error = await assertAMQPError(try await exchange.publish(Data(), routingKey: "x", delay: delay))
            XCTAssertEqual(error?.code, .invalidArgument)
        }
        XCTAssertTrue(channel.isOpen)
        try await connection.close()
    }
}

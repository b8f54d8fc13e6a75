import Foundation
import RabbitMQ
import RabbitMQTestSupport
import XCTest

final class ChannelErrorTests: XCTestCase {
    func testChannelExceptionCarriesReplyAndMethodAndSparesOtherChannels() async throws {
        let connection = try await TestBroker.connect()
        let failing = try await connection.openChannel()
        let healthy = try await connection.openChannel()
        let missing = TestBroker.uniqueName("missing")

        let error = await assertAMQPError(try await failing.declareQueue(missing, passive: true))
        XCTAssertEqual(error?.code, .channelClosedByBroker)
        XCTAssertEqual(error?.replyCode, 404)
        XCTAssertEqual(error?.replyCodeName, "NOT_FOUND")
        XCTAssertEqual(error?.method?.name, "queue.declare")
        XCTAssertTrue(error?.replyText?.contains(missing) ?? false, error?.replyText ?? "")

        XCTAssertFalse(failing.isOpen)
        let later = await assertAMQPError(try await failing.declareQueue(TestBroker.uniqueName("later")))
        XCTAssertEqual(later?.code, .channelClosed)
        XCTAssertEqual(later?.replyCode, 404)
        let laterPublish = await assertAMQPError(try await failing.publish(Data(), routingKey: "x"))
        XCTAssertEqual(laterPublish?.code, .channelClosed)

        let queue = try await healthy.declareTestQueue()
        try await healthy.publish(Data("still fine".utf8), routingKey: queue)
        let delivery = try await healthy.waitForMessage(in: queue)
        XCTAssertEqual(String(decoding: delivery.body, as: UTF8.self), "still fine")
        XCTAssertTrue(connection.isOpen)
        try await connection.close()
    }

    func testInequivalentRedeclareIs406() async throws {
        let connection = try await TestBroker.connect()
        let channel = try await connection.openChannel()
        let queue = try await channel.declareTestQueue(arguments: ["x-message-ttl": .int32(1000)])
        let error = await assertAMQPError(
            try await channel.declareQueue(queue, arguments: ["x-message-ttl": .int32(2000), "x-expires": .int32(120_000)]))
        XCTAssertEqual(error?.code, .channelClosedByBroker)
        XCTAssertEqual(error?.replyCode, 406)
        XCTAssertEqual(error?.method?.name, "queue.declare")
        try await connection.close()
    }

    func testAcknowledgingAnUnknownTagClosesOnlyThatChannel() async throws {
        let connection = try await TestBroker.connect()
        let channel = try await connection.openChannel()
        try await channel.ack(deliveryTag: 999)
        // The broker answers asynchronously with channel.close 406; the next call on the channel sees it.
        let error = try await withTimeout(5, "the channel error") {
            while true {
                do {
                    _ = try await channel.declareQueue(TestBroker.uniqueName("probe"), exclusive: true)
                    try await Task.sleep(for: .milliseconds(20))
                } catch let error as AMQPError {
                    return error
                }
            }
        }
        XCTAssertEqual(error.replyCode, 406)
        let other = try await connection.openChannel()
        _ = try await other.declareQueue(TestBroker.uniqueName("other"), exclusive: true)
        try await connection.close()
    }

    func testConnectionExceptionFailsEveryChannelAndConsumer() async throws {
        let connection = try await TestBroker.connect()
        let consuming = try await connection.openChannel()
        let queue = try await consuming.declareTestQueue()
        let consumer = try await consuming.consume(queue: queue)
        let other = try await connection.openChannel()

        // An unknown exchange type is a hard error: 503 COMMAND_INVALID closes the whole connection.
        let error = await assertAMQPError(
            try await other.declareExchange(TestBroker.uniqueName("bad-type"), type: "x-no-such-type"))
        XCTAssertEqual(error?.code, .connectionClosedByBroker)
        XCTAssertEqual(error?.replyCode, 503)
        XCTAssertEqual(error?.method?.name, "exchange.declare")
        XCTAssertTrue(error?.isFatal ?? false)

        let consumerError = try await withTimeout(5, "the consumer to end") { () -> AMQPError? in
            do {
                for try await _ in consumer {}
                return nil
            } catch let error as AMQPError {
                return error
            }
        }
        XCTAssertEqual(consumerError?.code, .connectionClosedByBroker)
        let later = await assertAMQPError(try await consuming.declareQueue(TestBroker.uniqueName("x")))
        XCTAssertEqual(later?.replyCode, 503)
        XCTAssertFalse(connection.isOpen)
        let ended = await assertAMQPError(try await connection.waitUntilClosed())
        XCTAssertEqual(ended?.code, .connectionClosedByBroker)
    }
}

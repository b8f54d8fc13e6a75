import Foundation
import RabbitMQ
import XCTest

final class TopologyTests: BrokerTestCase {
    func testExchangeOfEveryTypeDeclaresPassiveChecksAndDeletes() async throws {
        for type in [AMQPExchangeType.direct, .fanout, .topic, .headers] {
            let name = TestBroker.uniqueName("exchange-\(type)")
            try await channel.declareExchange(name, type: type, autoDelete: false)
            try await channel.declareExchange(name, passive: true)
            try await channel.deleteExchange(name)
        }
        let error = await assertAMQPError(
            try await channel.declareExchange(TestBroker.uniqueName("absent"), passive: true))
        XCTAssertEqual(error?.replyCode, 404)
        XCTAssertEqual(error?.method?.name, "exchange.declare")
    }

    func testExchangeArgumentsReachTheBroker() async throws {
        // An alternate exchange takes what the main one cannot route: proof the argument table arrived.
        let alternate = TestBroker.uniqueName("alternate")
        let main = TestBroker.uniqueName("main")
        try await channel.declareExchange(alternate, type: .fanout)
        try await channel.declareExchange(main, type: .direct, arguments: ["alternate-exchange": .string(alternate)])
        let queue = try await channel.declareTestQueue()
        try await channel.bindQueue(queue, to: alternate)
        try await channel.publish(Data("unroutable".utf8), exchange: main, routingKey: "nowhere")
        let delivery = try await channel.waitForMessage(in: queue)
        XCTAssertEqual(delivery.exchange, main)
        try await channel.deleteExchange(main)
        try await channel.deleteExchange(alternate)
    }

    func testExchangeToExchangeBindingRoutesAndUnbindStops() async throws {
        let source = TestBroker.uniqueName("source")
        let destination = TestBroker.uniqueName("destination")
        try await channel.declareExchange(source, type: .topic)
        try await channel.declareExchange(destination, type: .fanout)
        let queue = try await channel.declareTestQueue()
        try await channel.bindQueue(queue, to: destination)
        try await channel.bindExchange(destination, to: source, routingKey: "orders.*")

        try await channel.publish(Data("one".utf8), exchange: source, routingKey: "orders.created")
        let delivery = try await channel.waitForMessage(in: queue)
        XCTAssertEqual(String(decoding: delivery.body, as: UTF8.self), "one")
        XCTAssertEqual(delivery.routingKey, "orders.created")
        try await delivery.ack()

        try await channel.unbindExchange(destination, from: source, routingKey: "orders.*")
        try await channel.enablePublisherConfirms()
        try await channel.publish(Data("two".utf8), exchange: source, routingKey: "orders.created")
        let queued = try await channel.declareQueue(queue, passive: true)
        XCTAssertEqual(queued.messageCount, 0)
        try await channel.deleteExchange(source)
        try await channel.deleteExchange(destination)
    }

    func testQueueBindUnbindPurgeAndDeleteReportCounts() async throws {
        let exchange = TestBroker.uniqueName("direct")
        try await channel.declareExchange(exchange, type: .direct)
        let queue = try await channel.declareTestQueue()
        try await channel.bindQueue(queue, to: exchange, routingKey: "key")
        try await channel.enablePublisherConfirms()
        for index in 0..<3 {
            try await channel.publish(Data("\(index)".utf8), exchange: exchange, routingKey: "key")
        }
        let published = try await channel.messageCount(in: queue)
        XCTAssertEqual(published, 3)
        let purged = try await channel.purgeQueue(queue)
        XCTAssertEqual(purged, 3)

        try await channel.unbindQueue(queue, from: exchange, routingKey: "key")
        try await channel.publish(Data("lost".utf8), exchange: exchange, routingKey: "key")
        try await channel.publish(Data("direct".utf8), routingKey: queue)
        let routedDirectly = try await channel.messageCount(in: queue)
        XCTAssertEqual(routedDirectly, 1)
        let deleted = try await channel.deleteQueue(queue)
        XCTAssertEqual(deleted, 1)
        try await channel.deleteExchange(exchange)
        let error = await assertAMQPError(try await channel.declareQueue(queue, passive: true))
        XCTAssertEqual(error?.replyCode, 404)
    }

    func testServerNamedExclusiveQueueAndCounts() async throws {
        let info = try await channel.declareQueue(exclusive: true)
        XCTAssertTrue(info.name.hasPrefix("amq.gen-"), info.name)
        XCTAssertEqual(info.messageCount, 0)
        XCTAssertEqual(info.consumerCount, 0)
        let consumer = try await channel.consume(queue: info.name)
        let consumers = try await channel.consumerCount(of: info.name)
        XCTAssertEqual(consumers, 1)
        try await consumer.cancel()

        // Another connection may not touch an exclusive queue.
        let other = try await TestBroker.connect()
        let otherChannel = try await other.openChannel()
        let error = await assertAMQPError(try await otherChannel.consume(queue: info.name))
        XCTAssertEqual(error?.replyCode, 405)
        try await other.close()
    }

    func testQuorumAndStreamQueues() async throws {
        let quorum = TestBroker.uniqueName("quorum")
        let declared = try await channel.declareQueue(quorum, durable: true, arguments: ["x-queue-type": "quorum"])
        XCTAssertEqual(declared.name, quorum)
        // Redeclaring as classic proves the broker recorded the type.
        let mismatch = await assertAMQPError(try await channel.declareQueue(quorum, durable: true))
        XCTAssertEqual(mismatch?.replyCode, 406)
        channel = try await connection.openChannel()
        try await channel.deleteQueue(quorum)

        let stream = TestBroker.uniqueName("stream")
        _ = try await channel.declareQueue(stream, durable: true, arguments: ["x-queue-type": "stream"])
        try await channel.deleteQueue(stream)
    }

    func testDeadLetteringWithTTLAndMaxLength() async throws {
        let deadLetters = try await channel.declareTestQueue("dead-letters")
        let expiring = try await channel.declareTestQueue(
            "ttl",
            arguments: [
                "x-message-ttl": .int32(50), "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": .string(deadLetters),
            ])
        try await channel.publish(Data("expires".utf8), routingKey: expiring)
        let dead = try await channel.waitForMessage(in: deadLetters)
        XCTAssertEqual(String(decoding: dead.body, as: UTF8.self), "expires")
        let death = dead.properties.headers?["x-death"]?.arrayValue?.first?.tableValue
        XCTAssertEqual(death?["reason"]?.stringValue, "expired")
        try await dead.ack()

        let bounded = try await channel.declareTestQueue("bounded", arguments: ["x-max-length": .int32(2)])
        try await channel.enablePublisherConfirms()
        for index in 0..<5 { try await channel.publish(Data("\(index)".utf8), routingKey: bounded) }
        let info = try await channel.declareQueue(bounded, passive: true)
        XCTAssertEqual(info.messageCount, 2)
        let oldestKept = try await channel.waitForMessage(in: bounded)
        XCTAssertEqual(String(decoding: oldestKept.body, as: UTF8.self), "3")
    }

    func testNameLongerThan255BytesIsRefusedBeforeSending() async throws {
        let error = await assertAMQPError(try await channel.declareQueue(String(repeating: "q", count: 256)))
        XCTAssertEqual(error?.code, .invalidArgument)
        XCTAssertTrue(channel.isOpen)
    }
}

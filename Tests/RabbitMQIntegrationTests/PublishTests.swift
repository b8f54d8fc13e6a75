import Foundation
import RabbitMQ
import RabbitMQTestSupport
import XCTest

final class PublishTests: BrokerTestCase {
    /// With tracing off: the tests compare headers exactly, and a tracer another test bootstrapped for the whole
    /// process (bootstrapping is once per process, and test targets run in no fixed order) would add its own.
    override func setUp() async throws {
        connection = try await TestBroker.connect { $0.observability.tracing = false }
        channel = try await connection.openChannel()
    }

    func testEveryBasicPropertyRoundTrips() async throws {
        let queue = try await channel.declareTestQueue()
        let timestamp = Date(timeIntervalSince1970: 1_700_000_000)
        let properties = AMQPProperties(
            contentType: "application/json", contentEncoding: "gzip", headers: ["tenant": "acme", "attempt": .int32(3)],
            deliveryMode: .persistent, priority: 7, correlationID: "corr-1", replyTo: "replies", expiration: "60000",
            messageID: "msg-1", timestamp: timestamp, type: "order.created", userID: connection.configuration.username, appID: "tests")
        try await channel.publish(Data("{}".utf8), routingKey: queue, properties: properties)
        let delivery = try await channel.waitForMessage(in: queue)
        XCTAssertEqual(delivery.properties, properties)
        XCTAssertEqual(delivery.exchange, "")
        XCTAssertEqual(delivery.routingKey, queue)
        XCTAssertNil(delivery.consumerTag)
        XCTAssertEqual(delivery.remainingMessageCount, 0)
    }

    func testEveryFieldKindRoundTripsThroughTheBroker() async throws {
        let queue = try await channel.declareTestQueue()
        let headers: AMQPTable = [
            "bool": .bool(true), "int8": .int8(-8), "uint8": .uint8(200), "int16": .int16(-16_000),
            "uint16": .uint16(60_000), "int32": .int32(-2_000_000_000), "uint32": .uint32(4_000_000_000),
            "int64": .int64(.min), "uint64": .uint64(.max), "float": .float(1.5), "double": .double(-2.25),
            "decimal": .decimal(AMQPDecimal(scale: 2, value: 1050)), "string": .string("héllo"),
            "bytes": .bytes([0, 255, 1]), "timestamp": .timestamp(Date(timeIntervalSince1970: 1_600_000_000)),
            "table": .table(["nested": .array([.int32(1), .string("two"), .table(["deep": .void])])]),
            "array": .array([.bool(false), .double(3.5)]), "void": .void,
        ]
        try await channel.publish(Data(), routingKey: queue, properties: AMQPProperties(headers: headers))
        let delivery = try await channel.waitForMessage(in: queue)
        XCTAssertEqual(delivery.properties.headers, headers)
    }

    func testEmptyAndLargerThanFrameBodies() async throws {
        let queue = try await channel.declareTestQueue()
        let large = Data((0..<(1 << 20) + 17).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        XCTAssertGreaterThan(UInt32(large.count), connection.parameters.frameMax)
        try await channel.enablePublisherConfirms()
        try await channel.publish(Data(), routingKey: queue)
        try await channel.publish(large, routingKey: queue)
        let empty = try await channel.waitForMessage(in: queue)
        XCTAssertEqual(empty.body.count, 0)
        let big = try await channel.waitForMessage(in: queue)
        XCTAssertEqual(big.body, large)

        // The same through a consumer, which assembles the frames on the I/O thread.
        try await channel.publish(large, routingKey: queue)
        let consumer = try await channel.consume(queue: queue, noAck: true)
        let consumed = try await withTimeout(10, "the large delivery") {
            for try await delivery in consumer { return delivery.body }
            return Data()
        }
        XCTAssertEqual(consumed, large)
    }

    func testConfirmedPublishCompletesOnAck() async throws {
        let queue = try await channel.declareTestQueue()
        try await channel.enablePublisherConfirms(maxOutstanding: 16)
        var confirmations: [AMQPPublishConfirmation] = []
        for index in 0..<500 {
            let confirmation = try await channel.startPublish(Data("\(index)".utf8), routingKey: queue)
            confirmations.append(try XCTUnwrap(confirmation))
        }
        for confirmation in confirmations { try await confirmation.wait() }
        let confirmed = try await channel.messageCount(in: queue)
        XCTAssertEqual(confirmed, 500)
    }

    func testNackFromRejectPublishOverflowThrows() async throws {
        let queue = try await channel.declareTestQueue(
            arguments: ["x-max-length": .int32(1), "x-overflow": "reject-publish"])
        try await channel.enablePublisherConfirms()
        try await channel.publish(Data("fits".utf8), routingKey: queue)
        let error = await assertAMQPError(try await channel.publish(Data("overflows".utf8), routingKey: queue))
        XCTAssertEqual(error?.code, .publishNacked)
        XCTAssertTrue(error?.isRetriable ?? false)
        XCTAssertTrue(channel.isOpen)
    }

    func testMandatoryUnroutableIsReturnedAndFailsTheConfirm() async throws {
        try await channel.enablePublisherConfirms()
        let routingKey = TestBroker.uniqueName("nowhere")
        let error = await assertAMQPError(
            try await channel.publish(Data("lost".utf8), routingKey: routingKey, mandatory: true))
        XCTAssertEqual(error?.code, .messageReturned)
        XCTAssertEqual(error?.replyCode, 312)

        let returned = try await withTimeout(5, "the returned message") { [channel] in
            var iterator = channel!.returnedMessages.makeAsyncIterator()
            return await iterator.next()
        }
        XCTAssertEqual(returned?.routingKey, routingKey)
        XCTAssertEqual(returned?.replyText, "NO_ROUTE")
        XCTAssertEqual(returned.map { String(decoding: $0.body, as: UTF8.self) }, "lost")

        // A routable mandatory publish is unaffected.
        let queue = try await channel.declareTestQueue()
        try await channel.publish(Data("kept".utf8), routingKey: queue, mandatory: true)
    }

    func testReturnWithoutConfirmsReachesTheReturnStream() async throws {
        let routingKey = TestBroker.uniqueName("nowhere")
        try await channel.publish(Data("bounced".utf8), routingKey: routingKey, mandatory: true)
        let returned = try await withTimeout(5, "the returned message") { [channel] in
            var iterator = channel!.returnedMessages.makeAsyncIterator()
            return await iterator.next()
        }
        XCTAssertEqual(returned?.replyCode, 312)
        XCTAssertEqual(returned?.routingKey, routingKey)
    }

    func testPublishToMissingExchangeFailsTheConfirmWithTheChannelError() async throws {
        try await channel.enablePublisherConfirms()
        let error = await assertAMQPError(
            try await channel.publish(Data(), exchange: TestBroker.uniqueName("missing"), routingKey: "x"))
        XCTAssertEqual(error?.code, .channelClosedByBroker)
        XCTAssertEqual(error?.replyCode, 404)
        XCTAssertEqual(error?.method?.name, "basic.publish")
    }

    func testInvalidHeaderKeyIsRefusedBeforeSending() async throws {
        let queue = try await channel.declareTestQueue()
        let headers = AMQPTable([String(repeating: "k", count: 200): .bool(true)])
        let error = await assertAMQPError(
            try await channel.publish(Data(), routingKey: queue, properties: AMQPProperties(headers: headers)))
        XCTAssertEqual(error?.code, .invalidArgument)
        XCTAssertTrue(channel.isOpen)
        try await channel.publish(Data("ok".utf8), routingKey: queue)
        _ = try await channel.waitForMessage(in: queue)
    }

    func testManyConcurrentPublishersShareAChannel() async throws {
        let queue = try await channel.declareTestQueue()
        try await channel.enablePublisherConfirms(maxOutstanding: 50)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for task in 0..<8 {
                group.addTask { [channel] in
                    for index in 0..<100 {
                        try await channel!.publish(Data("\(task)-\(index)".utf8), routingKey: queue)
                    }
                }
            }
            try await group.waitForAll()
        }
        let published = try await channel.messageCount(in: queue)
        XCTAssertEqual(published, 800)
    }
}

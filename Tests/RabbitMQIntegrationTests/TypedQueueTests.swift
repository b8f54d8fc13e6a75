import Foundation
import RabbitMQ
import RabbitMQTestSupport
import XCTest

final class TypedQueueTests: XCTestCase {
    struct Order: Codable, Sendable, Equatable {
        var id: String
        var amount: Decimal
        var placedAt: Date
    }

    func testPublishesAndConsumesDecodedValues() async throws {
        let connection = try await TestBroker.connect()
        let channel = try await connection.openChannel()
        let orders = AMQPTypedQueue<Order>(name: try await channel.declareTestQueue("orders"), channel: channel)
        let order = Order(id: "o-1", amount: Decimal(string: "10.50")!, placedAt: Date(timeIntervalSince1970: 1_700_000_000))
        try await channel.enablePublisherConfirms()
        try await orders.publish(order)

        let consumer = try await orders.consume()
        let received = try await withTimeout(5, "the order") { () -> AMQPTypedDelivery<Order>? in
            for try await delivery in consumer { return delivery }
            return nil
        }
        let delivery = try XCTUnwrap(received)
        XCTAssertEqual(try delivery.message, order)
        XCTAssertEqual(delivery.delivery.properties.contentType, "application/json")
        XCTAssertEqual(delivery.delivery.properties.deliveryMode, .persistent)
        try await delivery.ack()
        try await connection.close()
    }

    func testUndecodableBodyIsAnErrorCarryingTheRawDelivery() async throws {
        let connection = try await TestBroker.connect()
        let channel = try await connection.openChannel()
        let name = try await channel.declareTestQueue("orders")
        let orders = AMQPTypedQueue<Order>(name: name, channel: channel)
        try await channel.publish(Data("not json".utf8), routingKey: name)
        try await channel.publish(Data(#"{"id":"o-2"}"#.utf8), routingKey: name)

        let consumer = try await orders.consume()
        let deliveries = try await withTimeout(5, "two deliveries") { () -> [AMQPTypedDelivery<Order>] in
            var deliveries: [AMQPTypedDelivery<Order>] = []
            for try await delivery in consumer {
                deliveries.append(delivery)
                if deliveries.count == 2 { break }
            }
            return deliveries
        }
        for (delivery, body) in zip(deliveries, ["not json", #"{"id":"o-2"}"#]) {
            XCTAssertThrowsError(try delivery.message) { error in
                let error = error as? AMQPError
                XCTAssertEqual(error?.code, .decodingFailed)
                XCTAssertEqual(error?.delivery.map { String(decoding: $0.body, as: UTF8.self) }, body)
            }
            // The sequence goes on after a bad body, and the caller decides where the message goes.
            try await delivery.reject(requeue: false)
        }
        let ready = try await channel.messageCount(in: name)
        XCTAssertEqual(ready, 0)
        try await connection.close()
    }

    func testReplaceableCodec() async throws {
        struct UppercaseCodec: AMQPMessageCodec {
            let contentType = "text/plain"
            func encode<Value: Encodable>(_ value: Value) throws -> Data {
                Data((value as! String).uppercased().utf8)
            }
            func decode<Value: Decodable>(_ type: Value.Type, from body: Data) throws -> Value {
                String(decoding: body, as: UTF8.self) as! Value
            }
        }
        let connection = try await TestBroker.connect()
        let channel = try await connection.openChannel()
        let queue = AMQPTypedQueue<String>(
            name: try await channel.declareTestQueue("text"), channel: channel, codec: UppercaseCodec())
        try await queue.publish("hello")
        let fetched = try await withTimeout(5, "the message") {
            while true {
                if let delivery = try await queue.get(noAck: true) { return delivery }
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        XCTAssertEqual(try fetched.message, "HELLO")
        XCTAssertEqual(fetched.delivery.properties.contentType, "text/plain")
        try await connection.close()
    }
}

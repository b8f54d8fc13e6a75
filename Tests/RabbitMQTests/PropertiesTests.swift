import Foundation
import XCTest

@testable import RabbitMQ

final class PropertiesTests: XCTestCase {
    /// Properties with every field set to a value that differs from every other field's.
    private let everything = AMQPProperties(
        contentType: "application/json",
        contentEncoding: "gzip",
        headers: [
            "x-delay": .int32(5_000),
            "trace": ["span": .uint64(.max), "sampled": true],
            "hops": [.int64(.min), "two", .bytes([0xFF])],
        ],
        deliveryMode: .persistent,
        priority: 9,
        correlationID: "correlation-1",
        replyTo: "amq.rabbitmq.reply-to",
        expiration: "60000",
        messageID: "message-1",
        timestamp: Date(timeIntervalSince1970: 1_700_000_000),
        type: "order.created",
        userID: "guest",
        appID: "payments"
    )

    /// Each property alone, with the bit the AMQP 0-9-1 `basic` class gives it in the property flags.
    private let eachAlone: [(name: String, properties: AMQPProperties, bit: UInt32)] = [
        ("contentType", AMQPProperties(contentType: "text/plain"), 1 << 15),
        ("contentEncoding", AMQPProperties(contentEncoding: "identity"), 1 << 14),
        ("headers", AMQPProperties(headers: ["a": .void]), 1 << 13),
        ("deliveryMode", AMQPProperties(deliveryMode: .transient), 1 << 12),
        ("priority", AMQPProperties(priority: 0), 1 << 11),
        ("correlationID", AMQPProperties(correlationID: "c"), 1 << 10),
        ("replyTo", AMQPProperties(replyTo: "r"), 1 << 9),
        ("expiration", AMQPProperties(expiration: "0"), 1 << 8),
        ("messageID", AMQPProperties(messageID: "m"), 1 << 7),
        ("timestamp", AMQPProperties(timestamp: Date(timeIntervalSince1970: 0)), 1 << 6),
        ("type", AMQPProperties(type: "t"), 1 << 5),
        ("userID", AMQPProperties(userID: "u"), 1 << 4),
        ("appID", AMQPProperties(appID: "a"), 1 << 3),
    ]

    func testAllPropertiesRoundTripThroughTheWireFormat() throws {
        let decoded = try roundTripThroughWireFormat(everything)
        XCTAssertEqual(decoded.contentType, "application/json")
        XCTAssertEqual(decoded.headers, everything.headers)
        XCTAssertEqual(decoded.deliveryMode, .persistent)
        XCTAssertEqual(decoded.timestamp, Date(timeIntervalSince1970: 1_700_000_000))
        XCTAssertEqual(decoded, everything)
    }

    func testAllPropertiesSetEveryFlagExceptTheDeprecatedClusterID() throws {
        XCTAssertEqual(try rabbitMQCPropertyFlags(of: everything), 0b1111_1111_1111_1000)
    }

    func testNoPropertiesGiveFlagsZeroAndDecodeToAllNil() throws {
        XCTAssertEqual(try rabbitMQCPropertyFlags(of: AMQPProperties()), 0)
        XCTAssertEqual(try rabbitMQCWireFormat(of: AMQPProperties()), [0x00, 0x00])

        let decoded = try roundTripThroughWireFormat(AMQPProperties())
        XCTAssertEqual(decoded, AMQPProperties())
        XCTAssertNil(decoded.contentType)
        XCTAssertNil(decoded.headers)
        XCTAssertNil(decoded.deliveryMode)
        XCTAssertNil(decoded.priority)
        XCTAssertNil(decoded.timestamp)
        XCTAssertNil(decoded.appID)
    }

    func testEachPropertySetsExactlyItsOwnFlagAndRoundTripsAlone() throws {
        for (name, properties, bit) in eachAlone {
            XCTAssertEqual(try rabbitMQCPropertyFlags(of: properties), bit, name)
            XCTAssertEqual(try roundTripThroughWireFormat(properties), properties, name)
        }
    }

    func testEmptyTextIsSentAndDiffersFromNoValue() throws {
        let properties = AMQPProperties(contentType: "", headers: AMQPTable(), messageID: "")
        XCTAssertEqual(try rabbitMQCPropertyFlags(of: properties), 1 << 15 | 1 << 13 | 1 << 7)
        let decoded = try roundTripThroughWireFormat(properties)
        XCTAssertEqual(decoded.contentType, "")
        XCTAssertEqual(decoded.headers, AMQPTable())
        XCTAssertEqual(decoded.messageID, "")
    }

    func testTheWireLayoutFollowsTheContentHeaderGrammar() throws {
        let properties = AMQPProperties(
            contentType: "a", deliveryMode: .persistent, timestamp: Date(timeIntervalSince1970: 2.7))
        let wire = try rabbitMQCWireFormat(of: properties)
        // Flags 0x9040, then content-type as a short string, delivery-mode as an octet, timestamp as 64 bits.
        XCTAssertEqual(wire, [0x90, 0x40, 0x01, 0x61, 0x02, 0, 0, 0, 0, 0, 0, 0, 0x02])
    }

    func testTimestampsDropTheFractionOfASecond() throws {
        let decoded = try roundTripThroughWireFormat(AMQPProperties(timestamp: Date(timeIntervalSince1970: 99.9)))
        XCTAssertEqual(decoded.timestamp, Date(timeIntervalSince1970: 99))
    }

    func testATimestampBefore1970IsRefused() {
        XCTAssertThrowsError(try rabbitMQCWireFormat(of: AMQPProperties(timestamp: Date(timeIntervalSince1970: -5)))) {
            error in
            XCTAssertEqual((error as? AMQPError)?.code, .invalidArgument)
            XCTAssertTrue((error as? AMQPError)?.message.contains("timestamp") ?? false, "\(error)")
        }
    }

    func testShortStringPropertiesAcceptUpTo255BytesAndRefuseMoreByName() throws {
        let fits = String(repeating: "x", count: 255)
        let tooLong = String(repeating: "é", count: 128)  // 256 bytes
        let cases: [(swiftName: String, amqpName: String, make: (String) -> AMQPProperties)] = [
            ("contentType", "content-type", { AMQPProperties(contentType: $0) }),
            ("contentEncoding", "content-encoding", { AMQPProperties(contentEncoding: $0) }),
            ("correlationID", "correlation-id", { AMQPProperties(correlationID: $0) }),
            ("replyTo", "reply-to", { AMQPProperties(replyTo: $0) }),
            ("expiration", "expiration", { AMQPProperties(expiration: $0) }),
            ("messageID", "message-id", { AMQPProperties(messageID: $0) }),
            ("type", "type", { AMQPProperties(type: $0) }),
            ("userID", "user-id", { AMQPProperties(userID: $0) }),
            ("appID", "app-id", { AMQPProperties(appID: $0) }),
        ]
        for (swiftName, amqpName, make) in cases {
            XCTAssertEqual(try roundTripThroughWireFormat(make(fits)), make(fits), swiftName)
            XCTAssertThrowsError(try rabbitMQCWireFormat(of: make(tooLong)), swiftName) { error in
                guard let error = error as? AMQPError else { return XCTFail("\(swiftName): \(error)") }
                XCTAssertEqual(error.code, .invalidArgument, swiftName)
                XCTAssertTrue(error.message.contains("property \(swiftName) "), error.message)
                XCTAssertTrue(error.message.contains(amqpName), error.message)
                XCTAssertTrue(error.message.contains("256"), error.message)
            }
        }
    }

    func testAnInvalidHeaderKeyIsRefusedNamingTheHeaders() {
        let key = String(repeating: "h", count: 129)
        XCTAssertThrowsError(try rabbitMQCWireFormat(of: AMQPProperties(headers: [key: .void]))) { error in
            guard let error = error as? AMQPError else { return XCTFail("\(error)") }
            XCTAssertEqual(error.code, .invalidArgument)
            XCTAssertTrue(error.message.contains(key), error.message)
            XCTAssertTrue(error.message.contains("headers"), error.message)
        }
    }

    func testOnlyFlaggedFieldsAreDecoded() throws {
        // Flags name only the priority; a decoder that read other fields would find garbage or fail.
        let decoded = try rabbitMQCProperties(fromWireFormat: [0x08, 0x00, 0x05])
        XCTAssertEqual(decoded, AMQPProperties(priority: 5))
    }

    func testAnUnknownDeliveryModeDecodesAsNil() throws {
        let decoded = try rabbitMQCProperties(fromWireFormat: [0x10, 0x00, 0x03])
        XCTAssertNil(decoded.deliveryMode)
        let persistent = try rabbitMQCProperties(fromWireFormat: [0x10, 0x00, 0x02])
        XCTAssertEqual(persistent.deliveryMode, .persistent)
    }

    func testDeliveryModeRawValuesAreTheAMQPOnes() {
        XCTAssertEqual(AMQPDeliveryMode.transient.rawValue, 1)
        XCTAssertEqual(AMQPDeliveryMode.persistent.rawValue, 2)
    }

    func testTheInitializerStoresEveryArgument() {
        XCTAssertEqual(everything.contentEncoding, "gzip")
        XCTAssertEqual(everything.priority, 9)
        XCTAssertEqual(everything.correlationID, "correlation-1")
        XCTAssertEqual(everything.replyTo, "amq.rabbitmq.reply-to")
        XCTAssertEqual(everything.expiration, "60000")
        XCTAssertEqual(everything.messageID, "message-1")
        XCTAssertEqual(everything.type, "order.created")
        XCTAssertEqual(everything.userID, "guest")
        XCTAssertEqual(everything.appID, "payments")
    }
}

import Foundation
import XCTest

@testable import RabbitMQ

final class FieldTableTests: XCTestCase {
    // MARK: Round trips through rabbitmq-c's serialiser

    func testEveryKindRoundTripsThroughTheWireFormatUnchanged() throws {
        let table: AMQPTable = [
            "bool-true": .bool(true),
            "bool-false": .bool(false),
            "int8-min": .int8(.min),
            "int8-max": .int8(.max),
            "uint8-max": .uint8(.max),
            "int16-min": .int16(.min),
            "int16-max": .int16(.max),
            "uint16-max": .uint16(.max),
            "int32-min": .int32(.min),
            "int32-max": .int32(.max),
            "uint32-max": .uint32(.max),
            "int64-min": .int64(.min),
            "int64-max": .int64(.max),
            "uint64-max": .uint64(.max),
            "uint64-zero": .uint64(0),
            "float": .float(-1.25),
            "float-max": .float(.greatestFiniteMagnitude),
            "float-infinity": .float(-.infinity),
            "double": .double(.pi),
            "double-min": .double(-.greatestFiniteMagnitude),
            "double-subnormal": .double(.leastNonzeroMagnitude),
            "decimal": .decimal(AMQPDecimal(scale: 2, value: 1999)),
            "decimal-max": .decimal(AMQPDecimal(scale: .max, value: .max)),
            "string": .string("héllo, wörld ✓ 🐇"),
            "string-empty": .string(""),
            "string-nul": .string("a\u{0}b"),
            "bytes": .bytes([0x00, 0x01, 0x7F, 0x80, 0xFF]),
            "bytes-empty": .bytes([]),
            "bytes-not-utf8": .bytes([0xFF, 0xFE, 0xC3]),
            "timestamp": .timestamp(Date(timeIntervalSince1970: 1_700_000_000)),
            "timestamp-epoch": .timestamp(Date(timeIntervalSince1970: 0)),
            "table": ["inner": .int32(7), "deeper": ["deepest": "bottom", "empty": .table(AMQPTable())]],
            "table-empty": .table(AMQPTable()),
            "array": [.int8(-1), "two", .bool(true), .void, [.uint16(3)]],
            "array-of-tables": [["a": .int32(1)], ["b": .bytes([2])], .table(AMQPTable())],
            "array-empty": .array([]),
            "void": .void,
        ]

        let decoded = try roundTripThroughWireFormat(table)

        XCTAssertEqual(decoded.count, table.count)
        for (key, value) in table {
            XCTAssertEqual(decoded[key], value, "entry \(key)")
        }
        XCTAssertEqual(decoded, table)
    }

    func testEachKindIsWrittenWithItsAMQPTagAndLayout() throws {
        // Expected bytes from the AMQP 0-9-1 grammar with RabbitMQ's tags; a round trip alone would not notice two
        // kinds swapped symmetrically by the encoder and the decoder.
        let cases: [(AMQPFieldValue, [UInt8])] = [
            (.bool(true), [0x74, 0x01]),
            (.bool(false), [0x74, 0x00]),
            (.int8(-2), [0x62, 0xFE]),
            (.uint8(200), [0x42, 0xC8]),
            (.int16(-2), [0x73, 0xFF, 0xFE]),
            (.uint16(0xABCD), [0x75, 0xAB, 0xCD]),
            (.int32(-2), [0x49, 0xFF, 0xFF, 0xFF, 0xFE]),
            (.uint32(0x0102_0304), [0x69, 0x01, 0x02, 0x03, 0x04]),
            (.int64(-2), [0x6C, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE]),
            (.uint64(0x0102_0304_0506_0708), [0x4C, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08]),
            (.float(1), [0x66, 0x3F, 0x80, 0x00, 0x00]),
            (.double(1), [0x64, 0x3F, 0xF0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]),
            (.decimal(AMQPDecimal(scale: 2, value: 1999)), [0x44, 0x02, 0x00, 0x00, 0x07, 0xCF]),
            (.string("hi"), [0x53, 0x00, 0x00, 0x00, 0x02, 0x68, 0x69]),
            (.string(""), [0x53, 0x00, 0x00, 0x00, 0x00]),
            (.bytes([1, 2]), [0x78, 0x00, 0x00, 0x00, 0x02, 0x01, 0x02]),
            (.bytes([]), [0x78, 0x00, 0x00, 0x00, 0x00]),
            (.timestamp(Date(timeIntervalSince1970: 258)), [0x54, 0, 0, 0, 0, 0, 0, 0x01, 0x02]),
            (.table(["a": true]), [0x46, 0x00, 0x00, 0x00, 0x04, 0x01, 0x61, 0x74, 0x01]),
            (.table(AMQPTable()), [0x46, 0x00, 0x00, 0x00, 0x00]),
            (.array([.int8(1), "x"]), [0x41, 0x00, 0x00, 0x00, 0x08, 0x62, 0x01, 0x53, 0x00, 0x00, 0x00, 0x01, 0x78]),
            (.array([]), [0x41, 0x00, 0x00, 0x00, 0x00]),
            (.void, [0x56]),
        ]
        for (value, field) in cases {
            let entry: [UInt8] = [0x01, 0x6B] + field  // key "k"
            let expected = bigEndianLength(entry.count) + entry
            XCTAssertEqual(try rabbitMQCWireFormat(of: ["k": value]), expected, "\(value)")
        }
    }

    func testEntriesAreWrittenInKeyOrder() throws {
        let wire = try rabbitMQCWireFormat(of: ["b": .void, "c": .void, "a": .void])
        XCTAssertEqual(wire, [0, 0, 0, 9, 1, 0x61, 0x56, 1, 0x62, 0x56, 1, 0x63, 0x56])
    }

    func testTimestampsDropTheFractionOfASecond() throws {
        let decoded = try roundTripThroughWireFormat(["t": .timestamp(Date(timeIntervalSince1970: 1_700_000_000.999))])
        XCTAssertEqual(decoded["t"], .timestamp(Date(timeIntervalSince1970: 1_700_000_000)))
    }

    func testTimestampsBefore1970AreRefused() {
        XCTAssertThrowsError(try rabbitMQCWireFormat(of: ["born": .timestamp(Date(timeIntervalSince1970: -1))])) {
            error in
            let error = error as? AMQPError
            XCTAssertEqual(error?.code, .invalidArgument)
            XCTAssertTrue(error?.message.contains("born") ?? false, "\(String(describing: error))")
        }
    }

    // MARK: Decoding what other clients send

    func testALongStringThatIsValidUTF8DecodesAsString() throws {
        let entry: [UInt8] = [0x01, 0x6B, 0x53, 0, 0, 0, 2, 0xC3, 0xA9]  // "k": 'S' "é"
        let table = try rabbitMQCTable(fromWireFormat: bigEndianLength(entry.count) + entry)
        XCTAssertEqual(table["k"], .string("é"))
    }

    func testALongStringThatIsNotUTF8DecodesAsBytes() throws {
        let entry: [UInt8] = [0x01, 0x6B, 0x53, 0, 0, 0, 3, 0xFF, 0x00, 0xC3]
        let table = try rabbitMQCTable(fromWireFormat: bigEndianLength(entry.count) + entry)
        XCTAssertEqual(table["k"], .bytes([0xFF, 0x00, 0xC3]))
    }

    func testAByteArrayStaysBytesEvenWhenItIsValidUTF8() throws {
        let entry: [UInt8] = [0x01, 0x6B, 0x78, 0, 0, 0, 2, 0x68, 0x69]
        let table = try rabbitMQCTable(fromWireFormat: bigEndianLength(entry.count) + entry)
        XCTAssertEqual(table["k"], .bytes([0x68, 0x69]))
    }

    func testTheFirstOfDuplicateKeysWins() throws {
        let entries: [UInt8] = [0x01, 0x6B, 0x62, 0x01, 0x01, 0x6B, 0x62, 0x02]
        let table = try rabbitMQCTable(fromWireFormat: bigEndianLength(entries.count) + entries)
        XCTAssertEqual(table.dictionary, ["k": .int8(1)])
    }

    func testMalformedBytesAreRefused() {
        // The table claims 9 bytes but holds 2.
        XCTAssertThrowsError(try rabbitMQCTable(fromWireFormat: [0, 0, 0, 9, 0x01, 0x6B])) { error in
            XCTAssertEqual((error as? AMQPError)?.code, .decodingFailed)
        }
    }

    // MARK: Key validation

    func testAKeyOf128BytesIsAccepted() throws {
        let key = String(repeating: "k", count: 128)
        XCTAssertEqual(try roundTripThroughWireFormat([key: .int32(1)]), [key: .int32(1)])
    }

    func testAKeyOf128BytesOfMultibyteCharactersIsAccepted() throws {
        let key = String(repeating: "é", count: 64)  // 2 bytes each
        XCTAssertEqual(try roundTripThroughWireFormat([key: .int32(1)]), [key: .int32(1)])
    }

    func testAKeyOf129BytesIsRefusedByName() {
        let key = String(repeating: "k", count: 128) + "!"
        assertInvalidArgument(try rabbitMQCWireFormat(of: [key: .int32(1), "fine": .void]), mentioning: [key, "129"])
    }

    func testAKeyOver128BytesMadeOfMultibyteCharactersIsRefused() {
        let key = String(repeating: "é", count: 65)  // 65 characters but 130 bytes
        assertInvalidArgument(try rabbitMQCWireFormat(of: [key: .void]), mentioning: [key, "130"])
    }

    func testAnEmptyKeyIsRefused() {
        assertInvalidArgument(try rabbitMQCWireFormat(of: ["": .void]), mentioning: ["empty"])
    }

    func testAKeyInANestedTableOrArrayIsCheckedAndItsPlaceNamed() {
        let key = String(repeating: "n", count: 200)
        assertInvalidArgument(
            try rabbitMQCWireFormat(of: ["outer": ["inner": [key: .void]]]), mentioning: [key, "outer.inner"])
        assertInvalidArgument(
            try rabbitMQCWireFormat(of: ["list": [.void, [key: .void]]]), mentioning: [key, "list[1]"])
    }

    // MARK: Literals

    func testLiteralsBuildTheExpectedCases() {
        let bool: AMQPFieldValue = true
        let integer: AMQPFieldValue = -42
        let double: AMQPFieldValue = 1.5
        let string: AMQPFieldValue = "text"
        let array: AMQPFieldValue = [1, "two"]
        let table: AMQPFieldValue = ["key": false]
        let void: AMQPFieldValue = nil

        XCTAssertEqual(bool, .bool(true))
        XCTAssertEqual(integer, .int64(-42))
        XCTAssertEqual(double, .double(1.5))
        XCTAssertEqual(string, .string("text"))
        XCTAssertEqual(array, .array([.int64(1), .string("two")]))
        XCTAssertEqual(table, .table(AMQPTable(["key": .bool(false)])))
        XCTAssertEqual(void, .void)
    }

    func testATableLiteralHoldsItsEntries() {
        let table: AMQPTable = ["a": 1, "b": "two", "c": nil]
        XCTAssertEqual(table.dictionary, ["a": .int64(1), "b": .string("two"), "c": .void])
    }

    // MARK: The table type

    func testTableBasics() {
        var table = AMQPTable()
        XCTAssertTrue(table.isEmpty)
        XCTAssertEqual(table.count, 0)

        table["a"] = .int32(1)
        table["b"] = .void
        XCTAssertFalse(table.isEmpty)
        XCTAssertEqual(table.count, 2)
        XCTAssertEqual(table["a"], .int32(1))
        XCTAssertEqual(table["b"], .void)
        XCTAssertNil(table["missing"])
        XCTAssertEqual(Set(table.keys), ["a", "b"])

        table["a"] = nil  // Optional's nil: removes the entry rather than storing .void
        XCTAssertNil(table["a"])
        XCTAssertEqual(table.count, 1)

        XCTAssertEqual(AMQPTable(["x": .bool(true)]).dictionary, ["x": .bool(true)])
    }

    func testTableIteratesOverItsEntries() {
        let table: AMQPTable = ["a": .int8(1), "b": .int8(2), "c": .int8(3)]
        var seen: [String: AMQPFieldValue] = [:]
        for (key, value) in table {
            seen[key] = value
        }
        XCTAssertEqual(seen, ["a": .int8(1), "b": .int8(2), "c": .int8(3)])
        XCTAssertEqual(table.map(\.key).sorted(), ["a", "b", "c"])
    }

    // MARK: Accessors

    func testIntValueReadsEveryIntegerKind() {
        XCTAssertEqual(AMQPFieldValue.int8(.min).intValue, Int(Int8.min))
        XCTAssertEqual(AMQPFieldValue.uint8(.max).intValue, Int(UInt8.max))
        XCTAssertEqual(AMQPFieldValue.int16(.min).intValue, Int(Int16.min))
        XCTAssertEqual(AMQPFieldValue.uint16(.max).intValue, Int(UInt16.max))
        XCTAssertEqual(AMQPFieldValue.int32(.min).intValue, Int(Int32.min))
        XCTAssertEqual(AMQPFieldValue.uint32(.max).intValue, Int(UInt32.max))
        XCTAssertEqual(AMQPFieldValue.int64(.min).intValue, Int.min)
        XCTAssertEqual(AMQPFieldValue.int64(.max).intValue, Int.max)
        XCTAssertEqual(AMQPFieldValue.uint64(0).intValue, 0)
        XCTAssertEqual(AMQPFieldValue.uint64(UInt64(Int.max)).intValue, Int.max)
    }

    func testIntValueIsNilWhenTheValueOverflowsOrIsNoInteger() {
        XCTAssertNil(AMQPFieldValue.uint64(UInt64(Int.max) + 1).intValue)
        XCTAssertNil(AMQPFieldValue.uint64(.max).intValue)
        XCTAssertNil(AMQPFieldValue.bool(true).intValue)
        XCTAssertNil(AMQPFieldValue.double(1).intValue)
        XCTAssertNil(AMQPFieldValue.float(1).intValue)
        XCTAssertNil(AMQPFieldValue.string("1").intValue)
        XCTAssertNil(AMQPFieldValue.decimal(AMQPDecimal(scale: 0, value: 1)).intValue)
        XCTAssertNil(AMQPFieldValue.timestamp(Date(timeIntervalSince1970: 1)).intValue)
        XCTAssertNil(AMQPFieldValue.void.intValue)
    }

    func testOtherAccessorsReadTheirKindsOnly() {
        XCTAssertEqual(AMQPFieldValue.string("s").stringValue, "s")
        XCTAssertNil(AMQPFieldValue.bytes([0x73]).stringValue)

        XCTAssertEqual(AMQPFieldValue.bool(false).boolValue, false)
        XCTAssertNil(AMQPFieldValue.int8(1).boolValue)

        XCTAssertEqual(AMQPFieldValue.double(2.5).doubleValue, 2.5)
        XCTAssertEqual(AMQPFieldValue.float(0.5).doubleValue, 0.5)
        XCTAssertNil(AMQPFieldValue.int64(2).doubleValue)

        XCTAssertEqual(AMQPFieldValue.table(["k": .void]).tableValue, ["k": .void])
        XCTAssertNil(AMQPFieldValue.array([]).tableValue)

        XCTAssertEqual(AMQPFieldValue.array([.void]).arrayValue, [.void])
        XCTAssertNil(AMQPFieldValue.table(AMQPTable()).arrayValue)

        XCTAssertEqual(AMQPFieldValue.bytes([1, 2]).bytesValue, [1, 2])
        XCTAssertEqual(AMQPFieldValue.string("hé").bytesValue, [0x68, 0xC3, 0xA9])
        XCTAssertNil(AMQPFieldValue.int8(1).bytesValue)
    }

    // MARK: Helpers

    private func bigEndianLength(_ count: Int) -> [UInt8] {
        withUnsafeBytes(of: UInt32(count).bigEndian) { Array($0) }
    }

    private func assertInvalidArgument<T>(
        _ expression: @autoclosure () throws -> T, mentioning fragments: [String],
        file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertThrowsError(try expression(), file: file, line: line) { error in
            guard let error = error as? AMQPError else {
                return XCTFail("expected an AMQPError, got \(error)", file: file, line: line)
            }
            XCTAssertEqual(error.code, .invalidArgument, file: file, line: line)
            for fragment in fragments {
                XCTAssertTrue(
                    error.message.contains(fragment), "\"\(fragment)\" not in: \(error.message)", file: file,
                    line: line)
            }
        }
    }
}

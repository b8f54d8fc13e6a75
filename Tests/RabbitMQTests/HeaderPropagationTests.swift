import RabbitMQ
import XCTest

/// The header carrier of trace contexts: what is written, what is kept, and what is read back.
final class HeaderPropagationTests: XCTestCase {
    func testTheInjectorWritesLongStringsAndKeepsWhatTheCallerSet() {
        var headers: AMQPTable = ["traceparent": .string("00-caller-01"), "x-other": .int32(1)]
        let injector = AMQPHeadersInjector()
        injector.inject("00-publish-01", forKey: "traceparent", into: &headers)
        injector.inject("vendor=1", forKey: "tracestate", into: &headers)
        XCTAssertEqual(headers["traceparent"], .string("00-caller-01"))
        XCTAssertEqual(headers["tracestate"], .string("vendor=1"))
        XCTAssertEqual(headers["x-other"], .int32(1))
    }

    func testTheExtractorReadsStringsAndBytesAndNothingElse() {
        let headers: AMQPTable = [
            "traceparent": .bytes(Array("00-abc-01".utf8)),
            "tracestate": .string("vendor=1"),
            "x-number": .int32(7),
            "x-invalid": .bytes([0xFF, 0xFE]),
        ]
        let extractor = AMQPHeadersExtractor()
        XCTAssertEqual(extractor.extract(key: "traceparent", from: headers), "00-abc-01")
        XCTAssertEqual(extractor.extract(key: "tracestate", from: headers), "vendor=1")
        XCTAssertNil(extractor.extract(key: "x-number", from: headers))
        XCTAssertNil(extractor.extract(key: "x-invalid", from: headers), "bytes that are not UTF-8")
        XCTAssertNil(extractor.extract(key: "missing", from: headers))
    }
}

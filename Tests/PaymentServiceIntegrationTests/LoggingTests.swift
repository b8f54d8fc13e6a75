import Foundation
import PaymentService
import XCTest

/// The consumer logs one line per event on stderr, as text or, with `--log-format json`, as one JSON object per line.
final class LoggingTests: PaymentScenarioTestCase {
    func testJSONLogFormatWritesOneObjectPerEvent() async throws {
        let consumer = try await startConsumer(["--log-format", "json"])
        try await produce(["client", "json-client"], printing: ["json-client"])
        try await consumer.waitForLog("client registered", "\"json-client\"")
        let observer = try await observeOutcomes()
        try await produce(["payment", "json-client", "--payment-id", "json-payment"], printing: ["json-payment"])
        _ = try await observer.next(seconds: 10)
        try await consumer.waitForLog("payment processed")
        await stop(consumer)

        let objects = consumer.stderrLines.filter { !$0.isEmpty }.map { line -> [String: Any]? in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
        }
        XCTAssertFalse(objects.isEmpty)
        XCTAssertTrue(objects.allSatisfy { $0 != nil }, "every stderr line is a JSON object:\n\(consumer.stderrTail)")
        let processed = objects.compactMap { $0 }.filter { $0["message"] as? String == "payment processed" }
        XCTAssertEqual(processed.count, 1)
        XCTAssertEqual(processed.first?["payment.id"] as? String, "json-payment")
        XCTAssertEqual(processed.first?["client.id"] as? String, "json-client")
        XCTAssertEqual(processed.first?["level"] as? String, "info")
        XCTAssertNotNil(processed.first?["timestamp"] as? String)
        let registered = objects.compactMap { $0 }.filter { $0["message"] as? String == "client registered" }
        XCTAssertEqual(registered.count, 1)
    }

    func testSummaryLineReportsTheCounters() async throws {
        let consumer = try await startConsumer(["--summary-interval", "500ms"])
        try await register("counted-client", with: consumer)
        try await produce(["payment", "counted-client", "--payment-id", "counted"], printing: ["counted"])
        try await consumer.waitForLog("summary", "processed=1", "registered=1", seconds: 10)
        await stop(consumer)
    }
}

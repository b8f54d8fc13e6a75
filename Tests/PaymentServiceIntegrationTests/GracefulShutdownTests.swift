import Foundation
import PaymentService
import RabbitMQ
import XCTest

/// (f) SIGTERM in the middle of a stream of payments loses none of them.
final class GracefulShutdownTests: PaymentScenarioTestCase {
    // Enough that the consumer is still busy when the SIGTERM lands, however fast it gets.
    private let paymentCount = 6000

    func testSIGTERMMidStreamLosesNothing() async throws {
        // The producer needs the queues, and the observer the exchange, before any consumer runs: declare them
        // exactly as the consumer does.
        let setup = try await broker.openChannel()
        try await topology.declareCommon(on: setup)
        try await setup.close()
        let outcomes = try await observeOutcomes()

        let expected = (1...paymentCount).map { "bulk-\($0)" }
        try await produce(["client", "client-f"], printing: ["client-f"])
        try await produce(
            ["payment", "client-f", "--payment-id", "bulk", "--count", "\(paymentCount)"], printing: expected)

        // The first consumer is stopped as soon as the first outcome shows up.
        let first = try await startConsumer()
        var seen = [try await outcomes.next(seconds: 15)]
        let log = await stop(first)
        let firstRun = try XCTUnwrap(
            Self.processedCount(inLog: log), "the consumer's last summary; its log ends with:\n\(first.stderrTail)")
        // Every outcome the first consumer published was confirmed before it acknowledged: all of them are routed.
        seen += try await outcomes.takeAll()
        XCTAssertEqual(seen.count, firstRun, "outcomes of the first run")
        XCTAssertLessThan(firstRun, paymentCount, "the first consumer was stopped mid-stream")

        // The new process does not remember the client: register it again, then restart.
        try await produce(["client", "client-f"], printing: ["client-f"])
        let second = try await startConsumer()
        var processed = Set(seen.map(\.outcome.paymentId))
        try await eventually(60, "all \(paymentCount) payments to be processed (\(processed.count) so far)") {
            () -> Void? in
            for outcome in try await outcomes.takeAll() {
                seen.append(outcome)
                processed.insert(outcome.outcome.paymentId)
            }
            return processed.count == paymentCount ? () : nil
        }
        seen += try await outcomes.drain(for: gracePeriod)

        XCTAssertEqual(processed, Set(expected))
        XCTAssertEqual(seen.filter { $0.outcome.outcome != .processed }.map(\.description), [])
        XCTAssertEqual(seen.filter { $0.outcome.clientId != "client-f" }.map(\.description), [])
        let duplicates = seen.count - Set(seen.map(\.outcome.paymentId)).count
        print(
            "SIGTERM mid-stream: the first consumer processed \(firstRun) of \(paymentCount) payments; "
                + "\(seen.count) outcomes in all, \(duplicates) duplicates")
        // A graceful stop acknowledges every payment whose outcome it published, so none is redelivered.
        XCTAssertEqual(duplicates, 0, "payments with more than one outcome")
        try await assertNothingLeft()

        await stop(second)
        let summary = try XCTUnwrap(Self.processedCount(inLog: second.stderr))
        XCTAssertEqual(firstRun + summary, paymentCount, "the two runs processed every payment between them")
    }

    /// The `processed=N` count of the consumer's closing summary.
    private static func processedCount(inLog log: String) -> Int? {
        guard
            let line = log.split(whereSeparator: \.isNewline).last(where: { $0.contains("payment consumer stopped") }),
            let range = line.range(of: "processed=")
        else { return nil }
        return Int(line[range.upperBound...].prefix { $0.isNumber })
    }
}

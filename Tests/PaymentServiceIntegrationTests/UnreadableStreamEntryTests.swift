import Foundation
import PaymentService
import RabbitMQ
import XCTest

/// An entry of the shared streams that this version cannot read (written by a newer version, or by hand) is skipped
/// with a warning naming the stream, and the consumer carries on: one bad entry must not stop every payment.
final class UnreadableStreamEntryTests: PaymentScenarioTestCase {
    func testUnreadableEntriesOfTheSharedStreamsAreSkippedAndTheConsumerCarriesOn() async throws {
        let consumer = try await startConsumer()
        let entries: [(stream: String, body: Data, format: String?)] = [
            (topology.clientsLog, Data("not a registration".utf8), nil),
            (topology.clientsLog, Data([0x00, 0x09, 0x61]), RegistrationBatchCodec.format),
            (topology.clientsLog, Data(), "registrations-v99"),
            (topology.claimsLog, Data("Zgarbage".utf8), ClaimRecordCodec.format),
            (topology.claimsLog, ClaimRecordCodec.encode([.release(paymentID: "p", claimID: "c")]), nil),
        ]
        let channel = try await broker.openChannel()
        try await channel.enablePublisherConfirms()
        for entry in entries {
            let headers: AMQPTable? = entry.format.map { ["log-format": .string($0)] }
            try await channel.publish(
                entry.body, routingKey: entry.stream, properties: AMQPProperties(headers: headers), mandatory: true)
        }
        try await channel.close()

        try await eventually(10, "a warning per unreadable entry; the log ends with:\n\(consumer.stderrTail)") {
            () -> Void? in
            consumer.logLines(containing: "unreadable stream entry skipped") >= entries.count ? () : nil
        }
        XCTAssertEqual(
            consumer.logLines(containing: "unreadable stream entry skipped", "stream=\(topology.clientsLog)"), 3)
        XCTAssertEqual(
            consumer.logLines(containing: "unreadable stream entry skipped", "stream=\(topology.claimsLog)"), 2)

        let observer = try await observeOutcomes()
        try await register("after-bad-entries", with: consumer)
        try await produce(
            ["payment", "after-bad-entries", "--payment-id", "pay-after-bad-entries"], printing: ["pay-after-bad-entries"])
        let outcome = try await observer.next(seconds: 10)
        XCTAssertEqual(outcome.outcome.paymentId, "pay-after-bad-entries")
        XCTAssertEqual(outcome.routingKey, PaymentOutcome.Kind.processed.routingKey)
        await stop(consumer)
        try await assertNothingLeft()
    }
}

import Foundation
import RabbitMQ
import XCTest

@testable import PaymentService

/// The binary entries of the claims and clients streams.
final class SharedLogCodecTests: XCTestCase {
    func testClaimRecordsRoundTrip() throws {
        let records: [ClaimRecord] = [
            .claim(paymentID: "pay-1", claimID: "a1b2-1", at: 1_764_000_000_123),
            .settle(paymentID: "pay-1", claimID: "a1b2-1", outcome: .processed, at: 1_764_000_000_456),
            .settle(paymentID: "pay-ü\n\t 2", claimID: "c-2", outcome: .parked, at: -1),
            .release(paymentID: String(repeating: "x", count: 128), claimID: "c-3"),
        ]
        XCTAssertEqual(try ClaimRecordCodec.decode(ClaimRecordCodec.encode(records)), records)
        XCTAssertEqual(try ClaimRecordCodec.decode(Data()), [])
    }

    func testATruncatedOrForeignClaimEntryIsRefused() {
        let body = ClaimRecordCodec.encode([.claim(paymentID: "p", claimID: "c", at: 5)])
        XCTAssertThrowsError(try ClaimRecordCodec.decode(body.dropLast())) { error in
            XCTAssertTrue("\(error)".contains("truncated"), "\(error)")
        }
        XCTAssertThrowsError(try ClaimRecordCodec.decode(Data("Zxx".utf8))) { error in
            XCTAssertTrue("\(error)".contains("unknown record tag"), "\(error)")
        }
        var badOutcome = ClaimRecordCodec.encode([.settle(paymentID: "p", claimID: "c", outcome: .parked, at: 1)])
        badOutcome[badOutcome.count - 9] = UInt8(ascii: "?")
        XCTAssertThrowsError(try ClaimRecordCodec.decode(badOutcome))
    }

    func testAClaimsEntryCarriesItsFormat() {
        let entry = ClaimRecordCodec.entry([.release(paymentID: "p", claimID: "c")])
        XCTAssertEqual(entry.properties.headers?["log-format"]?.stringValue, "claims-v1")
        XCTAssertEqual(entry.properties.deliveryMode, .persistent)
    }

    func testRegistrationBatchesCarryManyClientsPerEntry() throws {
        let clients = (0..<1000).map { "client-\($0)" } + ["ü \n", String(repeating: "z", count: 128)]
        let entry = RegistrationBatchCodec.entry(clients)
        XCTAssertEqual(entry.properties.headers?["log-format"]?.stringValue, "registrations-v1")
        // About 10 bytes per id: a million clients are about ten megabytes of stream.
        XCTAssertLessThan(entry.body.count, 13_000 + 130 + 10)
        XCTAssertEqual(try RegistrationBatchCodec.clientIDs(inBody: entry.body, format: "registrations-v1"), clients)
        XCTAssertThrowsError(
            try RegistrationBatchCodec.clientIDs(inBody: entry.body.dropLast(), format: "registrations-v1"))
    }

    func testRegistrationsWrittenOnePerEntryBeforeBatchingAreStillRead() throws {
        let legacy = try JSONEncoder().encode(ClientRegistration(clientId: "old-client"))
        XCTAssertEqual(try RegistrationBatchCodec.clientIDs(inBody: legacy, format: nil), ["old-client"])
        XCTAssertThrowsError(try RegistrationBatchCodec.clientIDs(inBody: Data("{}".utf8), format: nil))
        XCTAssertThrowsError(try RegistrationBatchCodec.clientIDs(inBody: legacy, format: "registrations-v9")) {
            XCTAssertTrue("\($0)".contains("registrations-v9"), "\($0)")
        }
    }
}

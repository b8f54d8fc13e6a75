import Foundation
import XCTest

@testable import PaymentService

final class PaymentEventsTests: XCTestCase {
    private func jsonObject(_ value: some Encodable) throws -> [String: Any] {
        let data = try JSONEncoder().encode(value)
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    func testAProcessedOutcomeHasNoReasonKey() throws {
        let outcome = PaymentOutcome(paymentId: "p-1", clientId: "c-1", attempts: 1, outcome: .processed)
        XCTAssertNil(outcome.reason)
        let object = try jsonObject(outcome)
        XCTAssertEqual(Set(object.keys), ["paymentId", "clientId", "attempts", "outcome"])
        XCTAssertEqual(object["paymentId"] as? String, "p-1")
        XCTAssertEqual(object["clientId"] as? String, "c-1")
        XCTAssertEqual(object["attempts"] as? Int, 1)
        XCTAssertEqual(object["outcome"] as? String, "processed")
    }

    func testAParkedOutcomeCarriesItsReason() throws {
        let outcome = PaymentOutcome(
            paymentId: "p-2", clientId: "c-2", attempts: 11, outcome: .parked,
            reason: "client \"c-2\" was still unknown after 11 attempts")
        let object = try jsonObject(outcome)
        XCTAssertEqual(Set(object.keys), ["paymentId", "clientId", "attempts", "outcome", "reason"])
        XCTAssertEqual(object["attempts"] as? Int, 11)
        XCTAssertEqual(object["outcome"] as? String, "parked")
        XCTAssertEqual(object["reason"] as? String, "client \"c-2\" was still unknown after 11 attempts")
    }

    func testOutcomesRoundTripAndDecodeWithoutAReason() throws {
        let parked = PaymentOutcome(paymentId: "p", clientId: "c", attempts: 3, outcome: .parked, reason: "why")
        XCTAssertEqual(try JSONDecoder().decode(PaymentOutcome.self, from: JSONEncoder().encode(parked)), parked)

        let json = Data(#"{"paymentId":"p","clientId":"c","attempts":2,"outcome":"processed"}"#.utf8)
        XCTAssertEqual(
            try JSONDecoder().decode(PaymentOutcome.self, from: json),
            PaymentOutcome(paymentId: "p", clientId: "c", attempts: 2, outcome: .processed, reason: nil))
        XCTAssertThrowsError(
            try JSONDecoder().decode(
                PaymentOutcome.self, from: Data(#"{"paymentId":"p","clientId":"c","attempts":2,"outcome":"lost"}"#.utf8)
            ))
    }

    func testOutcomesAreRoutedByKind() {
        XCTAssertEqual(PaymentOutcome.Kind.processed.routingKey, "payment.processed")
        XCTAssertEqual(PaymentOutcome.Kind.parked.routingKey, "payment.parked")
    }

    func testRequestsAreEncodedWithTheContractKeys() throws {
        let payment = try jsonObject(PaymentRequest(paymentId: "p", clientId: "c", amount: "10.50", currency: "EUR"))
        XCTAssertEqual(Set(payment.keys), ["paymentId", "clientId", "amount", "currency"])
        XCTAssertEqual(payment["amount"] as? String, "10.50", "the amount stays a string")

        XCTAssertEqual(Set(try jsonObject(ClientRegistration(clientId: "c")).keys), ["clientId"])
        let named = try jsonObject(ClientRegistration(clientId: "c", name: "Acme"))
        XCTAssertEqual(Set(named.keys), ["clientId", "name"])
        XCTAssertEqual(named["name"] as? String, "Acme")
    }
}

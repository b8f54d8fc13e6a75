import Foundation
import XCTest

@testable import PaymentService

final class MessageValidationTests: XCTestCase {
    // MARK: - Helpers

    /// A payment body with every field valid, then `changes` applied (a nil value removes the key).
    private func paymentBody(_ changes: [String: Any?] = [:]) throws -> Data {
        var object: [String: Any] = ["paymentId": "p-1", "clientId": "c-1", "amount": "10.50", "currency": "EUR"]
        for (key, value) in changes { object[key] = value }
        return try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
    }

    private func reason<Value>(
        _ result: Result<Value, UnreadableMessage>, file: StaticString = #filePath, line: UInt = #line
    ) -> String? {
        switch result {
        case .success(let value):
            XCTFail("expected a rejection, got \(value)", file: file, line: line)
            return nil
        case .failure(let problem):
            return problem.reason
        }
    }

    private func assertPaymentRejected(
        _ body: Data, _ expected: String, file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertEqual(
            reason(MessageValidation.payment(from: body), file: file, line: line), expected, file: file, line: line)
    }

    private func assertPaymentRejected(
        _ json: String, _ expected: String, file: StaticString = #filePath, line: UInt = #line
    ) {
        assertPaymentRejected(Data(json.utf8), expected, file: file, line: line)
    }

    private func amountReason(_ amount: String) -> String {
        "field \"amount\" must be a positive decimal string such as \"10.50\", not \"\(amount)\""
    }

    private func currencyReason(_ currency: String) -> String {
        "field \"currency\" must be an ISO 4217 code of three capital letters, not \"\(currency)\""
    }

    // MARK: - Bodies that are not a message at all

    func testAnEmptyBodyIsRejected() {
        assertPaymentRejected(Data(), "the body is empty")
        XCTAssertEqual(reason(MessageValidation.registration(from: Data())), "the body is empty")
    }

    func testABodyOneByteOverTheLimitIsRejectedUnread() {
        XCTAssertEqual(MessageValidation.maximumBodySize, 64 * 1024)
        let oversized = Data(repeating: UInt8(ascii: " "), count: 64 * 1024 + 1)
        assertPaymentRejected(oversized, "the body has 65537 bytes, over the limit of 65536")
        XCTAssertEqual(
            reason(MessageValidation.registration(from: oversized)), "the body has 65537 bytes, over the limit of 65536"
        )
    }

    func testABodyOfExactlyTheLimitIsRead() throws {
        var body = try paymentBody()
        body.append(Data(repeating: UInt8(ascii: " "), count: MessageValidation.maximumBodySize - body.count))
        XCTAssertEqual(body.count, 65_536)
        XCTAssertEqual(
            try MessageValidation.payment(from: body).get(),
            PaymentRequest(paymentId: "p-1", clientId: "c-1", amount: "10.50", currency: "EUR"))
    }

    func testABodyThatIsNotUTF8IsRejected() {
        assertPaymentRejected(Data([0xFF, 0xFE]), "the body is not valid UTF-8")
        // Invalid bytes inside an otherwise well-formed JSON string are caught too.
        var body = Data(#"{"paymentId":"p-"#.utf8)
        body.append(contentsOf: [0xC3, 0x28])
        body.append(Data(#"","clientId":"c-1","amount":"1","currency":"EUR"}"#.utf8))
        assertPaymentRejected(body, "the body is not valid UTF-8")
        XCTAssertEqual(reason(MessageValidation.registration(from: Data([0xFF, 0xFE]))), "the body is not valid UTF-8")
    }

    func testABodyThatIsNotJSONIsRejected() {
        assertPaymentRejected("{not json", "the body is not valid JSON")
        assertPaymentRejected("paymentId=p-1", "the body is not valid JSON")
        assertPaymentRejected(#"{"paymentId": "p-1", "clientId"}"#, "the body is not valid JSON")
        XCTAssertEqual(
            reason(MessageValidation.registration(from: Data("<client/>".utf8))), "the body is not valid JSON")
    }

    func testJSONThatIsNotAnObjectIsRejected() {
        assertPaymentRejected("[1, 2, 3]", "the body is not a JSON object")
        assertPaymentRejected(#""p-1""#, "the body is not a JSON object")
        assertPaymentRejected("42", "the body is not a JSON object")
        assertPaymentRejected("true", "the body is not a JSON object")
        XCTAssertEqual(
            reason(MessageValidation.registration(from: Data(#"["c-1"]"#.utf8))), "the body is not a JSON object")
    }

    func testABodyThatIsJSONNullIsRejected() {
        // Only the rejection is checked: MessageValidation.describe has no top-level case for valueNotFound, so
        // today the reason reads `field "" is null (expected Dictionary<String, Any>)`, not "not a JSON object".
        XCTAssertNotNil(reason(MessageValidation.payment(from: Data("null".utf8))))
        XCTAssertNotNil(reason(MessageValidation.registration(from: Data("null".utf8))))
    }

    // MARK: - Fields

    func testEveryMissingFieldIsNamed() throws {
        for field in ["paymentId", "clientId", "amount", "currency"] {
            assertPaymentRejected(try paymentBody([field: nil]), "field \"\(field)\" is missing")
        }
        XCTAssertEqual(
            reason(MessageValidation.registration(from: Data(#"{"name": "Acme"}"#.utf8))),
            "field \"clientId\" is missing")
    }

    func testAFieldOfTheWrongTypeIsNamed() throws {
        assertPaymentRejected(
            #"{"paymentId": "p-1", "clientId": "c-1", "amount": 10.5, "currency": "EUR"}"#,
            "field \"amount\" has the wrong type (expected a string)")
        assertPaymentRejected(
            try paymentBody(["paymentId": 7]), "field \"paymentId\" has the wrong type (expected a string)")
        assertPaymentRejected(
            try paymentBody(["clientId": true]), "field \"clientId\" has the wrong type (expected a string)")
        assertPaymentRejected(
            try paymentBody(["currency": ["EUR"]]), "field \"currency\" has the wrong type (expected a string)")
        XCTAssertEqual(
            reason(MessageValidation.registration(from: Data(#"{"clientId": "c-1", "name": 5}"#.utf8))),
            "field \"name\" has the wrong type (expected a string)")
    }

    func testANullFieldIsNamed() {
        assertPaymentRejected(
            #"{"paymentId": "p-1", "clientId": "c-1", "amount": "1.00", "currency": null}"#,
            "field \"currency\" is null (expected a string)")
        assertPaymentRejected(
            #"{"paymentId": null, "clientId": "c-1", "amount": "1.00", "currency": "EUR"}"#,
            "field \"paymentId\" is null (expected a string)")
        XCTAssertEqual(
            reason(MessageValidation.registration(from: Data(#"{"clientId": null}"#.utf8))),
            "field \"clientId\" is null (expected a string)")
    }

    func testEmptyIDsAreRejected() throws {
        assertPaymentRejected(try paymentBody(["paymentId": ""]), "field \"paymentId\" is empty")
        assertPaymentRejected(try paymentBody(["clientId": ""]), "field \"clientId\" is empty")
        XCTAssertEqual(
            reason(MessageValidation.registration(from: Data(#"{"clientId": ""}"#.utf8))), "field \"clientId\" is empty"
        )
    }

    func testIDsLongerThan128CharactersAreRejected() throws {
        XCTAssertEqual(MessageValidation.maximumIDLength, 128)
        let tooLong = String(repeating: "p", count: 129)
        assertPaymentRejected(
            try paymentBody(["paymentId": tooLong]), "field \"paymentId\" has 129 characters, over the limit of 128")
        assertPaymentRejected(
            try paymentBody(["clientId": tooLong]), "field \"clientId\" has 129 characters, over the limit of 128")
        XCTAssertEqual(
            reason(MessageValidation.registration(from: Data(#"{"clientId": "\#(tooLong)"}"#.utf8))),
            "field \"clientId\" has 129 characters, over the limit of 128")
    }

    func testIDsOfExactly128CharactersAreAccepted() throws {
        // The limit counts characters, not bytes: 128 two-byte characters are fine.
        let longest = String(repeating: "é", count: 128)
        let payment = try MessageValidation.payment(from: try paymentBody(["paymentId": longest, "clientId": longest]))
            .get()
        XCTAssertEqual(payment.paymentId, longest)
        XCTAssertEqual(payment.clientId, longest)
    }

    func testAmountsThatAreNotPositiveDecimalStringsAreRejected() throws {
        for amount in [
            "10.5.1", "-1", "0", "abc", "1e3", "", "0.00", "1.", ".5", "+1", " 1", "1,50", "1.23456",
            "1234567890123456", "١٢",
        ] {
            assertPaymentRejected(try paymentBody(["amount": amount]), amountReason(amount))
        }
    }

    func testAnAmountIsQuotedInTheReasonOnlyUpTo40Characters() throws {
        let amount = String(repeating: "x", count: 100)
        assertPaymentRejected(try paymentBody(["amount": amount]), amountReason(String(repeating: "x", count: 40)))
    }

    func testPositiveDecimalAmountsAreAccepted() throws {
        for amount in ["10.50", "1", "0.01", "10.5", "0.0001", "999999999999999.9999", "100"] {
            let payment = try MessageValidation.payment(from: try paymentBody(["amount": amount])).get()
            XCTAssertEqual(payment.amount, amount)
        }
    }

    func testCurrenciesThatAreNotThreeCapitalLettersAreRejected() throws {
        for currency in ["eur", "EURO", "EU", "", "E1R", "ÉUR", "Eur"] {
            assertPaymentRejected(try paymentBody(["currency": currency]), currencyReason(currency))
        }
    }

    // MARK: - Valid messages

    func testAValidPaymentIsRead() throws {
        let body = Data(
            #"{"paymentId": "p-1", "clientId": "c-1", "amount": "10.50", "currency": "USD", "note": "x"}"#.utf8)
        XCTAssertEqual(
            try MessageValidation.payment(from: body).get(),
            PaymentRequest(paymentId: "p-1", clientId: "c-1", amount: "10.50", currency: "USD"))
    }

    func testARegistrationIsReadWithOrWithoutItsName() throws {
        XCTAssertEqual(
            try MessageValidation.registration(from: Data(#"{"clientId": "c-1", "name": "Acme"}"#.utf8)).get(),
            ClientRegistration(clientId: "c-1", name: "Acme"))
        XCTAssertEqual(
            try MessageValidation.registration(from: Data(#"{"clientId": "c-2"}"#.utf8)).get(),
            ClientRegistration(clientId: "c-2", name: nil))
        XCTAssertEqual(
            try MessageValidation.registration(from: Data(#"{"clientId": "c-3", "name": null}"#.utf8)).get(),
            ClientRegistration(clientId: "c-3", name: nil))
    }

    // MARK: - Checks before publishing

    func testProblemsOfOutgoingMessagesUseTheSameReasons() {
        XCTAssertNil(MessageValidation.problem(with: ClientRegistration(clientId: "c-1")))
        XCTAssertEqual(
            MessageValidation.problem(with: ClientRegistration(clientId: ""))?.reason, "field \"clientId\" is empty")
        XCTAssertNil(
            MessageValidation.problem(with: PaymentRequest(paymentId: "p", clientId: "c", amount: "1", currency: "EUR"))
        )
        XCTAssertEqual(
            MessageValidation.problem(
                with: PaymentRequest(paymentId: "p", clientId: "c", amount: "1e3", currency: "EUR"))?
                .reason,
            amountReason("1e3"))
        XCTAssertEqual(
            MessageValidation.problem(
                with: PaymentRequest(paymentId: "p", clientId: "c", amount: "1", currency: "eur"))?
                .reason,
            currencyReason("eur"))
        XCTAssertEqual(
            MessageValidation.problem(with: PaymentRequest(paymentId: "", clientId: "c", amount: "1", currency: "EUR"))?
                .reason,
            "field \"paymentId\" is empty")
    }

    func testAnUnreadableMessageDescribesItselfByItsReason() {
        let problem = UnreadableMessage("the body is empty")
        XCTAssertEqual(problem.description, "the body is empty")
        XCTAssertEqual(problem, UnreadableMessage("the body is empty"))
        XCTAssertNotEqual(problem, UnreadableMessage("the body is not valid JSON"))
    }
}

import Foundation
import PaymentService
import RabbitMQ
import XCTest

/// (e) Every kind of bad input is parked with its reason, and the consumer carries on.
final class UnreadableMessageTests: PaymentScenarioTestCase {
    /// A message the producer would refuse to send, and what the consumer must say about it.
    private struct BadInput {
        let id: String
        let body: Data
        var headers: AMQPTable? = nil
        let registration: Bool
        let reason: String
    }

    private func paymentJSON(_ fields: String) -> Data {
        Data("{\(fields)}".utf8)
    }

    private var badInputs: [BadInput] {
        [
            BadInput(
                id: "bad-not-json", body: Data("{this is not json".utf8), registration: false,
                reason: "the body is not valid JSON"),
            BadInput(
                id: "bad-missing-field",
                body: paymentJSON(#""paymentId": "bad-missing-field", "clientId": "c", "amount": "1.00""#),
                registration: false, reason: "field \"currency\" is missing"),
            BadInput(
                id: "bad-wrong-type",
                body: paymentJSON(
                    #""paymentId": "bad-wrong-type", "clientId": "c", "amount": 10.5, "currency": "EUR""#),
                registration: false, reason: "field \"amount\" has the wrong type (expected a string)"),
            BadInput(id: "bad-empty", body: Data(), registration: false, reason: "the body is empty"),
            BadInput(
                id: "bad-not-utf8", body: Data([0xFF, 0xFE]), registration: false, reason: "the body is not valid UTF-8"
            ),
            BadInput(
                id: "bad-oversized", body: Data(repeating: UInt8(ascii: "a"), count: 70_000), registration: false,
                reason: "the body has 70000 bytes, over the limit of 65536"),
            BadInput(
                id: "bad-amount",
                body: paymentJSON(#""paymentId": "bad-amount", "clientId": "c", "amount": "1e3", "currency": "EUR""#),
                registration: false,
                reason: "field \"amount\" must be a positive decimal string such as \"10.50\", not \"1e3\""),
            BadInput(
                id: "bad-attempt-header",
                body: paymentJSON(
                    #""paymentId": "bad-attempt-header", "clientId": "c", "amount": "1", "currency": "EUR""#),
                headers: [PaymentTopology.attemptHeader: "two"], registration: false,
                reason: "header \"payment-attempt\" is not a positive integer"),
            BadInput(
                id: "bad-registration", body: Data(#"{"clientId": ""}"#.utf8), registration: true,
                reason: "field \"clientId\" is empty"),
        ]
    }

    func testEveryKindOfBadInputIsParkedWithItsReasonAndTheConsumerCarriesOn() async throws {
        let consumer = try await startConsumer()
        let outcomes = try await observeOutcomes()
        let inputs = badInputs

        for input in inputs {
            try await publishRaw(
                input.body, to: input.registration ? topology.clientsQueue : topology.paymentsQueue,
                messageID: input.id, headers: input.headers)
        }

        let broker = try broker
        let parkingLot = topology.parkingLot
        try await eventually(10, "\(inputs.count) messages in \(parkingLot); consumer log:\n\(consumer.stderrTail)") {
            () -> Void? in
            try await broker.messageCount(parkingLot) >= inputs.count ? () : nil
        }
        let channel = try await broker.openChannel()
        var parked: [String: AMQPDelivery] = [:]
        while let delivery = try await channel.get(queue: parkingLot, noAck: true) {
            let id = try XCTUnwrap(delivery.properties.messageID, "the parked copy keeps the message id")
            XCTAssertNil(parked[id], "\(id) parked twice")
            parked[id] = delivery
        }
        XCTAssertEqual(Set(parked.keys), Set(inputs.map(\.id)))

        for input in inputs {
            guard let delivery = parked[input.id] else { continue }
            let headers = delivery.properties.headers
            XCTAssertEqual(headers?[PaymentTopology.parkingReasonHeader]?.stringValue, input.reason, input.id)
            XCTAssertEqual(
                headers?[PaymentTopology.parkingSourceHeader]?.stringValue,
                input.registration ? topology.clientsQueue : topology.paymentsQueue, input.id)
            XCTAssertEqual(delivery.body, input.body, "\(input.id) is parked as it was sent")
            XCTAssertEqual(delivery.properties.deliveryMode, .persistent, input.id)
        }
        XCTAssertEqual(consumer.logLines(containing: "unreadable message parked"), inputs.count)

        // Still running, and still processing good messages.
        XCTAssertTrue(consumer.isRunning)
        try await register("client-e", with: consumer)
        try await produce(["payment", "client-e", "--payment-id", "pay-e"], printing: ["pay-e"])
        let observed = try await outcomes.next()
        XCTAssertEqual(observed.outcome.paymentId, "pay-e")
        XCTAssertEqual(observed.outcome.outcome, .processed)
        XCTAssertEqual(observed.outcome.attempts, 1)

        // Unreadable messages have no outcome: the only one is the good payment's.
        let later = try await outcomes.drain(for: gracePeriod)
        XCTAssertEqual(later.map(\.description), [])
        try await assertNothingLeft()
    }
}

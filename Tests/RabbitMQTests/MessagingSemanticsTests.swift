import XCTest

@testable import RabbitMQ

/// The names the conventions give destinations and errors.
final class MessagingSemanticsTests: XCTestCase {
    func testDestinationsNameTheDefaultExchangeAmqDefault() {
        XCTAssertEqual(MessagingSemantics.sendDestination(exchange: "", routingKey: "orders"), "amq.default:orders")
        XCTAssertEqual(
            MessagingSemantics.sendDestination(exchange: "payment-events", routingKey: "payment.processed"),
            "payment-events:payment.processed")
        XCTAssertEqual(
            MessagingSemantics.receiveDestination(exchange: "", routingKey: "orders", queue: "orders"),
            "amq.default:orders:orders")
        XCTAssertEqual(
            MessagingSemantics.receiveDestination(exchange: "events", routingKey: "", queue: "audit"), "events::audit")
    }

    func testErrorTypesAreAMQPCodesOrTypeNames() {
        struct Refused: Error {}
        XCTAssertEqual(MessagingSemantics.errorType(of: AMQPError(.publishNacked, "refused")), "publishNacked")
        XCTAssertEqual(MessagingSemantics.errorType(of: CancellationError()), "cancelled")
        XCTAssertTrue(MessagingSemantics.errorType(of: Refused()).hasSuffix("Refused"))
    }
}

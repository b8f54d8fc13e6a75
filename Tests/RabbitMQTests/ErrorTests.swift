import XCTest
@testable import RabbitMQ

final class ErrorTests: XCTestCase {
    func testDescriptionCarriesBrokerAndLibraryDetails() {
        let error = AMQPError(
            .channelClosedByBroker, "channel 1 was closed by the broker",
            replyCode: 404, replyText: "NOT_FOUND - no queue 'q'", method: AMQPMethod(classID: 50, methodID: 10))
        XCTAssertEqual(error.replyCodeName, "NOT_FOUND")
        XCTAssertTrue(error.description.contains("404 NOT_FOUND"), error.description)
        XCTAssertTrue(error.description.contains("queue.declare"), error.description)
    }
}

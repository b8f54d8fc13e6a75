import RabbitMQ
import XCTest

@testable import PaymentService

/// A publish that fails because ConfirmedChannel closed the channel it went out on, after replacing it, is
/// retriable; the same failure on the current channel, and every other failure, are kept as they are.
final class ConfirmedChannelErrorTests: XCTestCase {
    private let closed = AMQPError(.channelClosed, "channel 2 is closed: closed by the application")

    func testChannelClosedOnAReplacedChannelIsRetriable() {
        let error = ConfirmedChannel.error(closed, publishedOn: 0, current: 1, what: "claims-log")
        XCTAssertEqual(error.code, .timeout)
        XCTAssertTrue(error.isRetriable)
        XCTAssertTrue(error.message.contains("claims-log"), error.message)
    }

    func testChannelClosedOnTheCurrentChannelIsKept() {
        let error = ConfirmedChannel.error(closed, publishedOn: 1, current: 1, what: "claims-log")
        XCTAssertEqual(error.code, .channelClosed)
        XCTAssertFalse(error.isRetriable)
    }

    func testOtherFailuresOnAReplacedChannelAreKept() {
        let refused = AMQPError(.invalidArgument, "routing key too long")
        XCTAssertEqual(ConfirmedChannel.error(refused, publishedOn: 0, current: 3, what: "x").code, .invalidArgument)
    }
}

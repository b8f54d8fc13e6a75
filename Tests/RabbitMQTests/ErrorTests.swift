import XCTest

#if canImport(Glibc)
import Glibc
#endif

@testable import RabbitMQ

final class ErrorTests: XCTestCase {
    func testDescriptionCarriesBrokerAndLibraryDetails() {
        let error = AMQPError(
            .channelClosedByBroker, "channel 1 was closed by the broker",
            replyCode: 404, replyText: "NOT_FOUND - no queue 'q'", method: AMQPMethod(classID: 50, methodID: 10),
            libraryStatus: -16, libraryStatusText: "unexpected protocol state")
        XCTAssertEqual(error.replyCodeName, "NOT_FOUND")
        XCTAssertTrue(error.description.contains("404 NOT_FOUND"), error.description)
        XCTAssertTrue(error.description.contains("queue.declare"), error.description)
        XCTAssertTrue(error.description.contains("-16 unexpected protocol state"), error.description)
    }

    func testMethodNames() {
        XCTAssertEqual(AMQPMethod(classID: 60, methodID: 40).name, "basic.publish")
        XCTAssertEqual(AMQPMethod(classID: 85, methodID: 10).name, "confirm.select")
        XCTAssertEqual(AMQPMethod(classID: 99, methodID: 1).name, "99.1")
    }

    func testFatalAndRetriableClassification() {
        XCTAssertTrue(AMQPError(.connectionLost, "").isFatal)
        XCTAssertTrue(AMQPError(.connectionLost, "").isRetriable)
        XCTAssertFalse(AMQPError(.channelClosedByBroker, "", replyCode: 404).isFatal)
        XCTAssertFalse(AMQPError(.channelClosedByBroker, "", replyCode: 404).isRetriable)
        XCTAssertTrue(AMQPError(.connectionClosedByBroker, "", replyCode: 320).isRetriable)
        XCTAssertFalse(AMQPError(.connectionClosedByBroker, "", replyCode: 503).isRetriable)
        XCTAssertTrue(AMQPError(.publishNacked, "").isRetriable)
        XCTAssertFalse(AMQPError(.authenticationFailed, "").isRetriable)
    }

    func testChannelCloseMapsReplyAndMethod() {
        let error = RabbitMQCErrors.channelCloseForTesting(
            channel: 3, replyCode: 406, replyText: "PRECONDITION_FAILED - inequivalent arg", classID: 50, methodID: 10)
        XCTAssertEqual(error.code, .channelClosedByBroker)
        XCTAssertEqual(error.replyCode, 406)
        XCTAssertEqual(error.replyText, "PRECONDITION_FAILED - inequivalent arg")
        XCTAssertEqual(error.method?.name, "queue.declare")
        XCTAssertTrue(error.message.contains("channel 3"))

        let closed = ConnectionStateMachine<Void>.callerError(channel: 3, cause: error)
        XCTAssertEqual(closed.code, .channelClosed)
        XCTAssertEqual(closed.replyCode, 406)
    }

    func testLoginRefusalsAreDistinct() {
        let badPassword = RabbitMQCErrors.loginRefusedForTesting(
            replyCode: 403, replyText: "ACCESS_REFUSED - Login was refused", username: "alice", virtualHost: "/")
        XCTAssertEqual(badPassword.code, .authenticationFailed)
        XCTAssertTrue(badPassword.message.contains("alice"))

        let badVhost = RabbitMQCErrors.loginRefusedForTesting(
            replyCode: 530, replyText: "NOT_ALLOWED - vhost x not found", username: "alice", virtualHost: "x")
        XCTAssertEqual(badVhost.code, .virtualHostNotAccessible)
        XCTAssertTrue(badVhost.message.contains("\"x\""))

        XCTAssertEqual(RabbitMQCErrors.loginFailedForTesting(status: -0x13).code, .authenticationMechanismUnsupported)
        XCTAssertEqual(RabbitMQCErrors.loginFailedForTesting(status: -0x0D).code, .connectTimeout)
        XCTAssertEqual(RabbitMQCErrors.loginFailedForTesting(status: -0x07).code, .connectionLost)
    }

    func testSocketOpenFailuresAreDistinct() {
        let host = "broker.example"
        XCTAssertEqual(
            RabbitMQCErrors.socketOpen(status: -0x05, savedErrno: 0, host: host, port: 5672).code, .hostNotFound)
        XCTAssertEqual(
            RabbitMQCErrors.socketOpen(status: -0x09, savedErrno: ECONNREFUSED, host: host, port: 5672).code,
            .connectionRefused)
        XCTAssertEqual(
            RabbitMQCErrors.socketOpen(status: -0x0D, savedErrno: 0, host: host, port: 5672).code, .connectTimeout)
        let tls = RabbitMQCErrors.socketOpen(status: -0x202, savedErrno: 0, host: host, port: 5671)
        XCTAssertEqual(tls.code, .tlsFailure)
        XCTAssertEqual(tls.libraryStatus, -0x202)
        XCTAssertNotNil(tls.libraryStatusText)
    }

    func testConnectionLostMessagesNameTheCause() {
        XCTAssertTrue(RabbitMQCErrors.connectionLost(status: -0x0F).message.contains("heartbeat"))
        XCTAssertTrue(RabbitMQCErrors.connectionLost(status: -0x07).message.contains("closed"))
    }

    func testDelayHeaderIsWholeMillisecondsRoundedUpAndRangeChecked() throws {
        XCTAssertEqual(try AMQPDelayedExchange.delayValue(for: .seconds(3)), .int64(3000))
        XCTAssertEqual(try AMQPDelayedExchange.delayValue(for: .microseconds(1500)), .int64(2))
        XCTAssertEqual(try AMQPDelayedExchange.delayValue(for: .zero), .int64(0))
        XCTAssertEqual(try AMQPDelayedExchange.delayValue(for: AMQPDelayedExchange.maximumDelay), .int64(4_294_967_295))
        XCTAssertThrowsError(try AMQPDelayedExchange.delayValue(for: .milliseconds(-1)))
        XCTAssertThrowsError(try AMQPDelayedExchange.delayValue(for: .milliseconds(4_294_967_296)))
    }
}

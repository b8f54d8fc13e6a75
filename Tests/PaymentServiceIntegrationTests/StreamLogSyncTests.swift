import Foundation
import Logging
import RabbitMQ
import RabbitMQTestSupport
import XCTest

@testable import PaymentService

/// `StreamLog.sync()` against the broker: it returns once its marker is read back, and a marker that never comes back
/// (RabbitMQ 3.10.8 can confirm a stream publish it never stores) fails the sync retriably instead of holding it, and
/// every handler behind it, for ever.
final class StreamLogSyncTests: XCTestCase {
    /// A follower of a new stream, on `connection`.
    private func makeLog(on connection: AMQPConnection, markerTimeout: Duration) async throws -> StreamLog {
        let stream = "stream-log-sync-\(UInt32.random(in: 0...999_999))"
        try await StreamLog.declare(stream, maxAge: "1h", on: try await connection.openChannel())
        return StreamLog(
            name: stream, consumeChannel: try await connection.openChannel(),
            publishChannel: try await ConfirmedChannel.open(on: connection), logger: Logger(label: "test"),
            markerTimeout: markerTimeout, onEntry: { _ in })
    }

    func testASyncReturnsOnceItsMarkerIsReadBack() async throws {
        let connection = try await PaymentTestBroker.connect(name: "payment-tests-stream-sync")
        let log = try await makeLog(on: connection, markerTimeout: .seconds(10))
        let reader = try await log.start(at: "first")
        try await withTimeout(10, "the sync") { try await log.sync() }
        await log.stop()
        _ = try? await reader.value
        _ = try await connection.openChannel().deleteQueue(log.name)
        try await connection.close()
    }

    func testAMarkerThatNeverComesBackFailsTheSyncRetriably() async throws {
        let connection = try await PaymentTestBroker.connect(name: "payment-tests-stream-sync-lost")
        // Never started: nothing reads the stream, so the marker is stored and confirmed but never read back, which
        // is what a follower sees when the broker confirmed a marker it did not store.
        let log = try await makeLog(on: connection, markerTimeout: .milliseconds(500))
        let started = ContinuousClock.now
        do {
            try await withTimeout(10, "the sync to give up") { try await log.sync() }
            XCTFail("a sync whose marker is never read returned")
        } catch let error as AMQPError {
            XCTAssertEqual(error.code, .timeout, "\(error)")
            XCTAssertTrue(error.isRetriable)
        }
        XCTAssertLessThan(ContinuousClock.now - started, .seconds(5))
        // The next sync appends a marker of its own rather than waiting for the lost one.
        do {
            try await withTimeout(10, "a second sync to give up") { try await log.sync() }
            XCTFail("the second sync returned without a reader")
        } catch let error as AMQPError {
            XCTAssertEqual(error.code, .timeout, "\(error)")
        }
        _ = try await connection.openChannel().deleteQueue(log.name)
        try await connection.close()
    }
}

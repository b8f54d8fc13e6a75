import Foundation
import Logging
import RabbitMQ
import RabbitMQTestSupport
import ServiceLifecycle
import XCTest

/// Waits on a connection end when their task is cancelled, as swift-service-lifecycle requires of a service.
final class CancellationTests: XCTestCase {
    /// A service that fails after a moment, as the other member of a group.
    private struct FailingService: Service {
        struct Failure: Error {}

        func run() async throws {
            try await Task.sleep(for: .milliseconds(300))
            throw Failure()
        }
    }

    func testRunEndsAndClosesTheConnectionWhenItsTaskIsCancelled() async throws {
        let connection = try await TestBroker.connect()
        let running = Task { try await connection.run() }
        try await Task.sleep(for: .milliseconds(200))
        let cancelled = ContinuousClock.now
        running.cancel()
        let result = try await withTimeout(5, "run() to end after cancellation") { await running.result }
        XCTAssertLessThan(ContinuousClock.now - cancelled, .seconds(2))
        XCTAssertThrowsError(try result.get()) { error in
            XCTAssertTrue(error is CancellationError, "\(error)")
        }
        XCTAssertFalse(connection.isOpen)
        let reused = await assertAMQPError(try await connection.openChannel())
        XCTAssertEqual(reused?.code, .connectionClosed)
    }

    func testAGroupWhoseOtherServiceFailsEnds() async throws {
        let connection = try await TestBroker.connect()
        let group = ServiceGroup(
            services: [connection, FailingService()], gracefulShutdownSignals: [], cancellationSignals: [],
            logger: TestBroker.logger)
        let result = try await withTimeout(10, "the service group to end") { () -> Result<Void, any Error> in
            do {
                try await group.run()
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        XCTAssertThrowsError(try result.get()) { error in
            XCTAssertTrue(error is FailingService.Failure, "\(error)")
        }
        XCTAssertFalse(connection.isOpen)
    }

    func testACancelledWaitUntilClosedLeavesTheConnectionOpen() async throws {
        let connection = try await TestBroker.connect()
        let waiting = Task { try await connection.waitUntilClosed() }
        try await Task.sleep(for: .milliseconds(100))
        waiting.cancel()
        let result = try await withTimeout(5, "waitUntilClosed() to end after cancellation") { await waiting.result }
        XCTAssertThrowsError(try result.get()) { error in
            XCTAssertTrue(error is CancellationError, "\(error)")
        }
        XCTAssertTrue(connection.isOpen)
        _ = try await connection.openChannel()
        try await connection.close()
    }
}

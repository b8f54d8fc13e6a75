import RabbitMQTestSupport
import XCTest

@testable import RabbitMQ

/// The one waiter type: a result settled once, waits that end on it or on their task's cancellation.
final class OneShotResultTests: XCTestCase {
    func testEveryWaiterGetsTheResultAndLaterWaitsGetItAtOnce() async throws {
        let outcome = OneShotResult<Int>()
        let first = Task { try await outcome.wait() }
        let second = Task { try await outcome.wait() }
        try await Task.sleep(for: .milliseconds(50))
        XCTAssertFalse(outcome.isSettled)
        XCTAssertTrue(outcome.settle(.success(7)))
        XCTAssertFalse(outcome.settle(.success(8)), "a second settlement is ignored")
        let values = try await withTimeout(5, "the waiters") { [try await first.value, try await second.value] }
        XCTAssertEqual(values, [7, 7])
        let later = try await outcome.wait()
        XCTAssertEqual(later, 7)
    }

    func testACancelledWaitEndsAndLeavesTheResultToTheOthers() async throws {
        let outcome = OneShotResult<Void>()
        let cancelled = Task { try await outcome.wait() }
        let patient = Task { try await outcome.wait() }
        try await Task.sleep(for: .milliseconds(50))
        cancelled.cancel()
        let result = try await withTimeout(5, "the cancelled wait") { await cancelled.result }
        XCTAssertThrowsError(try result.get()) { XCTAssertTrue($0 is CancellationError, "\($0)") }
        outcome.settle(.failure(AMQPError(.publishNacked, "refused")))
        let other = try await withTimeout(5, "the other wait") { await patient.result }
        XCTAssertThrowsError(try other.get()) { XCTAssertEqual(($0 as? AMQPError)?.code, .publishNacked) }
    }

    func testAWaitInAnAlreadyCancelledTaskEndsAtOnce() async throws {
        let outcome = OneShotResult<Void>()
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            try await outcome.wait()
        }
        let result = try await withTimeout(5, "the wait") { await task.result }
        XCTAssertThrowsError(try result.get()) { XCTAssertTrue($0 is CancellationError, "\($0)") }
    }

    func testACancelledConfirmWaitLeavesTheConfirmToWaitForAgain() async throws {
        let box = ConfirmationBox()
        let waiting = Task { try await box.wait() }
        try await Task.sleep(for: .milliseconds(50))
        waiting.cancel()
        let result = try await withTimeout(5, "the cancelled confirm wait") { await waiting.result }
        XCTAssertThrowsError(try result.get()) { XCTAssertTrue($0 is CancellationError, "\($0)") }
        box.settle(.success(()))
        try await withTimeout(5, "the confirm") { try await box.wait() }
    }
}

import RabbitMQ
import RabbitMQTestSupport
import XCTest

@testable import PaymentService

/// The live side of the arbiter: verdicts reach the handler that waits for them, whichever comes first, and every
/// wait ends (freed, timed out, failed or cancelled).
final class ClaimBoardTests: XCTestCase {
    private func board() -> ClaimBoard {
        ClaimBoard(arbiter: ClaimArbiter(leaseMilliseconds: 10_000, windowMilliseconds: 60_000))
    }

    func testAVerdictReadBeforeTheWaitIsKept() async throws {
        let board = board()
        board.expect("a-1")
        board.apply([.claim(paymentID: "p", claimID: "a-1", at: 1)])
        let verdict = try await withTimeout(5, "the verdict") { try await board.verdict(on: "a-1", timeout: .seconds(5)) }
        XCTAssertEqual(verdict, .won(replacing: nil))
    }

    func testAVerdictReadDuringTheWaitWakesIt() async throws {
        let board = board()
        board.expect("b-1")
        board.apply([.claim(paymentID: "p", claimID: "a-1", at: 1)])
        let waiting = Task { try await board.verdict(on: "b-1", timeout: .seconds(5)) }
        try await Task.sleep(for: .milliseconds(50))
        board.apply([.claim(paymentID: "p", claimID: "b-1", at: 2)])
        let verdict = try await withTimeout(5, "the verdict") { try await waiting.value }
        XCTAssertEqual(verdict, .heldBy(.init(claimID: "a-1", at: 1)))
    }

    func testAClaimNeverReadBackTimesOutRetriably() async throws {
        let board = board()
        board.expect("lost-1")
        do {
            _ = try await withTimeout(5, "the timeout") { try await board.verdict(on: "lost-1", timeout: .milliseconds(100)) }
            XCTFail("a verdict for a claim never applied")
        } catch let error as AMQPError {
            XCTAssertTrue(error.isRetriable, "\(error)")
            XCTAssertTrue(error.message.contains("lost-1"), error.message)
        }
    }

    func testASettlementWakesThoseWaitingForThePayment() async throws {
        let board = board()
        let started = ContinuousClock.now
        let waiting = Task { try await board.waitUntilFreed("p", timeout: .seconds(10)) }
        try await Task.sleep(for: .milliseconds(50))
        board.apply([.settle(paymentID: "p", claimID: "a-1", outcome: .processed, at: ClaimBoard.now())])
        try await withTimeout(5, "the wake-up") { try await waiting.value }
        XCTAssertLessThan(ContinuousClock.now - started, .seconds(5))
        XCTAssertEqual(board.outcome(of: "p"), .processed)
    }

    func testAWaitForAPaymentEndsAtItsTimeout() async throws {
        let board = board()
        let started = ContinuousClock.now
        try await withTimeout(5, "the timeout") { try await board.waitUntilFreed("p", timeout: .milliseconds(100)) }
        XCTAssertGreaterThanOrEqual(ContinuousClock.now - started, .milliseconds(100))
    }

    func testCancellationEndsBothWaits() async throws {
        let board = board()
        board.expect("c-1")
        let verdict = Task { try await board.verdict(on: "c-1", timeout: .seconds(30)) }
        let freed = Task { try await board.waitUntilFreed("p", timeout: .seconds(30)) }
        try await Task.sleep(for: .milliseconds(50))
        verdict.cancel()
        freed.cancel()
        let verdictResult = await withTimeoutResult { try await verdict.value }
        let freedResult = await withTimeoutResult { try await freed.value }
        XCTAssertTrue(verdictResult is CancellationError, "\(verdictResult)")
        XCTAssertTrue(freedResult is CancellationError, "\(freedResult)")
    }

    func testAFailedStreamFailsEveryWaitNowAndLater() async throws {
        let board = board()
        board.expect("d-1")
        let waiting = Task { try await board.verdict(on: "d-1", timeout: .seconds(30)) }
        try await Task.sleep(for: .milliseconds(50))
        board.fail(AMQPError(.connectionLost, "gone"))
        let result = await withTimeoutResult { try await waiting.value }
        XCTAssertEqual((result as? AMQPError)?.code, .connectionLost, "\(result)")
        let later = await withTimeoutResult { try await board.waitUntilFreed("p", timeout: .seconds(30)) }
        XCTAssertEqual((later as? AMQPError)?.code, .connectionLost, "\(later)")
    }

    /// The error a body ends with within 5 s (or the timeout's).
    private func withTimeoutResult<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async -> any Error {
        do {
            let value = try await withTimeout(5, "the wait to end", body)
            return UnexpectedValue(description: "returned \(value)")
        } catch {
            return error
        }
    }

    private struct UnexpectedValue: Error, CustomStringConvertible {
        let description: String
    }
}

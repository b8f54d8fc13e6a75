import RabbitMQTestSupport
import XCTest

@testable import PaymentService

/// Registrations, one at a time or a stream entry's worth, and the payments held for them.
final class ClientRegistryTests: XCTestCase {
    func testABatchRegistersEveryClientOnceAndWakesTheirHeldPayments() async throws {
        let registry = ClientRegistry()
        XCTAssertTrue(registry.register("old"))
        let held = Task { await registry.waitForRegistration(of: "new-2", timeout: .seconds(10)) }
        try await Task.sleep(for: .milliseconds(50))
        XCTAssertEqual(registry.waitingCount, 1)
        XCTAssertEqual(registry.register(contentsOf: ["old", "new-1", "new-2", "new-1"]), 2)
        let result = try await withTimeout(5, "the held payment to wake") { await held.value }
        XCTAssertEqual(result, .registered)
        XCTAssertEqual(registry.count, 3)
        XCTAssertEqual(registry.waitingCount, 0)
        XCTAssertFalse(registry.register("new-1"))
        XCTAssertTrue(registry.contains("new-2"))
        XCTAssertFalse(registry.contains("never"))
    }

    func testAHoldEndsAtItsTimeoutOrAtOnceWhenTooManyWait() async throws {
        let registry = ClientRegistry()
        let expired = await registry.waitForRegistration(of: "late", timeout: .milliseconds(50))
        XCTAssertEqual(expired, .expired)
        let refused = await registry.waitForRegistration(of: "late", timeout: .seconds(10), limit: 0)
        XCTAssertEqual(refused, .expired)
        registry.cancelWaits()
        let cancelled = await registry.waitForRegistration(of: "late", timeout: .seconds(10))
        XCTAssertEqual(cancelled, .cancelled)
    }

    func testACancelledHoldEndsAtOnceAndLeavesNothingBehind() async throws {
        let registry = ClientRegistry()
        let held = Task { await registry.waitForRegistration(of: "late", timeout: .seconds(30)) }
        try await withTimeout(5, "the hold to start") {
            while registry.waitingCount == 0 { try await Task.sleep(for: .milliseconds(10)) }
        }
        held.cancel()
        let result = try await withTimeout(1, "the cancelled hold to end") { await held.value }
        XCTAssertEqual(result, .cancelled)
        XCTAssertEqual(registry.waitingCount, 0)
        // A hold started by an already-cancelled task does not wait at all.
        let late = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return await registry.waitForRegistration(of: "late", timeout: .seconds(30))
        }
        let lateResult = try await withTimeout(1, "a hold in a cancelled task") { await late.value }
        XCTAssertEqual(lateResult, .cancelled)
        XCTAssertEqual(registry.waitingCount, 0)
    }
}

import Synchronization
import XCTest

@testable import PaymentService

final class PaymentLedgerTests: XCTestCase {
    /// Long enough for a claim that should wait to have returned if it wrongly did not.
    private let stillWaiting = Duration.milliseconds(200)

    func testAFreshPaymentIsClaimedAndHasNoOutcome() async {
        let ledger = PaymentLedger()
        XCTAssertNil(ledger.outcome(of: "p-1"))
        let claim = await ledger.claim("p-1")
        XCTAssertEqual(claim, .claimed)
        XCTAssertNil(ledger.outcome(of: "p-1"))
    }

    func testASettledPaymentIsSeenAsSettled() async {
        let ledger = PaymentLedger()
        _ = await ledger.claim("p-1")
        ledger.settle("p-1", as: .processed)
        XCTAssertEqual(ledger.outcome(of: "p-1"), .processed)
        let again = await ledger.claim("p-1")
        XCTAssertEqual(again, .settled(.processed))

        _ = await ledger.claim("p-2")
        ledger.settle("p-2", as: .parked)
        let parked = await ledger.claim("p-2")
        XCTAssertEqual(parked, .settled(.parked))
    }

    func testAReleasedPaymentCanBeClaimedAgain() async {
        let ledger = PaymentLedger()
        _ = await ledger.claim("p-1")
        ledger.release("p-1")
        XCTAssertNil(ledger.outcome(of: "p-1"))
        let again = await ledger.claim("p-1")
        XCTAssertEqual(again, .claimed)
    }

    func testPaymentsAreIndependent() async {
        let ledger = PaymentLedger()
        _ = await ledger.claim("p-1")
        // p-1 is in flight; p-2 is not held up by it.
        let other = try? await withTimeout(5, "an unrelated claim") { await ledger.claim("p-2") }
        XCTAssertEqual(other, .claimed)
    }

    func testASecondClaimWaitsUntilTheFirstSettlesThenSeesSettled() async throws {
        let ledger = PaymentLedger()
        let first = await ledger.claim("p-1")
        XCTAssertEqual(first, .claimed)

        let second = ClaimProbe(ledger: ledger, paymentID: "p-1")
        try await Task.sleep(for: stillWaiting)
        XCTAssertNil(second.result, "the second claim returned while the first was in flight")

        ledger.settle("p-1", as: .processed)
        let result = try await second.wait(seconds: 5)
        XCTAssertEqual(result, .settled(.processed))
    }

    func testReleasingLetsTheWaiterClaim() async throws {
        let ledger = PaymentLedger()
        _ = await ledger.claim("p-1")
        let second = ClaimProbe(ledger: ledger, paymentID: "p-1")
        try await Task.sleep(for: stillWaiting)
        XCTAssertNil(second.result, "the second claim returned while the first was in flight")

        ledger.release("p-1")
        let result = try await second.wait(seconds: 5)
        XCTAssertEqual(result, .claimed)
        XCTAssertNil(ledger.outcome(of: "p-1"))
    }

    func testAfterAReleaseOnlyOneOfSeveralWaitersClaims() async throws {
        let ledger = PaymentLedger()
        _ = await ledger.claim("p-1")
        let waiters = (0..<3).map { _ in ClaimProbe(ledger: ledger, paymentID: "p-1") }
        try await Task.sleep(for: stillWaiting)
        XCTAssertTrue(waiters.allSatisfy { $0.result == nil })

        ledger.release("p-1")
        // Exactly one waiter gets the payment; the two others wait again, behind it.
        let claimer = try await withTimeout(5, "one waiter to claim") {
            while true {
                if let index = waiters.firstIndex(where: { $0.result == .claimed }) { return index }
                try await Task.sleep(for: .milliseconds(10))
            }
        }
        try await Task.sleep(for: stillWaiting)
        XCTAssertEqual(waiters.filter { $0.result != nil }.count, 1, "only the claimer has returned")

        ledger.settle("p-1", as: .processed)
        for (index, waiter) in waiters.enumerated() where index != claimer {
            let result = try await waiter.wait(seconds: 5)
            XCTAssertEqual(result, .settled(.processed))
        }
    }

    func testConcurrentCopiesProduceExactlyOneClaim() async throws {
        let ledger = PaymentLedger()
        // 50 copies of one payment race; each one that claims settles, so exactly one should ever claim.
        let claims = try await withTimeout(10, "50 concurrent claims") {
            await withTaskGroup(of: PaymentLedger.Claim.self) { group in
                for _ in 0..<50 {
                    group.addTask {
                        let claim = await ledger.claim("p-1")
                        if claim == .claimed {
                            try? await Task.sleep(for: .milliseconds(5))
                            ledger.settle("p-1", as: .processed)
                        }
                        return claim
                    }
                }
                var all: [PaymentLedger.Claim] = []
                for await claim in group { all.append(claim) }
                return all
            }
        }
        XCTAssertEqual(claims.count, 50)
        XCTAssertEqual(claims.filter { $0 == .claimed }.count, 1)
        XCTAssertEqual(claims.filter { $0 == .settled(.processed) }.count, 49)
    }
}

/// A claim running in its own task, whose result can be looked at before it returns.
private final class ClaimProbe: Sendable {
    private let slot: Slot
    private let task: Task<PaymentLedger.Claim, Never>

    init(ledger: PaymentLedger, paymentID: String) {
        let slot = Slot()
        self.slot = slot
        task = Task {
            let claim = await ledger.claim(paymentID)
            slot.value.withLock { $0 = claim }
            return claim
        }
    }

    /// The claim's result, or nil while it still waits.
    var result: PaymentLedger.Claim? {
        slot.value.withLock { $0 }
    }

    /// Waits for the claim, at most `seconds`.
    func wait(seconds: Double) async throws -> PaymentLedger.Claim {
        let task = self.task
        return try await withTimeout(seconds, "the waiting claim") { await task.value }
    }

    private final class Slot: Sendable {
        let value = Mutex<PaymentLedger.Claim?>(nil)
    }
}

import XCTest

@testable import PaymentService

/// The rules that make the first claim of a payment win on every instance alike.
final class ClaimArbiterTests: XCTestCase {
    private func arbiter() -> ClaimArbiter {
        ClaimArbiter(leaseMilliseconds: 10_000, windowMilliseconds: 60_000)
    }

    func testTheFirstClaimWinsAndLaterOnesWaitForIt() {
        var arbiter = arbiter()
        XCTAssertEqual(
            arbiter.apply(.claim(paymentID: "p", claimID: "a-1", at: 1_000)),
            .verdict(claimID: "a-1", .won(replacing: nil)))
        XCTAssertEqual(
            arbiter.apply(.claim(paymentID: "p", claimID: "b-1", at: 1_005)),
            .verdict(claimID: "b-1", .heldBy(.init(claimID: "a-1", at: 1_000))))
        XCTAssertEqual(
            arbiter.apply(.claim(paymentID: "q", claimID: "b-2", at: 1_006)),
            .verdict(claimID: "b-2", .won(replacing: nil)), "another payment is independent")
    }

    func testEveryInstanceReachesTheSameVerdicts() {
        let records: [ClaimRecord] = [
            .claim(paymentID: "p", claimID: "b-1", at: 2_000),
            .claim(paymentID: "p", claimID: "a-1", at: 1_000),
            .settle(paymentID: "p", claimID: "b-1", outcome: .processed, at: 2_100),
            .claim(paymentID: "p", claimID: "c-1", at: 2_200),
        ]
        var first = arbiter()
        var second = arbiter()
        XCTAssertEqual(records.map { first.apply($0) }, records.map { second.apply($0) })
        var third = arbiter()
        let verdicts = records.map { third.apply($0) }
        // Stream order decides, not the writers' clocks: b-1 is first in the stream.
        XCTAssertEqual(verdicts[0], .verdict(claimID: "b-1", .won(replacing: nil)))
        XCTAssertEqual(verdicts[1], .verdict(claimID: "a-1", .heldBy(.init(claimID: "b-1", at: 2_000))))
        XCTAssertEqual(verdicts[3], .verdict(claimID: "c-1", .settled(.processed)))
    }

    func testASettledPaymentMakesLaterClaimsDuplicatesInsideTheWindowOnly() {
        var arbiter = arbiter()
        _ = arbiter.apply(.claim(paymentID: "p", claimID: "a-1", at: 0))
        XCTAssertEqual(
            arbiter.apply(.settle(paymentID: "p", claimID: "a-1", outcome: .parked, at: 100)), .freed(paymentID: "p"))
        XCTAssertEqual(
            arbiter.apply(.claim(paymentID: "p", claimID: "b-1", at: 60_100)), .verdict(claimID: "b-1", .settled(.parked)))
        XCTAssertEqual(
            arbiter.apply(.claim(paymentID: "p", claimID: "b-2", at: 60_101)),
            .verdict(claimID: "b-2", .won(replacing: nil)), "a copy after the window is a new payment")
        XCTAssertEqual(arbiter.outcome(of: "p", now: 60_100), .parked)
        XCTAssertNil(arbiter.outcome(of: "p", now: 60_101))
    }

    func testAReleasedClaimLetsTheNextClaimWin() {
        var arbiter = arbiter()
        _ = arbiter.apply(.claim(paymentID: "p", claimID: "a-1", at: 0))
        XCTAssertEqual(arbiter.apply(.release(paymentID: "p", claimID: "x-9")), .none, "not the holder's release")
        XCTAssertEqual(arbiter.holder(of: "p"), .init(claimID: "a-1", at: 0))
        XCTAssertEqual(arbiter.apply(.release(paymentID: "p", claimID: "a-1")), .freed(paymentID: "p"))
        XCTAssertEqual(
            arbiter.apply(.claim(paymentID: "p", claimID: "b-1", at: 10)), .verdict(claimID: "b-1", .won(replacing: nil)))
    }

    func testAnExpiredClaimIsTakenOverAndNamed() {
        var arbiter = arbiter()
        _ = arbiter.apply(.claim(paymentID: "p", claimID: "a-1", at: 0))
        XCTAssertEqual(
            arbiter.apply(.claim(paymentID: "p", claimID: "b-1", at: 9_999)),
            .verdict(claimID: "b-1", .heldBy(.init(claimID: "a-1", at: 0))))
        XCTAssertEqual(
            arbiter.apply(.claim(paymentID: "p", claimID: "b-2", at: 10_000)),
            .verdict(claimID: "b-2", .won(replacing: .init(claimID: "a-1", at: 0))))
        XCTAssertEqual(arbiter.holder(of: "p"), .init(claimID: "b-2", at: 10_000, lineStart: 0))
    }

    func testATakeoverOfATakeoverLooksBackToTheFirstExpiredClaim() {
        var arbiter = arbiter()
        _ = arbiter.apply(.claim(paymentID: "p", claimID: "a-1", at: 1_000))
        // a-1's holder died (perhaps after publishing the outcome); b-1 takes over and dies too.
        XCTAssertEqual(
            arbiter.apply(.claim(paymentID: "p", claimID: "b-1", at: 12_000)),
            .verdict(claimID: "b-1", .won(replacing: .init(claimID: "a-1", at: 1_000))))
        guard case .verdict(_, .won(let replaced)) = arbiter.apply(.claim(paymentID: "p", claimID: "c-1", at: 23_000))
        else { return XCTFail("c-1 did not win") }
        XCTAssertEqual(replaced?.claimID, "b-1")
        XCTAssertEqual(replaced?.lineStart, 1_000, "c-1 must look for an outcome from a-1's claim on")

        // A release ends the line: the next winner took nothing over.
        _ = arbiter.apply(.release(paymentID: "p", claimID: "c-1"))
        XCTAssertEqual(
            arbiter.apply(.claim(paymentID: "p", claimID: "d-1", at: 24_000)),
            .verdict(claimID: "d-1", .won(replacing: nil)))
        let next = arbiter.apply(.claim(paymentID: "p", claimID: "e-1", at: 35_000))
        guard case .verdict(_, .won(let afterRelease)) = next else { return XCTFail("e-1 did not win: \(next)") }
        XCTAssertEqual(afterRelease?.lineStart, 24_000)
    }

    func testForgettingKeepsOnlyWhatCanStillDecideAVerdict() {
        var arbiter = arbiter()
        _ = arbiter.apply(.settle(paymentID: "old", claimID: "a-1", outcome: .processed, at: 0))
        _ = arbiter.apply(.settle(paymentID: "new", claimID: "a-2", outcome: .processed, at: 100_000))
        _ = arbiter.apply(.claim(paymentID: "live", claimID: "a-3", at: 125_000))
        _ = arbiter.apply(.claim(paymentID: "dead", claimID: "a-4", at: 10_000))
        // The window is 60 s and the lease 10 s, each with a minute of slack for clocks.
        arbiter.forget(asOf: 130_000)
        XCTAssertEqual(arbiter.count.settled, 1)
        XCTAssertEqual(arbiter.count.held, 1)
        XCTAssertNil(arbiter.outcome(of: "old", now: 130_000))
        XCTAssertEqual(arbiter.outcome(of: "new", now: 130_000), .processed)
        XCTAssertNotNil(arbiter.holder(of: "live"))
        XCTAssertNil(arbiter.holder(of: "dead"))
    }
}

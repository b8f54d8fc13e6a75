import XCTest

@testable import PaymentService

/// Every branch of ``PaymentDecision/decide(_:policy:hold:)``, from plain facts.
final class PaymentDecisionTests: XCTestCase {
    private let policy = RetryPolicy(step: .seconds(1), maxDelay: .seconds(10), maxAttempts: 3)
    private let hold = HoldPolicy(time: .seconds(5), maxHeld: 10)

    private func decide(_ facts: PaymentFacts, hold: HoldPolicy? = nil) -> PaymentDecision {
        PaymentDecision.decide(facts, policy: policy, hold: hold ?? self.hold)
    }

    func testASettledPaymentIsSkippedWhateverElseIsTrue() {
        for claim in [PaymentFacts.ClaimProgress.unclaimed, .won(replacedExpiredClaim: false)] {
            for known in [true, false] {
                let facts = PaymentFacts(
                    attempt: 9, clientID: "c", settled: .parked, clientKnown: known, claim: claim)
                XCTAssertEqual(decide(facts), .skipDuplicate(.parked), "\(claim), known \(known)")
            }
        }
        XCTAssertEqual(
            decide(PaymentFacts(attempt: 1, clientID: "c", settled: .processed, clientKnown: true)),
            .skipDuplicate(.processed))
    }

    func testAKnownClientsPaymentIsClaimedFirst() {
        XCTAssertEqual(decide(PaymentFacts(attempt: 1, clientID: "c", clientKnown: true)), .claim)
    }

    func testAWonClaimOfAKnownClientIsProcessed() {
        let facts = PaymentFacts(attempt: 2, clientID: "c", clientKnown: true, claim: .won(replacedExpiredClaim: false))
        XCTAssertEqual(decide(facts), .process)
    }

    func testAClaimHeldByAnotherIsWaitedForUntilItExpires() {
        let facts = PaymentFacts(
            attempt: 1, clientID: "c", clientKnown: true, claim: .heldByAnother(expiresIn: .seconds(4)))
        XCTAssertEqual(decide(facts), .waitForHolder(upTo: .seconds(4)))
    }

    func testAnExpiredHolderIsStillGivenAMomentBeforeClaimingAgain() {
        let facts = PaymentFacts(attempt: 1, clientID: "c", clientKnown: true, claim: .heldByAnother(expiresIn: .zero))
        XCTAssertEqual(decide(facts), .waitForHolder(upTo: .milliseconds(50)))
    }

    func testATakenOverClaimLooksForTheEarlierOutcomeBeforeActing() {
        let facts = PaymentFacts(attempt: 1, clientID: "c", clientKnown: true, claim: .won(replacedExpiredClaim: true))
        XCTAssertEqual(decide(facts), .lookForEarlierOutcome)
        var parking = facts
        parking.clientKnown = false
        parking.attempt = 4
        XCTAssertEqual(decide(parking), .lookForEarlierOutcome)
    }

    func testAnUnknownClientsPaymentIsHeldOnce() {
        let facts = PaymentFacts(attempt: 1, clientID: "c", clientKnown: false)
        XCTAssertEqual(decide(facts), .hold(upTo: .seconds(5)))
        var held = facts
        held.holdTried = true
        XCTAssertEqual(decide(held), .retry(nextAttempt: 2, delay: .seconds(1)))
    }

    func testWithHoldingOffAnUnknownClientsPaymentIsRetriedAtOnce() {
        let facts = PaymentFacts(attempt: 2, clientID: "c", clientKnown: false)
        XCTAssertEqual(decide(facts, hold: .off), .retry(nextAttempt: 3, delay: .seconds(2)))
    }

    func testRetriesNeedNoClaim() {
        let facts = PaymentFacts(attempt: 3, clientID: "c", clientKnown: false, holdTried: true)
        XCTAssertEqual(decide(facts), .retry(nextAttempt: 4, delay: .seconds(3)))
    }

    func testAfterTheLastRetryTheParkingIsClaimedFirst() {
        let facts = PaymentFacts(attempt: 4, clientID: "c", clientKnown: false, holdTried: true)
        XCTAssertEqual(decide(facts), .claim)
        var waiting = facts
        waiting.claim = .heldByAnother(expiresIn: .seconds(1))
        XCTAssertEqual(decide(waiting), .waitForHolder(upTo: .seconds(1)))
    }

    func testAWonClaimAfterTheLastRetryParksWithTheReason() {
        let facts = PaymentFacts(
            attempt: 4, clientID: "c-7", clientKnown: false, holdTried: true, claim: .won(replacedExpiredClaim: false))
        XCTAssertEqual(decide(facts), .park(reason: "client \"c-7\" was still unknown after 4 attempts"))
    }

    func testAClaimedPaymentIsNotHeldAgain() {
        // Claimed for parking, then the hold would only delay the outcome the claim was taken for.
        let facts = PaymentFacts(
            attempt: 4, clientID: "c", clientKnown: false, claim: .won(replacedExpiredClaim: false))
        XCTAssertEqual(decide(facts), .park(reason: "client \"c\" was still unknown after 4 attempts"))
    }

    func testOnlyOutcomesAndRetriesAreTerminal() {
        let terminal: [PaymentDecision] = [
            .skipDuplicate(.processed), .retry(nextAttempt: 2, delay: .seconds(1)), .process, .park(reason: "r"),
        ]
        let steps: [PaymentDecision] = [
            .hold(upTo: .seconds(1)), .claim, .waitForHolder(upTo: .seconds(1)), .lookForEarlierOutcome,
        ]
        XCTAssertTrue(terminal.allSatisfy(\.isTerminal))
        XCTAssertFalse(steps.contains { $0.isTerminal })
    }
}

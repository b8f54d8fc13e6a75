import XCTest

@testable import PaymentService

/// When a quorum queue's consumer is made anew: only past the limit, with nothing in hand, while not stopping.
final class StarvedConsumerPolicyTests: XCTestCase {
    private let policy = StarvedConsumerPolicy(idleLimit: .seconds(30))

    func testAConsumerIdlePastTheLimitWithNothingInHandIsReplaced() {
        XCTAssertTrue(policy.shouldReplace(idleFor: .seconds(30), inHand: 0, stopping: false))
        XCTAssertTrue(policy.shouldReplace(idleFor: .seconds(90), inHand: 0, stopping: false))
    }

    func testAConsumerIdleForLessThanTheLimitIsKept() {
        XCTAssertFalse(policy.shouldReplace(idleFor: .milliseconds(29_999), inHand: 0, stopping: false))
    }

    func testAConsumerWithADeliveryInHandIsKeptHoweverIdle() {
        XCTAssertFalse(policy.shouldReplace(idleFor: .seconds(300), inHand: 1, stopping: false))
    }

    func testNothingIsReplacedOnceTheServiceStops() {
        XCTAssertFalse(policy.shouldReplace(idleFor: .seconds(300), inHand: 0, stopping: true))
    }

    func testTheOffPolicyNeverReplaces() {
        XCTAssertFalse(StarvedConsumerPolicy.off.shouldReplace(idleFor: .seconds(3600), inHand: 0, stopping: false))
    }

    func testItLooksFourTimesPerLimit() {
        XCTAssertEqual(policy.checkInterval, .milliseconds(7500))
    }
}

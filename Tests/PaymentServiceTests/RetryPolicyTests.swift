import XCTest

@testable import PaymentService

final class RetryPolicyTests: XCTestCase {
    func testTheDefaultsAreTheReferenceSchedule() {
        let policy = RetryPolicy()
        XCTAssertEqual(policy.step, .seconds(1))
        XCTAssertEqual(policy.maxDelay, .seconds(10))
        XCTAssertEqual(policy.maxAttempts, 10)
    }

    func testTheDefaultScheduleRetriesAfter1To10SecondsThenParksAtAttempt11() {
        let policy = RetryPolicy()
        for attempt in 1...10 {
            XCTAssertEqual(
                policy.decide(attempt: attempt, clientID: "c-1"),
                .retry(nextAttempt: attempt + 1, delay: .seconds(attempt)), "attempt \(attempt)")
        }
        XCTAssertEqual(
            policy.decide(attempt: 11, clientID: "c-1"),
            .park(reason: "client \"c-1\" was still unknown after 11 attempts"))
        // The whole schedule is the reference's 55 s.
        XCTAssertEqual((1...10).map { policy.delay(forRetry: $0) }.reduce(.zero, +), .seconds(55))
    }

    func testLaterAttemptsStillPark() {
        let policy = RetryPolicy()
        guard case .park(let reason) = policy.decide(attempt: 12, clientID: "c-9") else {
            return XCTFail("attempt 12 should park")
        }
        XCTAssertEqual(reason, "client \"c-9\" was still unknown after 12 attempts")
    }

    func testDelaysAreCappedByTheMaximumDelay() {
        let policy = RetryPolicy(step: .seconds(1), maxDelay: .seconds(3), maxAttempts: 6)
        XCTAssertEqual((1...6).map { policy.delay(forRetry: $0) }, [1, 2, 3, 3, 3, 3].map { Duration.seconds($0) })
        XCTAssertEqual(policy.decide(attempt: 5, clientID: "c"), .retry(nextAttempt: 6, delay: .seconds(3)))
        XCTAssertEqual(policy.decide(attempt: 6, clientID: "c"), .retry(nextAttempt: 7, delay: .seconds(3)))
        XCTAssertEqual(
            policy.decide(attempt: 7, clientID: "c"), .park(reason: "client \"c\" was still unknown after 7 attempts"))
    }

    func testMillisecondStepsAddUp() {
        let policy = RetryPolicy(step: .milliseconds(200), maxDelay: .seconds(10), maxAttempts: 2)
        XCTAssertEqual(policy.decide(attempt: 1, clientID: "c"), .retry(nextAttempt: 2, delay: .milliseconds(200)))
        XCTAssertEqual(policy.decide(attempt: 2, clientID: "c"), .retry(nextAttempt: 3, delay: .milliseconds(400)))
        XCTAssertEqual(
            policy.decide(attempt: 3, clientID: "c"), .park(reason: "client \"c\" was still unknown after 3 attempts"))
    }

    func testTheDefaultDelayLevelsAreOneToTenSeconds() {
        XCTAssertEqual(RetryPolicy().delayLevels, (1...10).map { Duration.seconds($0) })
    }

    func testDelayLevelsAreDistinctAndCapped() {
        let capped = RetryPolicy(step: .seconds(1), maxDelay: .seconds(3), maxAttempts: 10)
        XCTAssertEqual(capped.delayLevels, [1, 2, 3].map { Duration.seconds($0) })

        // A cap that is not a multiple of the step is a level of its own.
        let uneven = RetryPolicy(step: .milliseconds(300), maxDelay: .seconds(1), maxAttempts: 10)
        XCTAssertEqual(uneven.delayLevels, [300, 600, 900, 1000].map { Duration.milliseconds($0) })

        // Fewer attempts than it takes to reach the cap: one level per attempt.
        let short = RetryPolicy(step: .milliseconds(200), maxDelay: .seconds(10), maxAttempts: 2)
        XCTAssertEqual(short.delayLevels, [.milliseconds(200), .milliseconds(400)])

        // A cap equal to the step: a single level.
        let flat = RetryPolicy(step: .seconds(2), maxDelay: .seconds(2), maxAttempts: 5)
        XCTAssertEqual(flat.delayLevels, [.seconds(2)])

        for policy in [RetryPolicy(), capped, uneven, short, flat] {
            let levels = policy.delayLevels
            XCTAssertEqual(levels, levels.sorted(), "levels ascend")
            XCTAssertEqual(Set(levels).count, levels.count, "levels are distinct")
            XCTAssertTrue(levels.allSatisfy { $0 <= policy.maxDelay }, "levels are capped")
            // Every delay the policy can ask for has a level (so has a TTL queue).
            for retry in 1...policy.maxAttempts {
                XCTAssertTrue(levels.contains(policy.delay(forRetry: retry)), "retry \(retry) of \(policy)")
            }
        }
    }

    func testZeroAttemptsParksAtOnceAndNeedsNoLevels() {
        let policy = RetryPolicy(maxAttempts: 0)
        XCTAssertNoThrow(try policy.validate())
        XCTAssertEqual(
            policy.decide(attempt: 1, clientID: "c-1"),
            .park(reason: "client \"c-1\" was still unknown after 1 attempt"))
        XCTAssertEqual(policy.delayLevels, [])
    }

    func testValidateAcceptsSensiblePolicies() {
        XCTAssertNoThrow(try RetryPolicy().validate())
        XCTAssertNoThrow(
            try RetryPolicy(step: .milliseconds(200), maxDelay: .milliseconds(200), maxAttempts: 1).validate())
    }

    func testValidateRefusesAZeroOrNegativeStep() {
        assertInvalid(RetryPolicy(step: .zero), mentions: "the retry step must be positive")
        assertInvalid(
            RetryPolicy(step: .seconds(-1), maxDelay: .seconds(10)), mentions: "the retry step must be positive")
    }

    func testValidateRefusesACapShorterThanTheStep() {
        assertInvalid(
            RetryPolicy(step: .seconds(2), maxDelay: .seconds(1)), mentions: "must be at least the retry step")
    }

    func testValidateRefusesNegativeAttempts() {
        assertInvalid(RetryPolicy(maxAttempts: -1), mentions: "the number of attempts cannot be negative (-1)")
    }

    private func assertInvalid(
        _ policy: RetryPolicy, mentions text: String, file: StaticString = #filePath, line: UInt = #line
    ) {
        do {
            try policy.validate()
            XCTFail("\(policy) should be invalid", file: file, line: line)
        } catch {
            XCTAssertTrue(
                error.message.contains(text), "\"\(error.message)\" should mention \"\(text)\"", file: file, line: line)
            XCTAssertEqual(error.description, error.message, file: file, line: line)
        }
    }
}

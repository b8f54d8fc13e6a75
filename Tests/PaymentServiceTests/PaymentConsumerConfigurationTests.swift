import RabbitMQ
import XCTest

@testable import PaymentService

/// The settings the consumer refuses before it connects.
final class PaymentConsumerConfigurationTests: XCTestCase {
    private func configuration() throws -> PaymentConsumerConfiguration {
        PaymentConsumerConfiguration(connection: try AMQPConfiguration(url: "amqp://127.0.0.1"))
    }

    func testTheDefaultsAreValidAndCoverTheRetrySchedule() throws {
        let configuration = try configuration()
        XCTAssertNoThrow(try configuration.validate())
        XCTAssertEqual(configuration.dedupeWindow, .seconds(3600))
        XCTAssertEqual(configuration.claimLease, .seconds(10))
        // The whole default retry schedule (55 s) and RabbitMQ's 30-minute consumer timeout fit in the window.
        let schedule = (1...configuration.policy.maxAttempts).map { configuration.policy.delay(forRetry: $0) }
            .reduce(.zero, +)
        XCTAssertGreaterThan(configuration.dedupeWindow, schedule + .seconds(30 * 60))
    }

    func testTheDedupeWindowMustBePositiveAndWithinTheStreamsRetention() throws {
        var configuration = try configuration()
        for window in [Duration.zero, .seconds(-1), .seconds(7 * 24 * 3600 + 1)] {
            configuration.dedupeWindow = window
            XCTAssertThrowsError(try configuration.validate(), "\(window)") { error in
                XCTAssertTrue("\(error)".contains("dedupe window"), "\(error)")
            }
        }
        configuration.dedupeWindow = .seconds(7 * 24 * 3600)
        XCTAssertNoThrow(try configuration.validate())
    }

    func testTheClaimLeaseMustOutlastItsSafetyMargin() throws {
        var configuration = try configuration()
        configuration.claimLease = .seconds(4)
        XCTAssertThrowsError(try configuration.validate()) { error in
            XCTAssertTrue("\(error)".contains("claim lease"), "\(error)")
        }
        configuration.claimLease = .seconds(5)
        XCTAssertNoThrow(try configuration.validate())
    }

    func testHeldPaymentsMustLeaveRoomInThePrefetch() throws {
        var configuration = try configuration()
        configuration.prefetch = 10
        configuration.hold = HoldPolicy(time: .seconds(1), maxHeld: 10)
        XCTAssertThrowsError(try configuration.validate())
        configuration.hold = .off
        XCTAssertNoThrow(try configuration.validate())
    }

    func testTheShutdownGraceMustBePositiveAndTheStarvedConsumerLimitNotNegative() throws {
        var configuration = try configuration()
        XCTAssertEqual(configuration.shutdownGrace, .seconds(10))
        XCTAssertEqual(configuration.starvedConsumers.idleLimit, .seconds(30))
        configuration.shutdownGrace = .zero
        XCTAssertThrowsError(try configuration.validate()) { error in
            XCTAssertTrue("\(error)".contains("shutdown grace"), "\(error)")
        }
        configuration.shutdownGrace = .seconds(1)
        configuration.starvedConsumers = StarvedConsumerPolicy(idleLimit: .seconds(-1))
        XCTAssertThrowsError(try configuration.validate()) { error in
            XCTAssertTrue("\(error)".contains("starved-consumer limit"), "\(error)")
        }
        configuration.starvedConsumers = .off
        XCTAssertNoThrow(try configuration.validate())
    }
}

import Foundation
import PaymentService
import RabbitMQ
import XCTest

/// (g) and (h): the TTL delay mode end to end, and how `auto` and `plugin` behave on this broker.
final class DelayModeTests: PaymentScenarioTestCase {
    private var delayQueues: [String] { topology.testDelayQueues }

    /// Runs scenario (a) on a running consumer: a payment before its client is processed on a retry.
    private func assertEarlyPaymentIsProcessed(
        by consumer: RunningProgram, outcomes: OutcomeObserver, id: String, file: StaticString = #filePath,
        line: UInt = #line
    ) async throws {
        try await produce(["payment", "client-\(id)", "--payment-id", id], printing: [id], file: file, line: line)
        try await consumer.waitForLog("payment retry scheduled", "payment.id=\(id) ")
        try await produce(["client", "client-\(id)"], printing: ["client-\(id)"], file: file, line: line)
        let observed = try await outcomes.next(seconds: 15)
        XCTAssertEqual(observed.outcome.paymentId, id, file: file, line: line)
        XCTAssertEqual(observed.outcome.outcome, .processed, file: file, line: line)
        XCTAssertGreaterThan(observed.outcome.attempts, 1, file: file, line: line)
        let later = try await outcomes.drain(for: gracePeriod)
        XCTAssertEqual(later.map(\.description), [], file: file, line: line)
    }

    /// (g) `--delay-mode ttl`: retries go through one TTL queue per delay level.
    func testTTLModeRetriesThroughItsDelayQueues() async throws {
        let consumer = try await startConsumer(["--delay-mode", "ttl"])
        let outcomes = try await observeOutcomes()
        XCTAssertEqual(consumer.logLines(containing: "delay mode: ttl", "as asked"), 1)

        let broker = try broker
        XCTAssertEqual(delayQueues.count, 10)
        XCTAssertEqual(delayQueues.first, "\(prefix)payment-retry-200ms")
        XCTAssertEqual(delayQueues.last, "\(prefix)payment-retry-2000ms")
        for queue in delayQueues {
            let exists = try await broker.queueInfo(queue) != nil
            XCTAssertTrue(exists, "\(queue) was declared")
        }
        // Only the policy's levels, and no delayed-message exchange.
        let beyond = try await broker.queueInfo(topology.delayQueue(for: .milliseconds(2200)))
        XCTAssertNil(beyond)
        let delayedExchange = try await broker.exchangeExists(topology.delayedExchange)
        XCTAssertFalse(delayedExchange)

        try await assertEarlyPaymentIsProcessed(by: consumer, outcomes: outcomes, id: "pay-g")
        // The retry went through the first level's queue: the consumer logged a 200 ms delay for it.
        XCTAssertGreaterThanOrEqual(consumer.logLines(containing: "payment retry scheduled", "delay_ms=200 "), 1)
        try await assertNothingLeft()
    }

    /// (h) `--delay-mode auto` says which mechanism it chose; on a broker without the plugin that is TTL.
    func testAutoModeLogsItsChoice() async throws {
        let hasPlugin = try await PaymentTestBroker.hasDelayedMessagePlugin()
        let consumer = try await startConsumer(["--delay-mode", "auto"])
        let broker = try broker
        if hasPlugin {
            XCTAssertEqual(consumer.logLines(containing: "delay mode: plugin"), 1)
            let exchange = try await broker.exchangeExists(topology.delayedExchange)
            XCTAssertTrue(exchange)
        } else {
            XCTAssertEqual(
                consumer.logLines(containing: "delay mode: ttl", "the broker lacks the delayed-message plugin"), 1,
                consumer.stderrTail)
            XCTAssertEqual(consumer.logLines(containing: "delay mode: plugin"), 0)
            for queue in delayQueues {
                let exists = try await broker.queueInfo(queue) != nil
                XCTAssertTrue(exists, "\(queue) was declared")
            }
        }
    }

    /// (h) `--delay-mode plugin` on a broker without the plugin stops at once, naming the plugin.
    func testPluginModeFailsWithoutThePlugin() async throws {
        guard try await !PaymentTestBroker.hasDelayedMessagePlugin() else {
            throw XCTSkip("the delayed-message plugin is enabled on this broker: plugin mode cannot fail")
        }
        let consumer = try await startConsumer(["--delay-mode", "plugin"], waitForTopology: false)
        let result = try await consumer.waitForExit(seconds: 15)
        XCTAssertTrue(result.exited)
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("rabbitmq_delayed_message_exchange"), result.stderrTail)
        // It failed before declaring anything.
        let queue = try await broker.queueInfo(topology.paymentsQueue)
        XCTAssertNil(queue)
    }

    /// (h) Scenario (a) in plugin mode, where the broker has the plugin.
    func testPluginModeProcessesAnEarlyPayment() async throws {
        guard try await PaymentTestBroker.hasDelayedMessagePlugin() else {
            throw XCTSkip(
                "the delayed-message plugin (rabbitmq_delayed_message_exchange) is not enabled on this broker")
        }
        let consumer = try await startConsumer(["--delay-mode", "plugin"])
        let outcomes = try await observeOutcomes()
        XCTAssertEqual(consumer.logLines(containing: "delay mode: plugin"), 1)
        try await assertEarlyPaymentIsProcessed(by: consumer, outcomes: outcomes, id: "pay-h")
        try await assertNothingLeft()
    }
}

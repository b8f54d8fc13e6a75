import Foundation
import PaymentService
import RabbitMQ
import RabbitMQTestSupport
import XCTest

/// SIGTERM while the broker is unreachable: the consumer's connections are recovering, each attempt held until its
/// connect timeout, and the consumer still stops at once, with status 0: its requests on the way out (cancelling
/// consumers, closing) fail fast during a recovery instead of waiting for an attempt to end.
final class ShutdownWhileRecoveringTests: PaymentScenarioTestCase {
    func testSIGTERMWhileTheBrokerIsUnreachableStopsTheConsumerPromptly() async throws {
        let proxy = try LoopbackProxy(targetPort: try AMQPConfiguration(url: PaymentTestBroker.url).port)
        defer { proxy.close() }
        // Each recovery attempt waits at most 2 s for a broker that does not answer.
        let consumer = try startConsumer(exactly: [
            "--url", "amqp://guest:guest@127.0.0.1:\(proxy.port)/?connection_timeout=2000", "--name-prefix", prefix,
            "--retry-step", "200ms", "--summary-interval", "0s", "--hold-time", "0s",
        ])
        try await consumer.waitForLog("payment consumer running", seconds: 20)

        // Both connections cut, and every new attempt held silent until its connect timeout.
        proxy.pause()
        proxy.dropConnections()
        try await consumer.waitForLog("connection recovery could not reach an endpoint", seconds: 15)

        let stopped = ContinuousClock.now
        consumer.terminate()
        let result = try await consumer.waitForExit(seconds: 15)
        let took = ContinuousClock.now - stopped
        XCTAssertTrue(result.exited, "killed by signal \(result.status)")
        XCTAssertEqual(result.status, 0, result.stderrTail)
        // Well under one connect attempt (2 s) per request the shutdown makes.
        XCTAssertLessThan(
            took, .seconds(4), "the consumer took \(took) to stop; its log ends with:\n\(result.stderrTail)")
        print("shutdown while recovering: exited \(result.status) after \(took)")
    }
}

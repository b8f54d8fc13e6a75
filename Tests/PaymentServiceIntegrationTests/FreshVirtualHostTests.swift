import Foundation
import PaymentService
import RabbitMQ
import XCTest

/// Every delay mode on a virtual host made for the test and deleted after it, with the service's real names (no
/// prefix): what a first deployment on a fresh broker meets (empty streams, nothing declared yet). The virtual host's
/// name holds a `/`, so the consumer's and producer's `--url` carry a percent-encoded virtual host.
final class FreshVirtualHostTests: PaymentScenarioTestCase {
    /// The test's virtual host, once created; tearDown deletes it.
    private var virtualHost: String?
    /// The broker URL of the test's virtual host.
    private var virtualHostURL = ""

    override func setUp() async throws {
        try await super.setUp()
        let name = "ptest-vhost/\(UUID().uuidString.prefix(8).lowercased())"
        virtualHost = name
        _ = try PaymentTestBroker.rabbitmqctl("add_vhost", name)
        _ = try PaymentTestBroker.rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        let vhosts = try PaymentTestBroker.rabbitmqctl("list_vhosts", "name", "--no-table-headers", "-q")
        _ = try XCTUnwrap(
            vhosts.split(whereSeparator: \.isNewline).first { $0 == name },
            "rabbitmqctl did not add virtual host \(name); it lists:\n\(vhosts)")
        virtualHostURL = try Self.url(ofVirtualHost: name)
        // From here on the administrative connection is on the test's virtual host, and the names are the real ones;
        // with an empty prefix the base class deletes no topology: deleting the virtual host does.
        let vhostAdmin = try await PaymentTestBroker.connect(name: "payment-tests-admin", url: virtualHostURL)
        _ = try await vhostAdmin.openChannel()
        try? await admin?.close()
        admin = vhostAdmin
        prefix = ""
    }

    override func tearDown() async throws {
        defer {
            if let virtualHost {
                // Closes whatever connection is still on it.
                _ = try? PaymentTestBroker.rabbitmqctl("delete_vhost", virtualHost)
                let left =
                    (try? PaymentTestBroker.rabbitmqctl("list_vhosts", "name", "--no-table-headers", "-q")) ?? ""
                XCTAssertFalse(
                    left.split(whereSeparator: \.isNewline).contains(Substring(virtualHost)),
                    "virtual host \(virtualHost) was not deleted")
                self.virtualHost = nil
            }
        }
        try await super.tearDown()
    }

    /// `--delay-mode auto` on a fresh virtual host: without the plugin it logs `delay mode: ttl` and declares its
    /// delay queues (with it, `delay mode: plugin`); either way an early payment is processed on a retry, once, and
    /// nothing is left.
    func testAutoModeProcessesAnEarlyPaymentOnAFreshVirtualHost() async throws {
        let hasPlugin = try await PaymentTestBroker.hasDelayedMessagePlugin()
        let consumer = try await startConsumer(mode: "auto")
        let outcomes = try await observeOutcomes(of: topology.eventsExchange, at: virtualHostURL)
        if hasPlugin {
            XCTAssertEqual(consumer.logLines(containing: "delay mode: plugin"), 1, consumer.stderrTail)
        } else {
            XCTAssertEqual(consumer.logLines(containing: "delay mode: ttl"), 1, consumer.stderrTail)
            try await assertDelayQueuesExist(true)
        }
        try await assertEarlyPaymentIsProcessedOnce(by: consumer, outcomes: outcomes, id: "fresh-auto")
        await stop(consumer)
        try await assertNothingLeft()
    }

    /// `--delay-mode ttl` on a fresh virtual host: `delay mode: ttl`, the delay queues and no `payment-delayed`
    /// exchange; an early payment is processed on a retry, once, and nothing is left.
    func testTTLModeProcessesAnEarlyPaymentOnAFreshVirtualHost() async throws {
        let consumer = try await startConsumer(mode: "ttl")
        let outcomes = try await observeOutcomes(of: topology.eventsExchange, at: virtualHostURL)
        XCTAssertEqual(consumer.logLines(containing: "delay mode: ttl"), 1, consumer.stderrTail)
        try await assertDelayQueuesExist(true)
        let delayedExchange = try await broker.exchangeExists(topology.delayedExchange)
        XCTAssertFalse(delayedExchange, "\(topology.delayedExchange) exists in ttl mode")
        try await assertEarlyPaymentIsProcessedOnce(by: consumer, outcomes: outcomes, id: "fresh-ttl")
        await stop(consumer)
        try await assertNothingLeft()
    }

    /// `--delay-mode plugin-stand-in` on a fresh virtual host: `payment-delayed` is a `direct` exchange with the
    /// plugin's `x-delayed-type` argument and its binding to `payment-reprocessor`, no TTL queue is declared, and an
    /// early payment is processed on a retry, once, after its retry went through `payment-delayed` with the headers
    /// `x-delay` and `payment-attempt`. The stand-in does not delay, so retries loop at once: `--max-attempts` is
    /// raised to leave the registration time to arrive.
    func testPluginStandInRetriesThroughPaymentDelayedOnAFreshVirtualHost() async throws {
        let consumer = try await startConsumer(mode: "plugin-stand-in", ["--max-attempts", "10000"])
        let outcomes = try await observeOutcomes(of: topology.eventsExchange, at: virtualHostURL)
        XCTAssertEqual(consumer.logLines(containing: "delay mode: plugin-stand-in"), 1, consumer.stderrTail)
        try await assertDelayQueuesExist(false)
        let tap = try await tapDelayedExchange()

        try await assertEarlyPaymentIsProcessedOnce(by: consumer, outcomes: outcomes, id: "fresh-stand-in")
        let retry = try await broker.openChannel().get(queue: tap, noAck: true)
        let headers = try XCTUnwrap(retry?.properties.headers, "no retry went through \(topology.delayedExchange)")
        XCTAssertEqual(headers[PaymentTopology.attemptHeader]?.intValue, 2, "the first retry's attempt header")
        XCTAssertNotNil(headers[AMQPDelayedExchange.delayHeader]?.intValue, "the first retry's x-delay header")
        await stop(consumer)
        try await assertNothingLeft()
    }

    /// `--delay-mode plugin-stand-in --max-attempts 2`: a payment whose client never registers is retried through
    /// `payment-delayed` twice, then parked on its third attempt: a `payment.parked` outcome, and the payment in the
    /// parking lot with headers `parking-reason`, `parking-source-queue` (`payment-reprocessor`) and
    /// `payment-attempt`.
    func testPluginStandInParksAPaymentAfterItsLastAttemptOnAFreshVirtualHost() async throws {
        let consumer = try await startConsumer(mode: "plugin-stand-in", ["--max-attempts", "2"])
        let outcomes = try await observeOutcomes(of: topology.eventsExchange, at: virtualHostURL)
        let id = "fresh-never"
        try await produceOnVirtualHost(["payment", "nobody", "--payment-id", id], printing: [id])
        let parked = try await outcomes.next(seconds: 15)
        XCTAssertEqual(parked.outcome.paymentId, id)
        XCTAssertEqual(parked.routingKey, PaymentOutcome.Kind.parked.routingKey)
        XCTAssertEqual(parked.outcome.attempts, 3, "parked on the attempt after the last retry")
        XCTAssertNotNil(parked.outcome.reason)
        let later = try await outcomes.drain(for: gracePeriod)
        XCTAssertEqual(later.map(\.description), [])
        XCTAssertEqual(consumer.logLines(containing: "payment retry scheduled", "payment.id=\(id) "), 2)
        await stop(consumer)

        let broker = try broker
        let parkedCount = try await broker.messageCount(topology.parkingLot)
        XCTAssertEqual(parkedCount, 1, "messages in \(topology.parkingLot)")
        let message = try await broker.openChannel().get(queue: topology.parkingLot, noAck: true)
        let headers = try XCTUnwrap(message?.properties.headers, "the parked payment has no headers")
        XCTAssertEqual(message?.properties.messageID, id)
        XCTAssertFalse(headers[PaymentTopology.parkingReasonHeader]?.stringValue?.isEmpty ?? true, "\(headers)")
        XCTAssertEqual(headers[PaymentTopology.parkingSourceHeader]?.stringValue, topology.retriesQueue)
        XCTAssertEqual(headers[PaymentTopology.attemptHeader]?.intValue, 3)
        try await assertNothingLeft()
    }

    /// `--delay-mode plugin` on a fresh virtual host. Without the plugin the consumer exits by itself with a non-zero
    /// status (not killed by a signal: no crash) naming `rabbitmq_delayed_message_exchange`, before declaring its
    /// queues; with the plugin it behaves like `auto`.
    func testPluginModeOnAFreshVirtualHost() async throws {
        guard try await !PaymentTestBroker.hasDelayedMessagePlugin() else {
            let consumer = try await startConsumer(mode: "plugin")
            let outcomes = try await observeOutcomes(of: topology.eventsExchange, at: virtualHostURL)
            XCTAssertEqual(consumer.logLines(containing: "delay mode: plugin"), 1, consumer.stderrTail)
            try await assertEarlyPaymentIsProcessedOnce(by: consumer, outcomes: outcomes, id: "fresh-plugin")
            await stop(consumer)
            try await assertNothingLeft()
            return
        }
        let consumer = try startConsumer(exactly: consumerArguments(mode: "plugin"))
        let result = try await consumer.waitForExit(seconds: 30)
        XCTAssertTrue(result.exited, "killed by signal \(result.status); its log ends with:\n\(result.stderrTail)")
        XCTAssertNotEqual(result.status, 0, result.stderrTail)
        XCTAssertTrue(result.stderr.contains("rabbitmq_delayed_message_exchange"), result.stderrTail)
        XCTAssertFalse(result.stderr.contains("Fatal error"), result.stderrTail)
        let queue = try await broker.queueInfo(topology.paymentsQueue)
        XCTAssertNil(queue, "\(topology.paymentsQueue) was declared before the plugin check")
    }

    // MARK: - Helpers

    /// The URL of `virtualHost` on the test broker, its name percent-encoded (a `/` becomes `%2F`).
    private static func url(ofVirtualHost virtualHost: String) throws -> String {
        let unreserved = CharacterSet(
            charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~")
        let encoded = try XCTUnwrap(virtualHost.addingPercentEncoding(withAllowedCharacters: unreserved))
        var components = try XCTUnwrap(URLComponents(string: PaymentTestBroker.url), PaymentTestBroker.url)
        components.percentEncodedPath = "/" + encoded
        return try XCTUnwrap(components.string)
    }

    /// The consumer's arguments on the test's virtual host: no name prefix, hold off, 200 ms retry step.
    private func consumerArguments(mode: String, _ extra: [String] = []) -> [String] {
        [
            "--url", virtualHostURL, "--delay-mode", mode, "--retry-step", "200ms", "--summary-interval", "0s",
            "--hold-time", "0s",
        ] + extra
    }

    /// Starts a consumer on the test's virtual host and waits until it consumes.
    private func startConsumer(mode: String, _ extra: [String] = []) async throws -> RunningProgram {
        let consumer = try startConsumer(exactly: consumerArguments(mode: mode, extra))
        try await consumer.waitForLog("payment consumer running", seconds: 30)
        return consumer
    }

    /// Runs the producer on the test's virtual host and checks that it exited 0 after printing exactly `expectedIDs`.
    private func produceOnVirtualHost(
        _ arguments: [String], printing expectedIDs: [String], file: StaticString = #filePath, line: UInt = #line
    ) async throws {
        let result = try await RunningProgram.run("producer", arguments + ["--url", virtualHostURL], seconds: 30)
        XCTAssertEqual(result.status, 0, "producer \(arguments): \(result.stderrTail)", file: file, line: line)
        XCTAssertEqual(result.stdoutLines, expectedIDs, "producer \(arguments) printed", file: file, line: line)
    }

    /// A payment before its client (hold off): retried, then processed once its client registers, with attempts > 1
    /// and no second outcome.
    private func assertEarlyPaymentIsProcessedOnce(
        by consumer: RunningProgram, outcomes: OutcomeObserver, id: String, file: StaticString = #filePath,
        line: UInt = #line
    ) async throws {
        try await produceOnVirtualHost(["payment", "client-\(id)", "--payment-id", id], printing: [id])
        try await consumer.waitForLog("payment retry scheduled", "payment.id=\(id) ", seconds: 15)
        try await produceOnVirtualHost(["client", "client-\(id)"], printing: ["client-\(id)"])
        let observed = try await outcomes.next(seconds: 20)
        XCTAssertEqual(observed.outcome.paymentId, id, file: file, line: line)
        XCTAssertEqual(
            observed.routingKey, PaymentOutcome.Kind.processed.routingKey, "\(observed)", file: file, line: line)
        XCTAssertGreaterThan(observed.outcome.attempts, 1, file: file, line: line)
        let later = try await outcomes.drain(for: .seconds(2))
        XCTAssertEqual(later.map(\.description), [], "outcomes after the first", file: file, line: line)
    }

    /// Asserts that the TTL delay queues of the test's retry policy exist (or that none does).
    private func assertDelayQueuesExist(_ expected: Bool, file: StaticString = #filePath, line: UInt = #line)
        async throws
    {
        let broker = try broker
        for queue in topology.testDelayQueues {
            let exists = try await broker.queueInfo(queue) != nil
            XCTAssertEqual(exists, expected, "\(queue) exists", file: file, line: line)
        }
    }

    /// Checks `payment-delayed` as the stand-in declares it (`direct`, `x-delayed-type`, bound to
    /// `payment-reprocessor`) and binds a queue of the test to it with the same routing key, to catch a copy of
    /// every retry; returns that queue.
    private func tapDelayedExchange(file: StaticString = #filePath, line: UInt = #line) async throws -> String {
        let vhost = try XCTUnwrap(virtualHost)
        let exchange = topology.delayedExchange
        let exchanges = try PaymentTestBroker.rabbitmqctl(
            "list_exchanges", "-p", vhost, "name", "type", "arguments", "--no-table-headers", "-q")
        let declared = exchanges.split(whereSeparator: \.isNewline).first { $0.hasPrefix(exchange + "\t") }
        let columns = try XCTUnwrap(declared, "no \(exchange) in:\n\(exchanges)", file: file, line: line)
            .split(separator: "\t", omittingEmptySubsequences: false)
        XCTAssertEqual(
            columns.count > 1 ? String(columns[1]) : nil, "direct", "\(exchange)'s type", file: file, line: line)
        XCTAssertTrue(
            columns.last?.contains("x-delayed-type") ?? false, "\(exchange)'s arguments: \(columns)", file: file,
            line: line)

        let bindings = try PaymentTestBroker.rabbitmqctl(
            "list_bindings", "-p", vhost, "source_name", "destination_name", "routing_key", "--no-table-headers", "-q")
        let binding = bindings.split(whereSeparator: \.isNewline)
            .map { $0.split(separator: "\t", omittingEmptySubsequences: false) }
            .first { $0.count == 3 && $0[0] == exchange && $0[1] == topology.retriesQueue }
        let routingKey = try XCTUnwrap(
            binding.map { String($0[2]) }, "\(exchange) is not bound to \(topology.retriesQueue):\n\(bindings)",
            file: file, line: line)

        let channel = try await broker.openChannel()
        let tap = try await channel.declareQueue("ptest-tap-payment-delayed").name
        try await channel.bindQueue(tap, to: exchange, routingKey: routingKey)
        try await channel.close()
        return tap
    }
}

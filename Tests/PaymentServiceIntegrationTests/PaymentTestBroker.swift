import Foundation
import Logging
import PaymentService
import RabbitMQ
import RabbitMQTestSupport
import XCTest

/// How these tests reach the broker: `AMQP_URL` (default: the local broker), a unique name prefix per test, and
/// failing loudly (never skipping) when `CI` is set and the broker is missing.
enum PaymentTestBroker {
    static let url = ProcessInfo.processInfo.environment["AMQP_URL"] ?? "amqp://guest:guest@127.0.0.1:5672/"
    static let isCI = ProcessInfo.processInfo.environment["CI"] != nil

    static var logger: Logger {
        var logger = Logger(label: "payment-integration-tests")
        logger.logLevel =
            ProcessInfo.processInfo.environment["AMQP_TEST_LOG"].flatMap { Logger.Level(rawValue: $0) } ?? .critical
        return logger
    }

    /// Runs `rabbitmqctl` on the local broker; skips outside CI when it is not installed.
    static func rabbitmqctl(_ arguments: String...) throws -> String {
        if let output = try runRabbitmqctl(arguments) { return output }
        if isCI { throw QueueMissing(queue: "rabbitmqctl (not installed)") }
        throw XCTSkip("rabbitmqctl is not installed")
    }

    /// Connects to the test broker (or `url`); skips the test when it is unreachable outside CI, fails inside CI.
    static func connect(name: String, url: String = PaymentTestBroker.url) async throws -> AMQPConnection {
        var configuration = try AMQPConfiguration(url: url)
        configuration.connectionName = name
        do {
            return try await AMQPConnection.connect(configuration: configuration, logger: logger)
        } catch let error as AMQPError where [.connectionRefused, .hostNotFound, .connectTimeout].contains(error.code) {
            if isCI {
                throw BrokerUnreachable(url: url, underlying: error)
            }
            throw XCTSkip("no RabbitMQ broker at \(url) (set AMQP_URL, or start one): \(error)")
        }
    }

    /// A name prefix no other test run uses, so that every test has its own queues and exchanges.
    static func uniquePrefix() -> String {
        "ptest-\(UUID().uuidString.prefix(8).lowercased())-"
    }

    /// Whether the broker knows the `x-delayed-message` exchange type. A broker without it closes the connection,
    /// so the probe uses one of its own.
    static func hasDelayedMessagePlugin() async throws -> Bool {
        let probe = try await connect(name: "payment-tests-plugin-probe")
        let exchange = "ptest-probe-\(UUID().uuidString.prefix(8).lowercased())"
        do {
            let channel = try await probe.openChannel()
            _ = try await AMQPDelayedExchange.declare(exchange, on: channel, durable: false, autoDelete: true)
            try await channel.deleteExchange(exchange)
            try await probe.close()
            return true
        } catch let error as AMQPError where error.code == .delayedMessagePluginMissing {
            try? await probe.close()
            return false
        }
    }
}

/// The broker is missing while `CI` is set: a failure, not a skip.
struct BrokerUnreachable: Error, CustomStringConvertible {
    let url: String
    let underlying: AMQPError
    var description: String { "CI is set but no RabbitMQ broker answers at \(url): \(underlying)" }
}

/// Thrown when a test waited longer than its limit.
struct TestTimeout: Error, CustomStringConvertible {
    let seconds: Double
    let what: String
    var description: String { "timed out after \(seconds) s waiting for \(what)" }
}

/// Calls `probe` every `interval` until it returns a value, failing with ``TestTimeout`` after `seconds`.
func eventually<T>(
    _ seconds: Double, _ what: @autoclosure () -> String, every interval: Duration = .milliseconds(20),
    _ probe: () async throws -> T?
) async throws -> T {
    let deadline = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
    while true {
        if let value = try await probe() { return value }
        if ContinuousClock.now >= deadline { throw TestTimeout(seconds: seconds, what: what()) }
        try await Task.sleep(for: interval)
    }
}

extension AMQPConnection {
    /// Whether an exchange exists (a passive `exchange.declare` on a channel of its own, since a 404 closes it).
    func exchangeExists(_ name: String) async throws -> Bool {
        let channel = try await openChannel()
        do {
            try await channel.declareExchange(name, passive: true)
            try await channel.close()
            return true
        } catch let error as AMQPError where error.replyCode == 404 {
            return false
        }
    }

    /// A queue's counts, or nil when it does not exist (a passive `queue.declare` on a channel of its own).
    func queueInfo(_ name: String) async throws -> AMQPQueueInfo? {
        let channel = try await openChannel()
        do {
            let info = try await channel.declareQueue(name, passive: true)
            try await channel.close()
            return info
        } catch let error as AMQPError where error.replyCode == 404 {
            return nil
        }
    }

    /// How many messages are ready in a queue that must exist.
    func messageCount(_ queue: String) async throws -> UInt32 {
        guard let info = try await queueInfo(queue) else {
            throw QueueMissing(queue: queue)
        }
        return info.messageCount
    }

    /// Deletes the queues and exchanges of one test's topology; names that do not exist are passed over.
    func deleteTopology(_ topology: PaymentTopology) async throws {
        let queues =
            [
                topology.clientsQueue, topology.paymentsQueue, topology.retriesQueue, topology.parkingLot,
                topology.clientsLog, topology.outcomesLog, topology.claimsLog,
            ]
            + topology.cleanupDelayQueues
        for queue in queues {
            guard try await queueInfo(queue) != nil else { continue }
            let channel = try await openChannel()
            try await channel.deleteQueue(queue)
            try await channel.close()
        }
        for exchange in [topology.eventsExchange, topology.delayedExchange] {
            guard try await exchangeExists(exchange) else { continue }
            let channel = try await openChannel()
            try await channel.deleteExchange(exchange)
            try await channel.close()
        }
    }
}

/// A queue a test expected was not there.
struct QueueMissing: Error, CustomStringConvertible {
    let queue: String
    var description: String { "queue \(queue) does not exist" }
}

extension PaymentTopology {
    /// The delay queues of a consumer started the way the tests start it: `--retry-step 200ms` with the default cap
    /// (10 s) and attempts (10), so 200 ms to 2 s. Other `--max-attempts` values use a subset of them.
    var testDelayQueues: [String] {
        RetryPolicy(step: .milliseconds(200), maxDelay: .seconds(10), maxAttempts: 10).delayLevels
            .map { delayQueue(for: $0) }
    }

    /// Every delay queue a test may have made: those above, and those of the fault tests' `--retry-step 500ms`.
    var cleanupDelayQueues: [String] {
        let faultTestQueues = RetryPolicy(step: .milliseconds(500), maxDelay: .seconds(10), maxAttempts: 10).delayLevels
            .map { delayQueue(for: $0) }
        return Array(Set(testDelayQueues + faultTestQueues)).sorted()
    }
}

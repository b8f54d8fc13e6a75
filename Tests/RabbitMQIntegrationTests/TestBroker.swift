import Foundation
import Logging
import RabbitMQ
import RabbitMQTestSupport
import XCTest

/// How the integration tests reach the broker: `AMQP_URL` (default: the local broker), unique names, time limits,
/// and failing loudly (never skipping) when `CI` is set and the broker is missing.
enum TestBroker {
    static let url = ProcessInfo.processInfo.environment["AMQP_URL"] ?? "amqp://guest:guest@127.0.0.1:5672/"
    static let isCI = ProcessInfo.processInfo.environment["CI"] != nil

    static var configuration: AMQPConfiguration {
        get throws { try AMQPConfiguration(url: url) }
    }

    static var logger: Logger {
        var logger = Logger(label: "rabbitmq-tests")
        logger.logLevel = ProcessInfo.processInfo.environment["AMQP_TEST_LOG"].flatMap { Logger.Level(rawValue: $0) } ?? .critical
        return logger
    }

    /// Connects to the test broker; skips the test when it is unreachable outside CI, fails inside CI.
    static func connect(
        _ adjust: (inout AMQPConfiguration) -> Void = { _ in }
    ) async throws -> AMQPConnection {
        var configuration = try configuration
        configuration.connectionName = "rabbitmq-tests"
        adjust(&configuration)
        do {
            return try await AMQPConnection.connect(configuration: configuration, logger: logger)
        } catch let error as AMQPError
            where !isCI && [.connectionRefused, .hostNotFound, .connectTimeout].contains(error.code)
        {
            throw XCTSkip("no RabbitMQ broker at \(url) (set AMQP_URL, or start one): \(error)")
        }
    }

    /// Closes, on the broker's side, every connection whose name is `connectionName` (`rabbitmqctl
    /// close_connection`, as an operator would: 320 CONNECTION_FORCED). Returns how many were closed.
    @discardableResult
    static func forceClose(connectionNamed connectionName: String) throws -> Int {
        let listing = try rabbitmqctl("list_connections", "pid", "client_properties", "--no-table-headers", "-q")
        var closed = 0
        for line in listing.split(separator: "\n") where line.contains("\"\(connectionName)\"") {
            guard let pid = line.split(separator: "\t").first ?? line.split(separator: " ").first else { continue }
            _ = try rabbitmqctl("close_connection", String(pid), "closed by a test")
            closed += 1
        }
        return closed
    }

    /// A queue or exchange name no other test run uses.
    static func uniqueName(_ prefix: String) -> String {
        "test-\(prefix)-\(UUID().uuidString.prefix(8).lowercased())"
    }

    /// Runs `rabbitmqctl` on the local broker; skips outside CI when it is not installed or `AMQP_URL` is remote.
    static func rabbitmqctl(_ arguments: String...) throws -> String {
        if let output = try runRabbitmqctl(arguments) { return output }
        if isCI { throw AMQPError(.invalidConfiguration, "rabbitmqctl is not installed") }
        throw XCTSkip("rabbitmqctl is not installed")
    }
}

/// Asserts that `body` throws an ``AMQPError`` and returns it for further checks.
func assertAMQPError<T>(
    _ body: @autoclosure () async throws -> T, file: StaticString = #filePath, line: UInt = #line
) async -> AMQPError? {
    do {
        _ = try await body()
        XCTFail("expected an AMQPError, got success", file: file, line: line)
    } catch let error as AMQPError {
        return error
    } catch {
        XCTFail("expected an AMQPError, got \(error)", file: file, line: line)
    }
    return nil
}

extension AMQPChannel {
    /// Declares a fresh test queue and returns its name. The broker deletes it two minutes after its last use.
    func declareTestQueue(_ prefix: String = "queue", arguments: AMQPTable = [:]) async throws -> String {
        let name = TestBroker.uniqueName(prefix)
        var arguments = arguments
        if arguments["x-expires"] == nil { arguments["x-expires"] = .int32(120_000) }
        _ = try await declareQueue(name, arguments: arguments)
        return name
    }

    /// How many messages are ready in a queue (a passive `queue.declare`).
    func messageCount(in queue: String) async throws -> UInt32 {
        try await declareQueue(queue, passive: true).messageCount
    }

    /// How many consumers a queue has (a passive `queue.declare`).
    func consumerCount(of queue: String) async throws -> UInt32 {
        try await declareQueue(queue, passive: true).consumerCount
    }

    /// Fetches a message, polling until one arrives or the time limit passes.
    func waitForMessage(in queue: String, seconds: Double = 5) async throws -> AMQPDelivery {
        try await withTimeout(seconds, "a message in \(queue)") {
            while true {
                if let delivery = try await self.get(queue: queue) { return delivery }
                try await Task.sleep(for: .milliseconds(20))
            }
        }
    }
}

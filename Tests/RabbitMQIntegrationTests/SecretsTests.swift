import Foundation
import Logging
import RabbitMQ
import RabbitMQTestSupport
import Synchronization
import XCTest

/// A password never shows: not in a configuration's descriptions or mirror, not in errors, not in logs.
final class SecretsTests: XCTestCase {
    static let secret = "pa55-w0rd-that-must-not-leak"

    func testConfigurationNeverShowsThePassword() throws {
        let configuration = try AMQPConfiguration(url: "amqp://alice:\(Self.secret)@127.0.0.1:5672/%2F")
        var dumped = ""
        dump(configuration, to: &dumped)
        for text in [
            configuration.description, configuration.debugDescription, String(describing: configuration),
            String(reflecting: configuration), dumped, "\(configuration)",
        ] {
            XCTAssertFalse(text.contains(Self.secret), text)
        }
        XCTAssertTrue(configuration.description.contains("alice"))
    }

    func testErrorsAndLogsNeverShowThePassword() async throws {
        let recorder = LogRecorder()
        var logger = Logger(label: "secrets") { _ in recorder }
        logger.logLevel = .trace
        var configuration = try TestBroker.configuration
        configuration.password = Self.secret
        configuration.recovery = .disabled
        do {
            _ = try await AMQPConnection.connect(configuration: configuration, logger: logger)
            XCTFail("a wrong password was accepted")
        } catch {
            XCTAssertFalse("\(error)".contains(Self.secret), "\(error)")
            XCTAssertFalse(String(reflecting: error).contains(Self.secret))
            XCTAssertEqual((error as? AMQPError)?.code, .authenticationFailed)
        }

        // A working connection with the secret in its URL, logging everything it does, through a recovery.
        let name = TestBroker.uniqueName("secret-logs")
        let real = try TestBroker.configuration
        var url = "amqp://\(real.username):\(real.password)@\(real.host):\(real.port)/%2F"
        url += "?connection_name=\(name)"
        var working = try AMQPConfiguration(url: url)
        working.recovery = .enabled(initialDelay: .milliseconds(50), maxDelay: .milliseconds(200))
        let connection = try await AMQPConnection.connect(configuration: working, logger: logger)
        try TestBroker.forceClose(connectionNamed: name)
        try await withTimeout(10, "the recovery") {
            for await event in connection.recoveryEvents { if case .recovered = event { return } }
        }
        try await connection.close()
        XCTAssertFalse(recorder.lines.isEmpty)
        for line in recorder.lines {
            XCTAssertFalse(line.contains(Self.secret), line)
            XCTAssertFalse(line.contains(real.password) && real.password.count > 5, line)
        }
    }
}

/// Keeps every log line, with its metadata, in memory.
final class LogRecorder: LogHandler, Sendable {
    private let recorded = Mutex<[String]>([])

    var lines: [String] { recorded.withLock { $0 } }

    var metadata: Logger.Metadata {
        get { [:] }
        set {}
    }

    var logLevel: Logger.Level {
        get { .trace }
        set {}
    }

    subscript(metadataKey _: String) -> Logger.Metadata.Value? {
        get { nil }
        set {}
    }

    func log(event: LogEvent) {
        let line = "\(event.level) \(event.message) \(event.metadata ?? [:])"
        recorded.withLock { $0.append(line) }
    }
}

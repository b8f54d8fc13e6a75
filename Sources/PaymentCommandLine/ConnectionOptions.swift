import ArgumentParser
import Foundation
import Logging
import RabbitMQ

/// The options both tools share: where the broker is, and how to log.
public struct ConnectionOptions: ParsableArguments {
    /// The broker's URL; defaults to `AMQP_URL`, else the local broker.
    @Option(help: "The broker's URL (default: $AMQP_URL, else amqp://guest:guest@127.0.0.1:5672/).")
    public var url: String?

    /// The lowest level logged.
    @Option(help: "The lowest level logged: trace, debug, info, notice, warning, error or critical.")
    public var logLevel: Logger.Level = .info

    /// How log lines look.
    @Option(help: "How log lines look on stderr: text, or json (one object per line).")
    public var logFormat: LogFormat = .text

    /// A prefix for every queue and exchange name; for tests that must not share the service's queues.
    @Option(help: .hidden)
    public var namePrefix: String = ""

    /// Creates the options with their defaults.
    public init() {}

    /// The URL used: the option, else `AMQP_URL`, else the local broker.
    public var effectiveURL: String {
        url ?? ProcessInfo.processInfo.environment["AMQP_URL"] ?? "amqp://guest:guest@127.0.0.1:5672/"
    }

    /// The connection configuration the URL describes.
    ///
    /// - Returns: The configuration of ``effectiveURL``, already validated.
    /// - Throws: ArgumentParser's `ValidationError` when the URL is invalid, carrying the URL parser's reason, which
    ///   never contains the password.
    public func configuration() throws -> AMQPConfiguration {
        do {
            return try AMQPConfiguration(url: effectiveURL)
        } catch let error as AMQPError {
            throw ValidationError("invalid broker URL: \(error.message)")
        }
    }

    /// Sets up logging to stderr in the chosen format and returns the tool's logger.
    ///
    /// Bootstraps swift-log's `LoggingSystem`, which a process may do only once: call it once, at start.
    ///
    /// - Parameter label: The logger's label, such as the tool's name.
    /// - Returns: A logger at ``logLevel``.
    public func bootstrapLogging(label: String) -> Logger {
        let format = logFormat
        LoggingSystem.bootstrap { label in
            switch format {
            case .text: StreamLogHandler.standardError(label: label)
            case .json: JSONLogHandler(label: label)
            }
        }
        var logger = Logger(label: label)
        logger.logLevel = logLevel
        return logger
    }
}

/// How log lines look.
public enum LogFormat: String, ExpressibleByArgument, CaseIterable, Sendable {
    /// swift-log's plain text lines.
    case text
    /// One JSON object per line, for log collectors.
    case json
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

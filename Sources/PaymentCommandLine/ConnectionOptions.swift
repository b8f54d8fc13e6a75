import ArgumentParser
import Foundation
import Logging
import RabbitMQ

/// The options both tools share: where the broker is, and how to log.
public struct ConnectionOptions: ParsableArguments {
    /// The broker's URLs: one per cluster node, in the order connections try them; defaults to `AMQP_URL`, else the
    /// local broker.
    @Option(
        help: ArgumentHelp(
            "A broker URL; repeat it (or separate URLs with commas) for the nodes of a cluster, tried in order when "
                + "connecting and recovering (default: $AMQP_URL, which may hold several comma-separated URLs, else "
                + "amqp://guest:guest@127.0.0.1:5672/).",
            valueName: "url"))
    public var url: [String] = []

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

    /// The URLs used, in order: those of `--url`, else those of `AMQP_URL`, else the local broker. A value may hold
    /// several URLs separated by commas (an AMQP URL has no unencoded comma of its own).
    public var effectiveURLs: [String] {
        let given = url.isEmpty ? [ProcessInfo.processInfo.environment["AMQP_URL"] ?? ""] : url
        let urls = given.flatMap { $0.split(separator: ",") }
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        return urls.isEmpty ? ["amqp://guest:guest@127.0.0.1:5672/"] : urls
    }

    /// The connection configuration the URLs describe: the first URL's broker, then the others' as failover
    /// endpoints.
    ///
    /// - Returns: The configuration of ``effectiveURLs``, already validated.
    /// - Throws: ArgumentParser's `ValidationError` when a URL is invalid, or the URLs disagree on more than their
    ///   host and port, carrying the URL parser's reason, which never contains a password.
    public func configuration() throws -> AMQPConfiguration {
        do {
            return try AMQPConfiguration(urls: effectiveURLs)
        } catch let error as AMQPError {
            let noun = effectiveURLs.count > 1 ? "broker URLs" : "broker URL"
            throw ValidationError("invalid \(noun): \(error.message)")
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

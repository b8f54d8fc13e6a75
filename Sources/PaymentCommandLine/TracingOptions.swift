import ArgumentParser
import Foundation

/// Where both tools export their spans: an OpenTelemetry collector's OTLP/HTTP endpoint, from `--otlp-endpoint`,
/// else from the standard OpenTelemetry environment variables; nowhere (no tracer at all) when none is set.
public struct TracingOptions: ParsableArguments {
    /// The collector's base URL, such as `http://otel-collector:4318`; `/v1/traces` is appended.
    @Option(
        help: ArgumentHelp(
            "Export traces to this OpenTelemetry collector over OTLP/HTTP (protobuf), such as "
                + "http://otel-collector:4318; /v1/traces is appended unless the URL already ends with it (default: "
                + "$OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as is, else $OTEL_EXPORTER_OTLP_ENDPOINT; when none is set, "
                + "no traces are exported).",
            valueName: "url"))
    public var otlpEndpoint: String?

    /// Creates the options with their defaults.
    public init() {}

    /// Checks the endpoint, wherever it comes from, before anything runs: a mistyped collector URL is a usage error
    /// (exit code 64), not a tracer that silently exports nowhere.
    ///
    /// - Throws: ArgumentParser's `ValidationError`, naming the option or variable and what is wrong with its URL.
    public func validate() throws {
        _ = try tracesEndpoint(environment: ProcessInfo.processInfo.environment)
    }

    /// The URL spans are posted to: the first of `--otlp-endpoint`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` and
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` that is set and not empty (an empty variable counts as unset, as the
    /// OpenTelemetry specification says).
    ///
    /// `--otlp-endpoint` and `OTEL_EXPORTER_OTLP_ENDPOINT` are base URLs: `v1/traces` is appended after a slash,
    /// unless the path already ends with `/v1/traces`, as someone who pasted the full URL means. The signal-specific
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is the full URL and is used as it is (with `/` for an empty path).
    ///
    /// - Parameter environment: The environment to read the variables from (the process's, when the tools run).
    /// - Returns: The endpoint, or nil when none is set: then no tracer is bootstrapped.
    /// - Throws: ArgumentParser's `ValidationError` when the chosen URL does not parse, its scheme is not `http` or
    ///   `https`, it has no host, an invalid port, credentials, a query or a fragment.
    public func tracesEndpoint(environment: [String: String]) throws -> OTLPTracesEndpoint? {
        if let flag = otlpEndpoint {
            return try OTLPTracesEndpoint(base: flag, source: "--otlp-endpoint")
        }
        if let full = Self.value(of: OTLPTracesEndpoint.tracesVariable, in: environment) {
            return try OTLPTracesEndpoint(full: full, source: OTLPTracesEndpoint.tracesVariable)
        }
        if let base = Self.value(of: OTLPTracesEndpoint.sharedVariable, in: environment) {
            return try OTLPTracesEndpoint(base: base, source: OTLPTracesEndpoint.sharedVariable)
        }
        return nil
    }

    private static func value(of variable: String, in environment: [String: String]) -> String? {
        guard let value = environment[variable]?.trimmingCharacters(in: .whitespaces), !value.isEmpty else {
            return nil
        }
        return value
    }
}

/// A validated OTLP/HTTP traces URL, and where it was configured.
public struct OTLPTracesEndpoint: Sendable, Equatable {
    /// The environment variable of the base URL of every signal's endpoint.
    public static let sharedVariable = "OTEL_EXPORTER_OTLP_ENDPOINT"
    /// The environment variable of the full URL of the traces endpoint.
    public static let tracesVariable = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"

    /// The URL spans are posted to, such as `http://otel-collector:4318/v1/traces`.
    public let url: String
    /// Where it came from: `--otlp-endpoint` or the name of the environment variable.
    public let source: String

    /// Validates a base URL and appends `v1/traces` to its path, unless the path already ends with `/v1/traces`.
    ///
    /// - Parameters:
    ///   - base: The URL as given, such as `http://otel-collector:4318`.
    ///   - source: What configured it, for the error message.
    /// - Throws: ArgumentParser's `ValidationError` when `base` is not a valid collector URL.
    public init(base: String, source: String) throws {
        var components = try Self.validated(base, source: source)
        let path = components.percentEncodedPath
        if !path.hasSuffix("/v1/traces") {
            components.percentEncodedPath = (path.hasSuffix("/") ? path : path + "/") + "v1/traces"
        }
        try self.init(components, source: source)
    }

    /// Validates a full traces URL, used as it is but for an empty path, which becomes `/`.
    ///
    /// - Parameters:
    ///   - full: The URL as given, such as `http://otel-collector:4318/v1/traces`.
    ///   - source: What configured it, for the error message.
    /// - Throws: ArgumentParser's `ValidationError` when `full` is not a valid collector URL.
    public init(full: String, source: String) throws {
        var components = try Self.validated(full, source: source)
        if components.percentEncodedPath.isEmpty { components.percentEncodedPath = "/" }
        try self.init(components, source: source)
    }

    private init(_ components: URLComponents, source: String) throws {
        guard let url = components.string else { throw Self.invalid(source, "it does not form a URL") }
        self.url = url
        self.source = source
    }

    /// The URL's components once it is known to name a collector: http or https, a host, no credentials (which
    /// would end up in logs; OTEL_EXPORTER_OTLP_HEADERS is the place for an authorization header), no query or
    /// fragment (the path is appended to).
    private static func validated(_ text: String, source: String) throws -> URLComponents {
        // The URL itself is quoted only once it is known to hold no credentials.
        guard let components = URLComponents(string: text) else {
            throw invalid(source, "it is not a URL (expected one such as http://otel-collector:4318)")
        }
        guard components.user == nil, components.password == nil else {
            throw invalid(source, "credentials do not belong in the URL; set OTEL_EXPORTER_OTLP_HEADERS instead")
        }
        guard let scheme = components.scheme?.lowercased(), scheme == "http" || scheme == "https" else {
            throw invalid(source, "'\(text)' has no http:// or https:// scheme (such as http://otel-collector:4318)")
        }
        guard let host = components.host, !host.isEmpty else { throw invalid(source, "'\(text)' has no host") }
        if let port = components.port, !(1...65535).contains(port) {
            throw invalid(source, "'\(text)' has port \(port), outside 1-65535")
        }
        guard components.query == nil, components.fragment == nil else {
            throw invalid(source, "'\(text)' has a query or a fragment; a collector's URL has neither")
        }
        return components
    }

    private static func invalid(_ source: String, _ reason: String) -> ValidationError {
        ValidationError("invalid \(source): \(reason)")
    }
}

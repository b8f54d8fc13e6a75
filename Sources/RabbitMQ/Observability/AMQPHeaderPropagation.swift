import Instrumentation

/// Writes a trace context into message headers, for `Instrument.inject(_:into:using:)`: the keys are the tracer's
/// (W3C `traceparent` and `tracestate` with an OpenTelemetry tracer), the values long strings.
///
/// A key the headers already hold is left as it is: a context the application put into a message on purpose is not
/// replaced by the publish's own.
public struct AMQPHeadersInjector: Injector {
    /// Creates the injector.
    public init() {}

    /// Sets `key` to `value` unless the headers already hold `key`.
    ///
    /// - Parameters:
    ///   - value: The value the tracer wants to carry.
    ///   - key: The header name.
    ///   - carrier: The message headers.
    public func inject(_ value: String, forKey key: String, into carrier: inout AMQPTable) {
        guard carrier[key] == nil else { return }
        carrier.dictionary[key] = .string(value)
    }
}

/// Reads a trace context from message headers, for `Instrument.extract(_:into:using:)`.
///
/// Both long strings and byte arrays are read as UTF-8 text: some clients (the RabbitMQ .NET client among them)
/// write `traceparent` as bytes.
public struct AMQPHeadersExtractor: Extractor {
    /// Creates the extractor.
    public init() {}

    /// The text of header `key`, or nil when there is none or it is neither a string nor bytes.
    ///
    /// - Parameters:
    ///   - key: The header name.
    ///   - carrier: The message headers.
    /// - Returns: The header's text.
    public func extract(key: String, from carrier: AMQPTable) -> String? {
        switch carrier[key] {
        case .string(let value): value
        case .bytes(let bytes): String(validating: bytes, as: UTF8.self)
        default: nil
        }
    }
}

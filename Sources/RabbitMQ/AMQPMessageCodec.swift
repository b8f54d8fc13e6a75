import Foundation

/// Turns values into message bodies and back, for ``AMQPTypedQueue``.
public protocol AMQPMessageCodec: Sendable {
    /// The content type published with encoded messages, such as `application/json`.
    var contentType: String { get }
    /// Encodes a value into a message body.
    ///
    /// - Parameter value: The value to encode.
    /// - Returns: The message body.
    /// - Throws: Any error when the value cannot be encoded; ``AMQPTypedQueue`` reports it as ``AMQPError`` with code
    ///   ``AMQPError/Code-swift.struct/encodingFailed``.
    func encode<Value: Encodable>(_ value: Value) throws -> Data
    /// Decodes a message body into a value.
    ///
    /// - Parameters:
    ///   - type: The type to decode.
    ///   - body: The message body.
    /// - Returns: The decoded value.
    /// - Throws: Any error when the body is not a valid `type`; ``AMQPTypedDelivery/message`` reports it as
    ///   ``AMQPError`` with code ``AMQPError/Code-swift.struct/decodingFailed``.
    func decode<Value: Decodable>(_ type: Value.Type, from body: Data) throws -> Value
}

/// The default codec: JSON with Foundation's encoder and decoder.
public struct JSONMessageCodec: AMQPMessageCodec {
    /// `application/json`.
    public let contentType = "application/json"
    private let dateStrategy: DateStrategy

    /// How dates are written and read.
    public enum DateStrategy: Sendable {
        /// ISO 8601 strings, such as `2026-01-31T12:00:00Z`.
        case iso8601
        /// Seconds since 1970 as a number.
        case secondsSince1970
    }

    /// Creates a JSON codec.
    ///
    /// - Parameter dateStrategy: How dates are written and read; ISO 8601 by default.
    public init(dateStrategy: DateStrategy = .iso8601) {
        self.dateStrategy = dateStrategy
    }

    /// Encodes a value as JSON, writing dates with the codec's ``DateStrategy``.
    ///
    /// - Parameter value: The value to encode.
    /// - Returns: The UTF-8 JSON text.
    /// - Throws: `EncodingError` from Foundation's `JSONEncoder`, for instance for a non-finite floating-point
    ///   number.
    public func encode<Value: Encodable>(_ value: Value) throws -> Data {
        let encoder = JSONEncoder()
        switch dateStrategy {
        case .iso8601: encoder.dateEncodingStrategy = .iso8601
        case .secondsSince1970: encoder.dateEncodingStrategy = .secondsSince1970
        }
        return try encoder.encode(value)
    }

    /// Decodes a value from JSON, reading dates with the codec's ``DateStrategy``.
    ///
    /// - Parameters:
    ///   - type: The type to decode.
    ///   - body: The UTF-8 JSON text.
    /// - Returns: The decoded value.
    /// - Throws: `DecodingError` from Foundation's `JSONDecoder` when the body is not JSON or does not match `type`.
    public func decode<Value: Decodable>(_ type: Value.Type, from body: Data) throws -> Value {
        let decoder = JSONDecoder()
        switch dateStrategy {
        case .iso8601: decoder.dateDecodingStrategy = .iso8601
        case .secondsSince1970: decoder.dateDecodingStrategy = .secondsSince1970
        }
        return try decoder.decode(type, from: body)
    }
}

import Foundation

/// Turns values into message bodies and back, for ``AMQPTypedQueue``.
public protocol AMQPMessageCodec: Sendable {
    /// The content type published with encoded messages, such as `application/json`.
    var contentType: String { get }
    /// Encodes a value into a message body.
    func encode<Value: Encodable>(_ value: Value) throws -> Data
    /// Decodes a message body into a value.
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

    /// Encodes a value as JSON.
    public func encode<Value: Encodable>(_ value: Value) throws -> Data {
        let encoder = JSONEncoder()
        switch dateStrategy {
        case .iso8601: encoder.dateEncodingStrategy = .iso8601
        case .secondsSince1970: encoder.dateEncodingStrategy = .secondsSince1970
        }
        return try encoder.encode(value)
    }

    /// Decodes a value from JSON.
    public func decode<Value: Decodable>(_ type: Value.Type, from body: Data) throws -> Value {
        let decoder = JSONDecoder()
        switch dateStrategy {
        case .iso8601: decoder.dateDecodingStrategy = .iso8601
        case .secondsSince1970: decoder.dateDecodingStrategy = .secondsSince1970
        }
        return try decoder.decode(type, from: body)
    }
}

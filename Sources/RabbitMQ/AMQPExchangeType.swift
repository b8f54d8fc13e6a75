/// The type of an exchange: one of the built-in types or any type a plugin provides.
///
/// ```swift
/// try await channel.declareExchange("events", type: .topic, durable: true)
/// try await channel.declareExchange("hashing", type: "x-consistent-hash")
/// ```
public struct AMQPExchangeType: RawRepresentable, Hashable, Sendable, ExpressibleByStringLiteral,
    CustomStringConvertible
{
    /// The type's name as the broker knows it.
    public let rawValue: String

    /// Creates a type from its name.
    ///
    /// - Parameter rawValue: The type's name, such as `"topic"` or a plugin's `"x-consistent-hash"`; it is not
    ///   checked here, and a name the broker does not know fails the declaration with 503 COMMAND_INVALID.
    public init(rawValue: String) {
        self.rawValue = rawValue
    }

    /// Creates a type from a string literal holding its name.
    ///
    /// - Parameter value: The type's name, as for ``init(rawValue:)``.
    public init(stringLiteral value: String) {
        self.rawValue = value
    }

    /// Routes to the queues bound with exactly the message's routing key.
    public static let direct = AMQPExchangeType(rawValue: "direct")
    /// Routes to every bound queue, ignoring the routing key.
    public static let fanout = AMQPExchangeType(rawValue: "fanout")
    /// Routes by pattern (`*` one word, `#` zero or more words) on dot-separated routing keys.
    public static let topic = AMQPExchangeType(rawValue: "topic")
    /// Routes by message header values instead of the routing key.
    public static let headers = AMQPExchangeType(rawValue: "headers")
    /// The delayed-message plugin's type, which holds each message for its `x-delay` header's milliseconds.
    /// Declare it with an `x-delayed-type` argument, or use ``AMQPDelayedExchange``.
    public static let delayedMessage = AMQPExchangeType(rawValue: "x-delayed-message")

    /// The type's name.
    public var description: String { rawValue }
}

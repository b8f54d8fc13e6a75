import Foundation

/// An exchange of the delayed-message plugin's type (`x-delayed-message`), which holds each message for the
/// milliseconds of its `x-delay` header before routing it.
///
/// ```swift
/// let retries = try await AMQPDelayedExchange.declare("payment-delayed", on: channel)
/// try await channel.bindQueue("payment-reprocessor", to: retries.name, routingKey: "payment")
/// try await retries.publish(body, routingKey: "payment", delay: .seconds(3))
/// ```
///
/// The plugin routes a message only when its delay ends, so at publish time the broker sees it as unroutable:
/// a confirm comes at once, and `mandatory` would always return the message, so this type never sets it.
/// Without the plugin the broker refuses the exchange type with 503 COMMAND_INVALID and closes the whole
/// connection; ``declare(_:on:routingType:durable:autoDelete:arguments:)`` then throws `delayedMessagePluginMissing`.
public struct AMQPDelayedExchange: Sendable {
    /// The longest delay the plugin accepts: its Erlang timer's limit of 2³² − 1 ms, about 49.7 days.
    public static let maximumDelay = Duration.milliseconds(4_294_967_295)
    /// The header that carries the delay.
    public static let delayHeader = "x-delay"

    /// The exchange's name.
    public let name: String
    /// The channel messages are published on.
    public let channel: AMQPChannel

    /// Uses an exchange that is already declared.
    ///
    /// Nothing is checked: publishing to a name that is not a delayed-message exchange fails as any publish to a
    /// missing exchange does, or routes at once, ignoring the delay.
    ///
    /// - Parameters:
    ///   - name: The name of the exchange, of type `x-delayed-message`.
    ///   - channel: The channel to publish through.
    public init(name: String, channel: AMQPChannel) {
        self.name = name
        self.channel = channel
    }

    /// Declares a delayed-message exchange (`exchange.declare` of type `x-delayed-message`).
    ///
    /// - Parameters:
    ///   - name: The exchange's name.
    ///   - channel: The channel to declare it on and publish through.
    ///   - routingType: How messages are routed once their delay ends (`x-delayed-type`): `.direct`, `.topic`, ...
    ///   - durable: Whether the exchange survives a broker restart.
    ///   - autoDelete: Whether the broker deletes it when its last binding goes (for a probe, say).
    ///   - arguments: Further arguments.
    /// - Returns: The exchange, ready to publish to.
    /// - Throws: ``AMQPError``: `delayedMessagePluginMissing` when the broker lacks the plugin (the broker closes the
    ///   connection then), `invalidArgument` when `routingType` is `x-delayed-message` itself, or the broker's refusal
    ///   (`channelClosedByBroker` 406 when it exists with other arguments); otherwise what
    ///   ``AMQPChannel/declareExchange(_:type:durable:autoDelete:internal:passive:arguments:)`` throws, such as
    ///   `channelClosed` or `connectionLost`. `CancellationError` when the task is cancelled before the broker answers;
    ///   the declaration may still take effect.
    public static func declare(
        _ name: String, on channel: AMQPChannel, routingType: AMQPExchangeType = .direct, durable: Bool = true,
        autoDelete: Bool = false, arguments: AMQPTable = [:]
    ) async throws -> AMQPDelayedExchange {
        guard routingType != .delayedMessage else {
            throw AMQPError(.invalidArgument, "a delayed exchange cannot route as x-delayed-message itself")
        }
        var arguments = arguments
        arguments["x-delayed-type"] = .string(routingType.rawValue)
        do {
            try await channel.declareExchange(
                name, type: .delayedMessage, durable: durable, autoDelete: autoDelete, arguments: arguments)
        } catch let error as AMQPError where error.replyCode == 503 {
            // 503 COMMAND_INVALID, for this type, means the broker does not know it: the plugin is not enabled.
            var missing = error
            missing.code = .delayedMessagePluginMissing
            missing.message =
                "the broker does not know exchange type x-delayed-message: enable the rabbitmq_delayed_message_exchange plugin (the broker closed the connection)"
            throw missing
        }
        return AMQPDelayedExchange(name: name, channel: channel)
    }

    /// The `x-delay` header value for a delay: whole milliseconds (rounded up) as a signed 64-bit integer.
    ///
    /// - Parameter delay: How long the broker should hold the message: 0 up to ``maximumDelay``.
    /// - Returns: The delay in milliseconds, rounded up, as `.int64`.
    /// - Throws: ``AMQPError`` with code `invalidArgument` for a negative delay or one above ``maximumDelay``
    ///   (the plugin would route such messages at once, silently).
    public static func delayValue(for delay: Duration) throws(AMQPError) -> AMQPFieldValue {
        guard delay >= .zero else {
            throw AMQPError(.invalidArgument, "a message delay cannot be negative (\(delay))")
        }
        guard delay <= maximumDelay else {
            throw AMQPError(.invalidArgument, "a message delay cannot exceed \(maximumDelay) (\(delay) asked)")
        }
        let (seconds, attoseconds) = delay.components
        let milliseconds = seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
        return .int64(milliseconds)
    }

    /// Publishes a message to be routed after `delay` (`basic.publish` with header `x-delay`).
    ///
    /// In confirm mode this returns once the broker has taken the message for its delay.
    ///
    /// - Parameters:
    ///   - body: The message body.
    ///   - routingKey: The routing key applied when the delay ends.
    ///   - delay: How long the broker holds the message: 0 up to ``maximumDelay``.
    ///   - properties: The message properties; `x-delay` is added to its headers.
    /// - Throws: ``AMQPError``: `invalidArgument` for a negative delay or one above ``maximumDelay``, a routing key
    ///   over 255 bytes or headers AMQP cannot encode (nothing is sent); otherwise what
    ///   ``AMQPChannel/publish(_:exchange:routingKey:properties:mandatory:)`` throws: `timeout` when the broker keeps
    ///   publishing blocked too long, `connectionLost` (retriable) while the connection recovers, `channelClosed` on a
    ///   closed channel or the error the connection ended with; in confirm mode also `publishNacked`, and
    ///   `channelClosedByBroker` when the broker closes the channel before the confirm (404 NOT_FOUND for a missing
    ///   exchange), never `messageReturned`: this type does not set `mandatory`. `CancellationError` when the task is
    ///   cancelled while it waits.
    public func publish(
        _ body: Data, routingKey: String, delay: Duration, properties: AMQPProperties = AMQPProperties()
    ) async throws {
        var properties = properties
        var headers = properties.headers ?? AMQPTable()
        headers[Self.delayHeader] = try Self.delayValue(for: delay)
        properties.headers = headers
        try await channel.publish(body, exchange: name, routingKey: routingKey, properties: properties)
    }
}

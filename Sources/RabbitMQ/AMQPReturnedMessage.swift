import Foundation

/// A mandatory message the broker could not route and sent back (`basic.return`).
public struct AMQPReturnedMessage: Sendable {
    /// The broker's reason, usually 312 NO_ROUTE.
    public let replyCode: UInt16
    /// The broker's text for the reason.
    public let replyText: String
    /// The exchange the message was published to.
    public let exchange: String
    /// The routing key the message was published with.
    public let routingKey: String
    /// The message properties as published.
    public let properties: AMQPProperties
    /// The message body as published.
    public let body: Data
}

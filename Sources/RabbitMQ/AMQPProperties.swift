import Foundation

/// The properties of a message: the fields of the AMQP `basic` content header.
///
/// Every property is optional; one left `nil` is not sent at all. The broker reads only a few of them
/// (``deliveryMode``, ``priority``, ``expiration``, ``userID``); the rest are for the applications at both ends.
///
/// ```swift
/// let properties = AMQPProperties(
///     contentType: "application/json",
///     headers: ["x-delay": .int32(5_000)],
///     deliveryMode: .persistent,
///     messageID: UUID().uuidString
/// )
/// ```
///
/// The text properties are AMQP short strings: each must be at most 255 UTF-8 bytes long, or publishing refuses
/// the message with ``AMQPError/Code-swift.struct/invalidArgument`` before anything is sent.
public struct AMQPProperties: Sendable, Hashable {
    /// The MIME type of the body, such as `application/json` (AMQP `content-type`).
    public var contentType: String?
    /// The encoding applied to the body, such as `gzip` (AMQP `content-encoding`).
    public var contentEncoding: String?
    /// Application headers (AMQP `headers`); also read by headers exchanges and plugins such as `x-delay`.
    public var headers: AMQPTable?
    /// Whether the broker writes the message to disk (AMQP `delivery-mode`).
    ///
    /// A received message whose delivery mode is neither 1 nor 2 reads as `nil`.
    public var deliveryMode: AMQPDeliveryMode?
    /// The message priority, 0 to 9 in common use; it matters only in queues declared with `x-max-priority`
    /// (AMQP `priority`).
    public var priority: UInt8?
    /// An identifier that ties a reply to its request (AMQP `correlation-id`).
    public var correlationID: String?
    /// The queue a reply should be sent to (AMQP `reply-to`).
    public var replyTo: String?
    /// How long the message may wait in a queue before the broker drops or dead-letters it: a whole number of
    /// milliseconds written as a string, such as `"60000"` (AMQP `expiration`).
    public var expiration: String?
    /// An identifier of the message chosen by the application (AMQP `message-id`).
    public var messageID: String?
    /// When the message was created (AMQP `timestamp`).
    ///
    /// AMQP counts whole seconds since 1970: the fraction of a second is dropped when the message is sent, and dates
    /// before 1970 cannot be sent.
    public var timestamp: Date?
    /// The name of the message's type, chosen by the application (AMQP `type`).
    public var type: String?
    /// The user who publishes the message (AMQP `user-id`); RabbitMQ refuses a message whose user id is not the
    /// connection's user.
    public var userID: String?
    /// The name of the application that published the message (AMQP `app-id`).
    public var appID: String?

    /// Creates message properties; every property left out is not sent.
    ///
    /// - Parameters:
    ///   - contentType: The MIME type of the body (AMQP `content-type`).
    ///   - contentEncoding: The encoding applied to the body (AMQP `content-encoding`).
    ///   - headers: Application headers (AMQP `headers`).
    ///   - deliveryMode: Whether the broker writes the message to disk (AMQP `delivery-mode`).
    ///   - priority: The message priority (AMQP `priority`).
    ///   - correlationID: An identifier that ties a reply to its request (AMQP `correlation-id`).
    ///   - replyTo: The queue a reply should be sent to (AMQP `reply-to`).
    ///   - expiration: The time to live in milliseconds, as a string (AMQP `expiration`).
    ///   - messageID: An identifier of the message (AMQP `message-id`).
    ///   - timestamp: When the message was created, in whole seconds (AMQP `timestamp`).
    ///   - type: The name of the message's type (AMQP `type`).
    ///   - userID: The publishing user (AMQP `user-id`).
    ///   - appID: The publishing application (AMQP `app-id`).
    public init(
        contentType: String? = nil,
        contentEncoding: String? = nil,
        headers: AMQPTable? = nil,
        deliveryMode: AMQPDeliveryMode? = nil,
        priority: UInt8? = nil,
        correlationID: String? = nil,
        replyTo: String? = nil,
        expiration: String? = nil,
        messageID: String? = nil,
        timestamp: Date? = nil,
        type: String? = nil,
        userID: String? = nil,
        appID: String? = nil
    ) {
        self.contentType = contentType
        self.contentEncoding = contentEncoding
        self.headers = headers
        self.deliveryMode = deliveryMode
        self.priority = priority
        self.correlationID = correlationID
        self.replyTo = replyTo
        self.expiration = expiration
        self.messageID = messageID
        self.timestamp = timestamp
        self.type = type
        self.userID = userID
        self.appID = appID
    }

    /// Whether no property is set (the common case, sent without encoding anything).
    var isEmpty: Bool {
        contentType == nil && contentEncoding == nil && headers == nil && deliveryMode == nil && priority == nil
            && correlationID == nil && replyTo == nil && expiration == nil && messageID == nil && timestamp == nil
            && type == nil && userID == nil && appID == nil
    }
}

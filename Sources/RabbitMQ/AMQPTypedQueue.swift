import Foundation

/// A queue whose messages are values of one `Codable` type.
///
/// ```swift
/// struct Order: Codable, Sendable { var id: String; var amount: Decimal }
///
/// let orders = AMQPTypedQueue<Order>(name: "orders", channel: channel)
/// try await orders.declare()
/// try await orders.publish(Order(id: "1", amount: 10))
/// for try await delivery in try await orders.consume() {
///     do {
///         let order = try delivery.message
///         process(order)
///         try await delivery.ack()
///     } catch let error as AMQPError where error.code == .decodingFailed {
///         try await delivery.reject(requeue: false)   // to the dead-letter exchange, if any
///     }
/// }
/// ```
///
/// A body that does not decode does not end the sequence: its delivery's ``AMQPTypedDelivery/message`` throws
/// `decodingFailed` with the raw delivery attached, so the caller can dead-letter or park it.
public struct AMQPTypedQueue<Message: Codable & Sendable>: Sendable {
    /// The queue's name.
    public let name: String
    /// The channel the queue is used through.
    public let channel: AMQPChannel
    /// How messages are encoded and decoded.
    public let codec: any AMQPMessageCodec

    /// Uses queue `name` through `channel`, encoding messages with `codec` (JSON by default).
    ///
    /// Nothing is sent: declare the queue with ``declare(durable:exclusive:autoDelete:arguments:)`` unless it exists.
    ///
    /// - Parameters:
    ///   - name: The queue's name, also the routing key of ``publish(_:properties:)`` through the default exchange.
    ///   - channel: The channel every call goes through.
    ///   - codec: How messages are encoded and decoded. Default ``JSONMessageCodec`` with ISO 8601 dates.
    public init(name: String, channel: AMQPChannel, codec: any AMQPMessageCodec = JSONMessageCodec()) {
        self.name = name
        self.channel = channel
        self.codec = codec
    }

    /// Declares the queue (`queue.declare`); durable by default.
    ///
    /// - Parameters:
    ///   - durable: Whether the queue survives a broker restart. Default `true`.
    ///   - exclusive: Whether only this connection may use the queue, which is deleted when the connection closes.
    ///     Default `false`.
    ///   - autoDelete: Whether the broker deletes the queue when its last consumer goes. Default `false`.
    ///   - arguments: Optional arguments, such as `x-queue-type` or `x-dead-letter-exchange`. Default none.
    /// - Returns: The queue's name and its message and consumer counts.
    /// - Throws: ``AMQPError``, as ``AMQPChannel/declareQueue(_:durable:exclusive:autoDelete:passive:arguments:)``
    ///   does: `invalidArgument` for a name over 255 bytes (nothing is sent); `channelClosedByBroker` when the
    ///   broker refuses the declaration, such as 406 PRECONDITION_FAILED for a queue that exists with other settings
    ///   (the channel is then closed); `channelClosed` on a closed channel; or the connection's error
    ///   (`connectionLost`, retriable, while it recovers). `CancellationError` when the task is cancelled before
    ///   the broker answers; the declaration may still take effect.
    @discardableResult
    public func declare(
        durable: Bool = true, exclusive: Bool = false, autoDelete: Bool = false, arguments: AMQPTable = [:]
    ) async throws -> AMQPQueueInfo {
        try await channel.declareQueue(
            name, durable: durable, exclusive: exclusive, autoDelete: autoDelete, arguments: arguments)
    }

    /// Publishes a value to the queue through the default exchange.
    ///
    /// - Parameters:
    ///   - message: The value to encode.
    ///   - properties: The message properties; persistent by default, and the codec's content type unless set.
    /// - Throws: ``AMQPError`` with code `encodingFailed`, or any error of ``AMQPChannel/publish(_:exchange:routingKey:properties:mandatory:)``.
    public func publish(
        _ message: Message, properties: AMQPProperties = AMQPProperties(deliveryMode: .persistent)
    ) async throws {
        try await channel.publish(try encode(message), routingKey: name, properties: typedProperties(properties))
    }

    /// Encodes a value into a body with the queue's codec.
    ///
    /// - Parameter message: The value to encode.
    /// - Returns: The message body.
    /// - Throws: ``AMQPError`` with code ``AMQPError/Code-swift.struct/encodingFailed`` when the codec fails; its
    ///   message includes the codec's error.
    public func encode(_ message: Message) throws(AMQPError) -> Data {
        do {
            return try codec.encode(message)
        } catch {
            throw AMQPError(.encodingFailed, "could not encode \(Message.self): \(error)")
        }
    }

    /// Starts a consumer on the queue; see ``AMQPChannel/consume(queue:tag:noAck:exclusive:arguments:)``.
    ///
    /// - Parameters:
    ///   - tag: The consumer tag; empty (the default) for one the broker chooses.
    ///   - noAck: Let the broker consider messages acknowledged once sent (at-most-once delivery). Default `false`.
    ///   - exclusive: Be the queue's only consumer. Default `false`.
    ///   - arguments: Consumer arguments, such as `x-priority`. Default none.
    /// - Returns: The deliveries, decoded as they are read.
    /// - Throws: ``AMQPError``, as ``AMQPChannel/consume(queue:tag:noAck:exclusive:arguments:)`` does:
    ///   `invalidArgument` for a name or tag over 255 bytes (nothing is sent); `channelClosedByBroker` when the
    ///   broker refuses the consumer, such as 404 NOT_FOUND for a missing queue or 403 ACCESS_REFUSED for an
    ///   exclusive consumer on a queue that has another (the channel is then closed); `channelClosed` on a closed
    ///   channel; or the connection's error (`connectionLost`, retriable, while it recovers). `CancellationError`
    ///   when the task is cancelled before the broker answers; the consumer may still have started.
    public func consume(
        tag: String = "", noAck: Bool = false, exclusive: Bool = false, arguments: AMQPTable = [:]
    ) async throws -> AMQPTypedConsumer<Message> {
        let consumer = try await channel.consume(
            queue: name, tag: tag, noAck: noAck, exclusive: exclusive, arguments: arguments)
        return AMQPTypedConsumer(consumer: consumer, codec: codec)
    }

    /// Fetches one message (`basic.get`), or nil when the queue is empty.
    ///
    /// A body that does not decode is still returned: its ``AMQPTypedDelivery/message`` throws.
    ///
    /// - Parameter noAck: Consider the message acknowledged once sent. Default `false`: settle it yourself.
    /// - Returns: The message with its delivery, or `nil` when the queue held none.
    /// - Throws: ``AMQPError``, as ``AMQPChannel/get(queue:noAck:)`` does: `invalidArgument` for a name over 255
    ///   bytes; `channelClosedByBroker` when the broker refuses, such as 404 NOT_FOUND for a missing queue (the
    ///   channel is then closed); `channelClosed` on a closed channel; or the connection's error (`connectionLost`,
    ///   retriable, while it recovers). `CancellationError` when the task is cancelled before the broker answers;
    ///   without `noAck`, a message the broker handed out meanwhile stays unacknowledged and goes back to the queue
    ///   when the channel closes.
    public func get(noAck: Bool = false) async throws -> AMQPTypedDelivery<Message>? {
        try await channel.get(queue: name, noAck: noAck).map { AMQPTypedDelivery(delivery: $0, codec: codec) }
    }

    private func typedProperties(_ properties: AMQPProperties) -> AMQPProperties {
        var properties = properties
        if properties.contentType == nil { properties.contentType = codec.contentType }
        return properties
    }
}

/// A delivery of an ``AMQPTypedQueue``: the raw delivery and its decoded message.
public struct AMQPTypedDelivery<Message: Decodable & Sendable>: Sendable {
    /// The raw delivery.
    public let delivery: AMQPDelivery
    private let decoded: Result<Message, AMQPError>

    init(delivery: AMQPDelivery, codec: any AMQPMessageCodec) {
        self.delivery = delivery
        do {
            decoded = .success(try codec.decode(Message.self, from: delivery.body))
        } catch {
            decoded = .failure(AMQPError(
                .decodingFailed, "the message body is not a valid \(Message.self): \(error)", delivery: delivery))
        }
    }

    /// The decoded message.
    ///
    /// - Throws: ``AMQPError`` with code `decodingFailed` and the raw ``AMQPError/delivery`` when the body does not
    ///   decode.
    public var message: Message {
        get throws(AMQPError) { try decoded.get() }
    }

    /// Acknowledges the delivery (`basic.ack`), as ``AMQPDelivery/ack(multiple:)`` does for this delivery alone.
    ///
    /// - Throws: ``AMQPError`` when the channel can no longer be used: `channelClosed`, or the connection's
    ///   `connectionClosed`, `connectionClosedByBroker` or `connectionLost`.
    public func ack() async throws { try await delivery.ack() }

    /// Refuses the delivery (`basic.nack`), as ``AMQPDelivery/nack(multiple:requeue:)`` does for this delivery alone.
    ///
    /// - Parameter requeue: Put the message back in its queue (`true`, the default), or dead-letter or drop it.
    /// - Throws: ``AMQPError`` when the channel can no longer be used: `channelClosed`, or the connection's
    ///   `connectionClosed`, `connectionClosedByBroker` or `connectionLost`.
    public func nack(requeue: Bool = true) async throws { try await delivery.nack(requeue: requeue) }

    /// Rejects the delivery (`basic.reject`); with `requeue: false` it goes to the queue's dead-letter exchange.
    ///
    /// - Parameter requeue: Put the message back in its queue (`true`, the default), or dead-letter or drop it.
    /// - Throws: ``AMQPError`` when the channel can no longer be used: `channelClosed`, or the connection's
    ///   `connectionClosed`, `connectionClosedByBroker` or `connectionLost`.
    public func reject(requeue: Bool = true) async throws { try await delivery.reject(requeue: requeue) }
}

/// The deliveries of a typed consumer, decoded as they are read.
public struct AMQPTypedConsumer<Message: Decodable & Sendable>: AsyncSequence, Sendable {
    /// The sequence's element: one typed delivery.
    public typealias Element = AMQPTypedDelivery<Message>

    /// The underlying consumer.
    public let consumer: AMQPConsumer
    private let codec: any AMQPMessageCodec

    init(consumer: AMQPConsumer, codec: any AMQPMessageCodec) {
        self.consumer = consumer
        self.codec = codec
    }

    /// Cancels the consumer (`basic.cancel`); the sequence delivers what was already on its way, then ends.
    ///
    /// - Throws: ``AMQPError``, as ``AMQPChannel/cancel(consumerTag:)`` does: `channelClosed` on a closed channel,
    ///   or the connection's error; `CancellationError` when the task is cancelled before the broker answers (the
    ///   cancellation may still take effect).
    public func cancel() async throws { try await consumer.cancel() }

    /// Creates the iterator.
    public func makeAsyncIterator() -> Iterator {
        Iterator(base: consumer.makeAsyncIterator(), codec: codec)
    }

    /// Iterates the typed deliveries.
    public struct Iterator: AsyncIteratorProtocol {
        var base: AMQPConsumer.Iterator
        let codec: any AMQPMessageCodec

        /// The next delivery, decoded; nil once the consumer was cancelled.
        ///
        /// A body that does not decode does not throw here: the delivery's ``AMQPTypedDelivery/message`` does.
        /// Cancelling the iterating task ends the sequence with `nil`, not with an error.
        ///
        /// - Returns: The next typed delivery, or `nil` when the sequence has ended.
        /// - Throws: ``AMQPError``, as ``AMQPConsumer/Iterator/next()`` does: `invalidArgument` from an iterator made
        ///   after the first one, or the reason the consumer ended: `consumerCancelledByBroker`, the broker's channel
        ///   exception (`channelClosedByBroker`), or the error a connection without recovery (or whose recovery gave
        ///   up) failed with.
        public mutating func next() async throws -> AMQPTypedDelivery<Message>? {
            try await base.next().map { AMQPTypedDelivery(delivery: $0, codec: codec) }
        }
    }
}

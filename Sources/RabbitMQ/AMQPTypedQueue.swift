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
    public init(name: String, channel: AMQPChannel, codec: any AMQPMessageCodec = JSONMessageCodec()) {
        self.name = name
        self.channel = channel
        self.codec = codec
    }

    /// Declares the queue (`queue.declare`); durable by default.
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
    public func encode(_ message: Message) throws(AMQPError) -> Data {
        do {
            return try codec.encode(message)
        } catch {
            throw AMQPError(.encodingFailed, "could not encode \(Message.self): \(error)")
        }
    }

    /// Starts a consumer on the queue; see ``AMQPChannel/consume(queue:tag:noAck:exclusive:arguments:)``.
    public func consume(
        tag: String = "", noAck: Bool = false, exclusive: Bool = false, arguments: AMQPTable = [:]
    ) async throws -> AMQPTypedConsumer<Message> {
        let consumer = try await channel.consume(
            queue: name, tag: tag, noAck: noAck, exclusive: exclusive, arguments: arguments)
        return AMQPTypedConsumer(consumer: consumer, codec: codec)
    }

    /// Fetches one message (`basic.get`), or nil when the queue is empty.
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

    /// Acknowledges the delivery (`basic.ack`).
    public func ack() async throws { try await delivery.ack() }

    /// Refuses the delivery (`basic.nack`).
    public func nack(requeue: Bool = true) async throws { try await delivery.nack(requeue: requeue) }

    /// Rejects the delivery (`basic.reject`); with `requeue: false` it goes to the queue's dead-letter exchange.
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

    /// Cancels the consumer (`basic.cancel`).
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
        public mutating func next() async throws -> AMQPTypedDelivery<Message>? {
            try await base.next().map { AMQPTypedDelivery(delivery: $0, codec: codec) }
        }
    }
}

import Foundation

/// A message the broker delivered to a consumer (`basic.deliver`) or handed out for `basic.get` (`basic.get-ok`).
///
/// A delivery is a value copied out of rabbitmq-c's buffers: it can be kept, sent to other tasks, and acknowledged
/// from any of them. Unless it came from a consumer or a `get` with automatic acknowledgement, settle it exactly once
/// with ``ack(multiple:)``, ``nack(multiple:requeue:)`` or ``reject(requeue:)``; the broker redelivers it when the
/// channel closes while it is unsettled.
public struct AMQPDelivery: Sendable {
    /// The message body.
    public let body: Data
    /// The message properties (content type, headers, delivery mode, ...).
    public let properties: AMQPProperties
    /// The exchange the message was published to (empty for the default exchange).
    public let exchange: String
    /// The routing key the message was published with.
    public let routingKey: String
    /// The delivery tag, which identifies the delivery on its channel for acknowledgements.
    public let deliveryTag: UInt64
    /// Whether the broker delivered this message before (to this or another consumer) without it being acknowledged.
    public let isRedelivered: Bool
    /// The tag of the consumer the message was delivered to; `nil` for a message fetched with `basic.get`.
    public let consumerTag: String?
    /// For `basic.get`, how many messages the queue still held; `nil` for consumer deliveries.
    public let remainingMessageCount: UInt32?
    /// The channel the delivery came on; acknowledgements go back through it.
    public let channel: AMQPChannel
    /// Which connection of the channel the delivery came on (recovery replaces connections).
    let epoch: UInt64
    /// The queue the message came from: the consumer's, or the one `basic.get` read.
    let queue: String

    /// The delivery of `message`, which came on `channel` from `queue`.
    init(_ message: consuming InboundMessage, channel: AMQPChannel, queue: String) {
        body = message.body
        properties = message.properties
        exchange = message.exchange
        routingKey = message.routingKey
        deliveryTag = message.deliveryTag
        isRedelivered = message.isRedelivered
        consumerTag = message.consumerTag
        remainingMessageCount = message.remainingMessageCount
        self.channel = channel
        epoch = message.epoch
        self.queue = queue
    }

    /// Acknowledges the delivery (`basic.ack`).
    ///
    /// The acknowledgement is queued for the connection's thread and sent without an answer from the broker, so the
    /// call does not wait for the network.
    ///
    /// - Parameter multiple: Also acknowledge every earlier unacknowledged delivery of the channel.
    /// - Throws: ``AMQPError`` when the channel can no longer be used, and nothing is sent (the broker redelivers the
    ///   message): `channelClosed` once the channel was closed (by the application, or by the broker, whose reply
    ///   the error carries), or the error the connection ended with (`connectionClosed`, `connectionClosedByBroker`
    ///   or `connectionLost`). While the connection recovers, and afterwards for a delivery from the replaced
    ///   connection, the call neither throws nor sends anything (it is logged): the broker has already put the
    ///   message back.
    public func ack(multiple: Bool = false) async throws {
        try settle("ack") {
            try channel.acknowledge(deliveryTag: deliveryTag, multiple: multiple, kind: .ack, epoch: epoch)
        }
    }

    /// Refuses the delivery (`basic.nack`), requeueing it or letting the queue dead-letter or drop it.
    ///
    /// Like ``ack(multiple:)``, it is queued and sent without waiting for the broker.
    ///
    /// - Parameters:
    ///   - multiple: Also refuse every earlier unacknowledged delivery of the channel.
    ///   - requeue: Put the message back in its queue (`true`), or dead-letter/drop it (`false`).
    /// - Throws: ``AMQPError`` when the channel can no longer be used, as ``ack(multiple:)`` does: `channelClosed`,
    ///   or the connection's `connectionClosed`, `connectionClosedByBroker` or `connectionLost`. During a recovery,
    ///   and for a delivery from the connection it replaced, nothing is sent and nothing is thrown.
    public func nack(multiple: Bool = false, requeue: Bool = true) async throws {
        try settle("nack") {
            try channel.acknowledge(
                deliveryTag: deliveryTag, multiple: multiple, kind: .nack(requeue: requeue), epoch: epoch)
        }
    }

    /// Rejects the delivery (`basic.reject`).
    ///
    /// Like ``ack(multiple:)``, it is queued and sent without waiting for the broker.
    ///
    /// - Parameter requeue: Put the message back in its queue (`true`), or dead-letter/drop it (`false`).
    /// - Throws: ``AMQPError`` when the channel can no longer be used, as ``ack(multiple:)`` does: `channelClosed`,
    ///   or the connection's `connectionClosed`, `connectionClosedByBroker` or `connectionLost`. During a recovery,
    ///   and for a delivery from the connection it replaced, nothing is sent and nothing is thrown.
    public func reject(requeue: Bool = true) async throws {
        try settle("reject") {
            try channel.acknowledge(
                deliveryTag: deliveryTag, multiple: false, kind: .reject(requeue: requeue), epoch: epoch)
        }
    }
}

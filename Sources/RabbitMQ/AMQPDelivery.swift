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

    /// Acknowledges the delivery (`basic.ack`).
    ///
    /// - Parameter multiple: Also acknowledge every earlier unacknowledged delivery of the channel.
    /// - Throws: ``AMQPError`` with code `channelClosed` or `connectionClosed` when the channel is gone (the broker
    ///   then redelivers the message). After an automatic recovery, acknowledging a delivery from the old connection
    ///   does nothing (it is logged): the broker has already put the message back.
    public func ack(multiple: Bool = false) async throws {
        try channel.acknowledge(deliveryTag: deliveryTag, multiple: multiple, kind: .ack, epoch: epoch)
    }

    /// Refuses the delivery (`basic.nack`), requeueing it or letting the queue dead-letter or drop it.
    ///
    /// - Parameters:
    ///   - multiple: Also refuse every earlier unacknowledged delivery of the channel.
    ///   - requeue: Put the message back in its queue (`true`), or dead-letter/drop it (`false`).
    public func nack(multiple: Bool = false, requeue: Bool = true) async throws {
        try channel.acknowledge(deliveryTag: deliveryTag, multiple: multiple, kind: .nack(requeue: requeue), epoch: epoch)
    }

    /// Rejects the delivery (`basic.reject`).
    ///
    /// - Parameter requeue: Put the message back in its queue (`true`), or dead-letter/drop it (`false`).
    public func reject(requeue: Bool = true) async throws {
        try channel.acknowledge(deliveryTag: deliveryTag, multiple: false, kind: .reject(requeue: requeue), epoch: epoch)
    }
}

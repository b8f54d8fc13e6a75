/// Whether the broker keeps a message on disk: the AMQP `delivery-mode` property.
///
/// A persistent message survives a broker restart only if the queue it sits in is durable too.
public enum AMQPDeliveryMode: UInt8, Sendable, Hashable {
    /// The message lives in memory only and is lost when the broker restarts (`delivery-mode` 1).
    case transient = 1
    /// The message is written to disk and survives a broker restart in a durable queue (`delivery-mode` 2).
    case persistent = 2
}

import Foundation

/// A message the broker handed over (a consumer's delivery or a `basic.get`), as the I/O thread assembles it.
///
/// The caller's side turns it into an ``AMQPDelivery`` by adding the channel it came on; the I/O thread never holds
/// a public channel, so nothing it keeps alive keeps the application's connection alive.
struct InboundMessage: Sendable {
    let body: Data
    let properties: AMQPProperties
    let exchange: String
    let routingKey: String
    let deliveryTag: UInt64
    let isRedelivered: Bool
    let consumerTag: String?
    let remainingMessageCount: UInt32?
    /// Which connection of the channel the message came on (recovery replaces connections).
    let epoch: UInt64
}

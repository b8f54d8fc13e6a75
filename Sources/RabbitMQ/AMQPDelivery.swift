// Placeholder until the consumer work lands.
public struct AMQPDelivery: Sendable {}

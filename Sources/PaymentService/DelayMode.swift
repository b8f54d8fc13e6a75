/// How delayed retries are made.
public enum DelayMode: String, Sendable, CaseIterable {
    /// Use the delayed-message plugin if the broker has it, TTL queues otherwise.
    case auto
    /// The delayed-message plugin's `x-delayed-message` exchange; the consumer stops if the broker lacks it.
    case plugin
    /// Stock RabbitMQ: one queue per delay level with a TTL that dead-letters into `payment-reprocessor`.
    case ttl
}

/// How delayed retries are made.
public enum DelayMode: String, Sendable, CaseIterable {
    /// Use the delayed-message plugin if the broker has it, TTL queues otherwise; always TTL queues with
    /// quorum work queues (``PaymentTopology/QueueType/quorum``), since the plugin keeps delayed messages on one node.
    case auto
    /// The delayed-message plugin's `x-delayed-message` exchange; the consumer stops if the broker lacks it. With
    /// quorum work queues it logs a warning: a delayed message lives on one node and is lost with it.
    case plugin
    /// Stock RabbitMQ: one queue per delay level with a TTL that dead-letters into `payment-reprocessor`.
    case ttl
    /// For tests on brokers without the plugin: the plugin's whole path (the `payment-delayed` exchange with its
    /// `x-delayed-type` argument and binding, the `x-delay` and `payment-attempt` headers, the retry loop, parking),
    /// with `payment-delayed` declared as a stock `direct` exchange. Retries therefore come back at once: never use it
    /// in production.
    case pluginStandIn = "plugin-stand-in"
}

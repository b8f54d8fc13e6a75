extension AMQPConfiguration {
    /// Automatic recovery: when a connection fails (a socket error, missed heartbeats, or the broker closing it with
    /// 320 CONNECTION_FORCED, as on a restart or `rabbitmqctl close_connection`), the client connects again with a
    /// capped, jittered exponential backoff, declares again the exchanges, queues and bindings the application
    /// declared, reopens the channels with their prefetch and confirm mode, and restarts the consumers, whose
    /// sequences simply go on.
    ///
    /// What was in flight fails with a retriable ``AMQPError`` (`connectionLost`): publishes awaiting their confirm,
    /// and requests awaiting their reply. Publishes and requests made while the connection recovers fail the same
    /// way. Delivery tags of the old connection mean nothing on the new one: acknowledging such a delivery does
    /// nothing (it is logged), and the broker redelivers the message. Connection errors that the application caused
    /// (such as 503 for an unknown exchange type) are not recovered from.
    public struct Recovery: Sendable, Hashable {
        /// Whether the connection recovers by itself.
        public var isEnabled: Bool
        /// The pause before the first attempt; each later pause doubles, up to ``maxDelay``.
        public var initialDelay: Duration
        /// The longest pause between attempts.
        public var maxDelay: Duration
        /// How many attempts before giving up (the connection then ends with the original error); nil for no limit.
        public var maxAttempts: Int?

        /// Recovery on, with these limits (defaults: 0.5 s, 30 s, no attempt limit).
        ///
        /// - Parameters:
        ///   - initialDelay: The pause before the first attempt; each later pause is twice the one before.
        ///     Default `.milliseconds(500)`.
        ///   - maxDelay: The longest pause between two attempts. Default `.seconds(30)`.
        ///   - maxAttempts: How many attempts are made before the connection gives up and ends; `nil` (the default)
        ///     tries forever.
        /// - Returns: Settings with ``isEnabled`` set.
        public static func enabled(
            initialDelay: Duration = .milliseconds(500), maxDelay: Duration = .seconds(30), maxAttempts: Int? = nil
        ) -> Recovery {
            Recovery(isEnabled: true, initialDelay: initialDelay, maxDelay: maxDelay, maxAttempts: maxAttempts)
        }

        /// Recovery off: a failed connection ends, and everything waiting on it fails.
        public static let disabled = Recovery(
            isEnabled: false, initialDelay: .zero, maxDelay: .zero, maxAttempts: nil)

        /// The pause before attempt `attempt` (1-based): exponential, capped, and scaled by a random 50–100 % so that
        /// many clients of a restarted broker do not all come back at once.
        func delay(beforeAttempt attempt: Int, scale: Double = Double.random(in: 0.5...1.0)) -> Duration {
            let exponent = min(max(attempt - 1, 0), 30)
            let grown = initialDelay * (1 << exponent)
            let capped = min(grown, maxDelay)
            return capped * scale
        }
    }
}

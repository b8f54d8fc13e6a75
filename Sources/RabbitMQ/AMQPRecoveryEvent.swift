/// What automatic recovery is doing; read them from ``AMQPConnection/recoveryEvents``.
public enum AMQPRecoveryEvent: Sendable {
    /// The connection failed with `cause` and recovery began.
    case started(cause: AMQPError)
    /// Attempt `attempt` failed (every endpoint was tried: `error` names each one and why); the next one comes
    /// after `nextAttemptIn`.
    case attemptFailed(attempt: Int, error: AMQPError, nextAttemptIn: Duration)
    /// A server-named queue was declared again and got a new name; bindings and consumers now use it.
    case queueRenamed(from: String, to: String)
    /// The connection is back, with its topology, channels and consumers, after `attempts` attempts, on
    /// `endpoint` (one of ``AMQPConfiguration/endpoints``).
    case recovered(attempts: Int, endpoint: AMQPConfiguration.Endpoint)
    /// Recovery gave up (its attempt limit was reached); the connection has ended with this error.
    case gaveUp(AMQPError)
}

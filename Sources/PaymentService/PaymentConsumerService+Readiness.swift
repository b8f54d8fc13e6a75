import RabbitMQ
import Synchronization

extension PaymentConsumerService {
    /// Whether the instance should be given work now, and why: what a readiness probe reports.
    public struct Readiness: Sendable, Equatable, CustomStringConvertible {
        /// Whether the instance has caught up with the shared streams, consumes its queues, and neither of its
        /// connections is recovering.
        public let isReady: Bool
        /// Why, in a few words: "consuming", "starting: ...", "connection ... is recovering", "shutting down", ...
        public let reason: String

        /// `ready: <reason>` or `not ready: <reason>`.
        public var description: String { "\(isReady ? "ready" : "not ready"): \(reason)" }
    }

    /// Where the service is in its life; it only moves forward, so a late hook cannot make a stopping service
    /// look ready again.
    enum Phase: Int, Comparable, Sendable {
        /// Connecting, declaring the topology, reading the shared streams up to now.
        case starting
        /// Consuming the three queues.
        case consuming
        /// A graceful shutdown began: running handlers finish, no new delivery is taken.
        case stopping
        /// ``run()`` returned or threw.
        case stopped

        static func < (lhs: Phase, rhs: Phase) -> Bool { lhs.rawValue < rhs.rawValue }
    }

    /// What readiness is read from; `run()` keeps it up to date.
    struct Lifecycle: Sendable {
        var phase = Phase.starting
        /// The consuming and publishing connections, once both are open.
        var connections: [AMQPConnection] = []
    }

    /// Whether the instance should be given work now: only once it has caught up with the shared streams and
    /// consumes (the moment it logs "payment consumer running"), and not while either of its connections recovers,
    /// nor once a shutdown began.
    public var readiness: Readiness {
        let (phase, connections) = lifecycle.withLock { ($0.phase, $0.connections) }
        switch phase {
        case .starting:
            return Readiness(isReady: false, reason: "starting: connecting and catching up with the shared streams")
        case .stopping:
            return Readiness(isReady: false, reason: "shutting down")
        case .stopped:
            return Readiness(isReady: false, reason: "stopped")
        case .consuming:
            for connection in connections {
                let name = connection.configuration.connectionName ?? "connection"
                if connection.isRecovering {
                    return Readiness(isReady: false, reason: "connection \(name) is recovering")
                }
                if !connection.isOpen {
                    return Readiness(isReady: false, reason: "connection \(name) is closed")
                }
            }
            return Readiness(isReady: true, reason: "consuming")
        }
    }

    /// Whether the service still runs: true from its creation until ``run()`` returns or throws. A liveness probe
    /// reads it; unlike ``readiness`` it stays true while a connection recovers, since restarting would not help.
    public var isLive: Bool {
        lifecycle.withLock { $0.phase < .stopped }
    }

    /// Moves the service on to `phase`, unless it is already there or further.
    func enter(_ phase: Phase) {
        lifecycle.withLock { $0.phase = max($0.phase, phase) }
    }

    /// Records the connections whose recovery makes the service not ready.
    func watch(_ connections: [AMQPConnection]) {
        lifecycle.withLock { $0.connections = connections }
    }
}

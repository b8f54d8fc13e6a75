import Metrics
import Synchronization

/// The connection's metrics, through swift-metrics, named as the OpenTelemetry messaging conventions name them
/// (`messaging.client.sent.messages`, `messaging.client.consumed.messages`, `messaging.client.operation.duration`,
/// `messaging.process.duration`) plus the connection's own (`rabbitmq.client.*`).
///
/// Dimensions stay low-cardinality: system, operation, destination (exchange, routing key and queue names) and the
/// error type; never a message id or a delivery tag. The metric handles are made once per dimension set and kept,
/// so that recording a message costs a dictionary lookup, not a trip through the metrics factory.
final class ClientMetrics: Sendable {
    private struct Key: Hashable {
        let name: String
        let operation: String
        let destination: String
        let error: String?
    }

    private let counters = Mutex<[Key: Counter]>([:])
    private let timers = Mutex<[Key: Timer]>([:])
    private let connections = Meter(label: "rabbitmq.client.connections")
    private let channels = Meter(label: "rabbitmq.client.channels")
    private let blockedTime = Timer(label: "rabbitmq.client.blocked.duration", preferredDisplayUnit: .seconds)

    private static func dimensions(_ key: Key) -> [(String, String)] {
        var dimensions = [
            (MessagingSemantics.system, MessagingSemantics.systemValue),
            (MessagingSemantics.operationName, key.operation),
            (MessagingSemantics.destinationName, key.destination),
        ]
        if let error = key.error { dimensions.append((MessagingSemantics.errorType, error)) }
        return dimensions
    }

    private func counter(_ key: Key) -> Counter {
        counters.withLock { counters in
            if let counter = counters[key] { return counter }
            let counter = Counter(label: key.name, dimensions: Self.dimensions(key))
            counters[key] = counter
            return counter
        }
    }

    private func timer(_ key: Key) -> Timer {
        timers.withLock { timers in
            if let timer = timers[key] { return timer }
            let timer = Timer(label: key.name, dimensions: Self.dimensions(key), preferredDisplayUnit: .seconds)
            timers[key] = timer
            return timer
        }
    }

    /// A publish was handed over (or failed before); `error` is its `error.type` when it failed.
    func recordPublish(destination: String, duration: Duration, error: String?) {
        let sent = Key(
            name: "messaging.client.sent.messages", operation: "publish", destination: destination, error: error)
        counter(sent).increment()
        let timed = Key(
            name: "messaging.client.operation.duration", operation: "publish", destination: destination, error: error)
        timer(timed).record(duration: duration)
    }

    /// A message reached the application: `process` for a consumer's delivery, `receive` for `basic.get`.
    func recordConsumed(operation: String, destination: String) {
        let key = Key(
            name: "messaging.client.consumed.messages", operation: operation, destination: destination, error: nil)
        counter(key).increment()
    }

    /// How long a client operation took (`receive`, the settle operations); `error` when it failed.
    func recordOperation(_ operation: String, destination: String, duration: Duration, error: String?) {
        let key = Key(
            name: "messaging.client.operation.duration", operation: operation, destination: destination, error: error)
        timer(key).record(duration: duration)
    }

    /// How long the application handled a delivery, in ``AMQPDelivery/process(isolation:_:)``.
    func recordProcess(destination: String, duration: Duration, error: String?) {
        timer(Key(name: "messaging.process.duration", operation: "process", destination: destination, error: error))
            .record(duration: duration)
    }

    /// A connection opened (+1) or ended (-1).
    func connectionsChanged(by delta: Int) {
        Self.change(connections, by: delta)
    }

    /// A channel opened (+1) or closed (-1).
    func channelsChanged(by delta: Int) {
        Self.change(channels, by: delta)
    }

    /// A meter takes no negative increment: a fall is a decrement.
    private static func change(_ meter: Meter, by delta: Int) {
        if delta >= 0 { meter.increment(by: Double(delta)) } else { meter.decrement(by: Double(-delta)) }
    }

    /// A recovery event: `started`, `recovered`, `attempt_failed` or `gave_up`.
    func recordRecovery(_ outcome: String) {
        counter(Key(name: "rabbitmq.client.recoveries", operation: outcome, destination: "", error: nil)).increment()
    }

    /// The broker blocked publishing for `duration` (`connection.blocked` until `connection.unblocked`).
    func recordBlocked(for duration: Duration) {
        blockedTime.record(duration: duration)
    }
}

import Foundation
import PaymentService
import RabbitMQ

/// One outcome as it came out of the `payment-events` exchange.
struct ObservedOutcome: Sendable, CustomStringConvertible {
    let outcome: PaymentOutcome
    let routingKey: String
    let messageID: String?

    var description: String {
        "\(outcome.outcome.rawValue) \(outcome.paymentId) (client \(outcome.clientId), attempt \(outcome.attempts))"
            + (outcome.reason.map { ": \($0)" } ?? "")
    }
}

/// Watches a test's `payment-events` exchange through an exclusive queue bound with `payment.#`.
///
/// It has a connection of its own, so that its queue disappears when it closes.
final class OutcomeObserver: Sendable {
    let connection: AMQPConnection
    let channel: AMQPChannel
    let queue: String

    private init(connection: AMQPConnection, channel: AMQPChannel, queue: String) {
        self.connection = connection
        self.channel = channel
        self.queue = queue
    }

    /// Binds a new exclusive queue to `exchange`, which must exist, on the broker (and virtual host) at `url`.
    static func attach(to exchange: String, url: String = PaymentTestBroker.url) async throws -> OutcomeObserver {
        let connection = try await PaymentTestBroker.connect(name: "payment-tests-observer", url: url)
        do {
            let channel = try await connection.openChannel()
            let queue = try await channel.declareQueue(exclusive: true).name
            try await channel.bindQueue(queue, to: exchange, routingKey: "payment.#")
            return OutcomeObserver(connection: connection, channel: channel, queue: queue)
        } catch {
            try? await connection.close()
            throw error
        }
    }

    /// The next outcome if one is waiting, else nil.
    func poll() async throws -> ObservedOutcome? {
        guard let delivery = try await channel.get(queue: queue, noAck: true) else { return nil }
        let outcome: PaymentOutcome
        do {
            outcome = try JSONDecoder().decode(PaymentOutcome.self, from: delivery.body)
        } catch {
            throw UnexpectedEvent(
                detail: "an outcome that does not decode (\(error)): \(String(decoding: delivery.body, as: UTF8.self))")
        }
        guard delivery.routingKey == outcome.outcome.routingKey else {
            throw UnexpectedEvent(detail: "outcome \(outcome.outcome) routed with key \(delivery.routingKey)")
        }
        return ObservedOutcome(
            outcome: outcome, routingKey: delivery.routingKey, messageID: delivery.properties.messageID)
    }

    /// Waits for the next outcome, at most `seconds`.
    func next(seconds: Double = 10) async throws -> ObservedOutcome {
        try await eventually(seconds, "an outcome in \(queue)") { try await poll() }
    }

    /// Everything that arrives within `duration`: the grace period after which no more outcomes are expected.
    func drain(for duration: Duration) async throws -> [ObservedOutcome] {
        let deadline = ContinuousClock.now + duration
        var outcomes: [ObservedOutcome] = []
        while ContinuousClock.now < deadline {
            if let outcome = try await poll() {
                outcomes.append(outcome)
            } else {
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        return outcomes
    }

    /// Everything waiting now, without waiting for more.
    func takeAll() async throws -> [ObservedOutcome] {
        var outcomes: [ObservedOutcome] = []
        while let outcome = try await poll() { outcomes.append(outcome) }
        return outcomes
    }

    func close() async {
        try? await connection.close()
    }
}

/// An event that does not follow the outcome contract.
struct UnexpectedEvent: Error, CustomStringConvertible {
    let detail: String
    var description: String { "unexpected event: \(detail)" }
}

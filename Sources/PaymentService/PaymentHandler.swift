import Foundation
import Logging
import RabbitMQ

/// Handles one delivery of each of the three queues.
///
/// Every path ends with the delivery acknowledged, and only after what it caused (an outcome, a retry, a parked
/// copy) was confirmed by the broker; when that fails, the handler throws and leaves the delivery unacknowledged, so
/// the broker redelivers it. Nothing is lost and nothing loops: unreadable messages are parked, and a payment whose
/// client stays unknown is parked after the policy's last retry.
public final class PaymentHandler: Sendable {
    let registry: ClientRegistry
    let ledger: PaymentLedger
    let policy: RetryPolicy
    let topology: PaymentTopology
    let publisher: PaymentPublisher
    let metrics: PaymentMetrics
    let logger: Logger

    init(
        registry: ClientRegistry, ledger: PaymentLedger, policy: RetryPolicy, topology: PaymentTopology,
        publisher: PaymentPublisher, metrics: PaymentMetrics, logger: Logger
    ) {
        self.registry = registry
        self.ledger = ledger
        self.policy = policy
        self.topology = topology
        self.publisher = publisher
        self.metrics = metrics
        self.logger = logger
    }

    /// Registers the client of a `clients-processor` delivery.
    func handleRegistration(_ delivery: AMQPDelivery) async throws {
        metrics.record(.received)
        switch MessageValidation.registration(from: delivery.body) {
        case .failure(let problem):
            try await parkUnreadable(delivery, problem, from: topology.clientsQueue)
        case .success(let registration):
            if registry.register(registration.clientId) {
                metrics.record(.registered)
                logger.info("client registered", metadata: ["client.id": "\(registration.clientId)"])
            } else {
                logger.debug("client already registered", metadata: ["client.id": "\(registration.clientId)"])
            }
            try await delivery.ack()
        }
    }

    /// Processes, retries or parks a payment from `payment-processor` or `payment-reprocessor`.
    func handlePayment(_ delivery: AMQPDelivery, from queue: String) async throws {
        metrics.record(.received)
        let payment: PaymentRequest
        switch MessageValidation.payment(from: delivery.body) {
        case .failure(let problem):
            try await parkUnreadable(delivery, problem, from: queue)
            return
        case .success(let value):
            payment = value
        }
        guard let attempt = Self.attempt(of: delivery) else {
            try await parkUnreadable(
                delivery, UnreadableMessage("header \"\(PaymentTopology.attemptHeader)\" is not a positive integer"),
                from: queue)
            return
        }
        let metadata: Logger.Metadata = [
            "payment.id": "\(payment.paymentId)", "client.id": "\(payment.clientId)", "attempt": "\(attempt)",
        ]

        if case .settled(let outcome) = await ledger.claim(payment.paymentId) {
            metrics.record(.duplicateSkipped)
            logger.info("duplicate payment skipped", metadata: metadata.merging(["outcome": "\(outcome.rawValue)"]) { $1 })
            try await delivery.ack()
            return
        }
        do {
            if registry.contains(payment.clientId) {
                try await publisher.publish(
                    PaymentOutcome(
                        paymentId: payment.paymentId, clientId: payment.clientId, attempts: attempt, outcome: .processed))
                ledger.settle(payment.paymentId, as: .processed)
                metrics.record(.processed)
                logger.info("payment processed", metadata: metadata)
            } else {
                switch policy.decide(attempt: attempt, clientID: payment.clientId) {
                case .retry(let nextAttempt, let delay):
                    try await publisher.scheduleRetry(of: delivery, attempt: nextAttempt, delay: delay)
                    ledger.release(payment.paymentId)
                    metrics.record(.retried)
                    logger.info(
                        "payment retry scheduled",
                        metadata: metadata.merging([
                            "next_attempt": "\(nextAttempt)", "delay_ms": "\(PaymentTopology.milliseconds(delay))",
                        ]) { $1 })
                case .park(let reason):
                    try await publisher.park(delivery, reason: reason, from: queue)
                    try await publisher.publish(
                        PaymentOutcome(
                            paymentId: payment.paymentId, clientId: payment.clientId, attempts: attempt,
                            outcome: .parked, reason: reason))
                    ledger.settle(payment.paymentId, as: .parked)
                    metrics.record(.parked)
                    logger.warning("payment parked", metadata: metadata.merging(["reason": "\(reason)"]) { $1 })
                }
            }
        } catch {
            ledger.release(payment.paymentId)
            throw error
        }
        try await delivery.ack()
    }

    /// The attempt a payment delivery is: 1 without our header, the header's value otherwise; nil when the header
    /// is not a positive integer. Never read from `x-delay`, which some plugin versions negate.
    static func attempt(of delivery: AMQPDelivery) -> Int? {
        guard let header = delivery.properties.headers?[PaymentTopology.attemptHeader] else { return 1 }
        guard let attempt = header.intValue, attempt >= 1 else { return nil }
        return attempt
    }

    private func parkUnreadable(_ delivery: AMQPDelivery, _ problem: UnreadableMessage, from queue: String)
        async throws
    {
        try await publisher.park(delivery, reason: problem.reason, from: queue)
        metrics.record(.unreadable)
        logger.warning(
            "unreadable message parked",
            metadata: [
                "reason": "\(problem.reason)", "queue": "\(queue)", "delivery_tag": "\(delivery.deliveryTag)",
                "redelivered": "\(delivery.isRedelivered)", "message_id": "\(delivery.properties.messageID ?? "-")",
                "body_bytes": "\(delivery.body.count)",
            ])
        try await delivery.ack()
    }
}

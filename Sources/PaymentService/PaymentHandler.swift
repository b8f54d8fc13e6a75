import Foundation
import Logging
import RabbitMQ

/// How long a payment of an unknown client is held, unacknowledged, waiting for its registration, before it falls
/// back to a delayed retry.
public struct HoldPolicy: Sendable, Equatable {
    /// The longest hold; zero turns holding off.
    public var time: Duration
    /// The most payments held at once by this instance; must stay below the prefetch, or held payments would take
    /// every delivery slot.
    public var maxHeld: Int

    /// Creates a hold policy (default: up to 800 payments for up to 5 s).
    public init(time: Duration = .seconds(5), maxHeld: Int = 800) {
        self.time = time
        self.maxHeld = maxHeld
    }

    /// Holding turned off: every payment of an unknown client is retried with a delay at once.
    public static let off = HoldPolicy(time: .zero, maxHeld: 0)
}

/// Handles one delivery of each of the three queues.
///
/// Every path ends with the delivery acknowledged, and only after what it caused (an outcome, a retry, a parked
/// copy, a registration in the clients stream) was confirmed by the broker; when that fails, the handler throws and
/// leaves the delivery unacknowledged, so the broker redelivers it. Nothing is lost and nothing loops: unreadable
/// messages are parked, and a payment whose client stays unknown is parked after the policy's last retry.
public final class PaymentHandler: Sendable {
    let registry: ClientRegistry
    let ledger: PaymentLedger
    let policy: RetryPolicy
    let hold: HoldPolicy
    let topology: PaymentTopology
    let publisher: PaymentPublisher
    let clientsLog: StreamLog
    let outcomesLog: StreamLog
    let metrics: PaymentMetrics
    let logger: Logger

    init(
        registry: ClientRegistry, ledger: PaymentLedger, policy: RetryPolicy, hold: HoldPolicy,
        topology: PaymentTopology, publisher: PaymentPublisher, clientsLog: StreamLog, outcomesLog: StreamLog,
        metrics: PaymentMetrics, logger: Logger
    ) {
        self.registry = registry
        self.ledger = ledger
        self.policy = policy
        self.hold = hold
        self.topology = topology
        self.publisher = publisher
        self.clientsLog = clientsLog
        self.outcomesLog = outcomesLog
        self.metrics = metrics
        self.logger = logger
    }

    /// Learns a registration from the clients stream (this instance's or another's), waking held payments.
    func learnRegistration(_ entry: AMQPDelivery) {
        guard case .success(let registration) = MessageValidation.registration(from: entry.body) else {
            logger.warning("unreadable entry in the clients stream skipped", metadata: ["stream": "\(clientsLog.name)"])
            return
        }
        registry.register(registration.clientId)
    }

    /// Learns an outcome from the outcomes stream (this instance's or another's).
    func learnOutcome(_ entry: AMQPDelivery) {
        guard let outcome = try? JSONDecoder().decode(PaymentOutcome.self, from: entry.body) else {
            logger.warning("unreadable entry in the outcomes stream skipped", metadata: ["stream": "\(outcomesLog.name)"])
            return
        }
        ledger.settle(outcome.paymentId, as: outcome.outcome)
    }

    /// Registers the client of a `clients-processor` delivery.
    func handleRegistration(_ delivery: AMQPDelivery) async throws {
        metrics.record(.received)
        switch MessageValidation.registration(from: delivery.body) {
        case .failure(let problem):
            try await parkUnreadable(delivery, problem, from: topology.clientsQueue)
        case .success(let registration):
            let known = registry.contains(registration.clientId)
            // Into the shared stream first: every instance, present or future, learns the client from there.
            try await clientsLog.append(
                try JSONEncoder().encode(registration),
                properties: AMQPProperties(
                    contentType: "application/json", deliveryMode: .persistent, messageID: registration.clientId))
            registry.register(registration.clientId)
            if known {
                logger.debug("client registered again", metadata: ["client.id": "\(registration.clientId)"])
            } else {
                metrics.record(.registered)
                logger.info("client registered", metadata: ["client.id": "\(registration.clientId)"])
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

        if delivery.isRedelivered {
            // Another instance may have settled this payment just before it died: read the outcomes stream up to
            // now before deciding, so that the payment is not processed twice.
            try await outcomesLog.sync()
        }
        if case .settled(let outcome) = await ledger.claim(payment.paymentId) {
            try await skipDuplicate(delivery, outcome: outcome, metadata: metadata)
            return
        }
        do {
            var known = registry.contains(payment.clientId)
            if !known && hold.time > .zero {
                switch await registry.waitForRegistration(
                    of: payment.clientId, timeout: hold.time, limit: hold.maxHeld)
                {
                case .registered:
                    known = true
                    metrics.record(.woken)
                    logger.debug("held payment woken by its registration", metadata: metadata)
                case .expired:
                    break
                case .cancelled:
                    // Shutting down: leave it unacknowledged; closing the channel hands it back to the broker.
                    ledger.release(payment.paymentId)
                    return
                }
            }
            if known, let outcome = ledger.outcome(of: payment.paymentId) {
                // Settled by another instance while this one held its copy.
                ledger.release(payment.paymentId)
                try await skipDuplicate(delivery, outcome: outcome, metadata: metadata)
                return
            }
            if known {
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

    private func skipDuplicate(
        _ delivery: AMQPDelivery, outcome: PaymentOutcome.Kind, metadata: Logger.Metadata
    ) async throws {
        metrics.record(.duplicateSkipped)
        logger.info("duplicate payment skipped", metadata: metadata.merging(["outcome": "\(outcome.rawValue)"]) { $1 })
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

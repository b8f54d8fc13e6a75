import Foundation
import Logging
import RabbitMQ
import Synchronization
import Tracing

/// Handles one delivery of each of the three queues: the one place that carries out a ``PaymentDecision``.
///
/// Every path ends with the delivery acknowledged, and only after what it caused (an outcome and its settlement, a
/// retry, a parked copy, a registration in the clients stream) was confirmed by the broker; when that fails, the
/// handler throws and leaves the delivery unacknowledged, so the broker redelivers it. Nothing is lost and nothing
/// loops: unreadable messages are parked, and a payment whose client stays unknown is parked after the last retry.
final class PaymentHandler: Sendable {
    let registry: ClientRegistry
    let claims: ClaimBoard
    let claimsLog: StreamAppender<ClaimRecord>
    let registrationsLog: StreamAppender<String>
    let earlierOutcomes: EarlierOutcomeSearch
    let policy: RetryPolicy
    let hold: HoldPolicy
    let lease: Duration
    let topology: PaymentTopology
    let publisher: PaymentPublisher
    let metrics: PaymentMetrics
    let logger: Logger
    /// Makes claim ids unique across instances: a random instance id and a counter.
    private let instanceID = UUID().uuidString.prefix(8).lowercased()
    private let claimCounter = Atomic<UInt64>(0)

    /// How long before its lease ends a claim's holder stops starting an outcome: a takeover can then not miss it.
    static let leaseMargin = Duration.seconds(3)

    init(
        registry: ClientRegistry, claims: ClaimBoard, claimsLog: StreamAppender<ClaimRecord>,
        registrationsLog: StreamAppender<String>, earlierOutcomes: EarlierOutcomeSearch, policy: RetryPolicy,
        hold: HoldPolicy, lease: Duration, topology: PaymentTopology, publisher: PaymentPublisher,
        metrics: PaymentMetrics, logger: Logger
    ) {
        self.registry = registry
        self.claims = claims
        self.claimsLog = claimsLog
        self.registrationsLog = registrationsLog
        self.earlierOutcomes = earlierOutcomes
        self.policy = policy
        self.hold = hold
        self.lease = lease
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
            let known = registry.contains(registration.clientId)
            // Into the shared stream first: every instance, present or future, learns the client from there.
            try await registrationsLog.append([registration.clientId])
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

    /// Processes, retries, parks or skips a payment from `payment-processor` or `payment-reprocessor`, step by
    /// step as ``PaymentDecision/decide(_:policy:hold:)`` says.
    func handlePayment(_ delivery: AMQPDelivery, from queue: String, span: any Span) async throws {
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
        span.updateAttributes { attributes in
            attributes["payment.id"] = payment.paymentId
            attributes["payment.client_id"] = payment.clientId
            attributes["payment.attempt"] = attempt
        }
        var handling = PaymentHandling(
            payment: payment, delivery: delivery, queue: queue,
            facts: PaymentFacts(
                attempt: attempt, clientID: payment.clientId, settled: claims.outcome(of: payment.paymentId),
                clientKnown: registry.contains(payment.clientId)))
        do {
            try await run(&handling)
        } catch {
            if let claim = handling.heldClaim {
                if handling.outcomeMayBeOut {
                    // The outcome's publish failed without an answer (a lost connection): the broker may have
                    // routed it. Releasing would let the next copy process the payment again; left to expire, the
                    // claim makes that copy look in the outcomes stream first.
                    logger.warning(
                        "outcome publish unconfirmed; the claim is left to expire",
                        metadata: ["payment.id": "\(payment.paymentId)", "error": "\(error)"])
                } else {
                    // Let another copy go ahead now rather than after the lease; if this append fails too, the
                    // lease ends the claim anyway.
                    try? await claimsLog.append([.release(paymentID: payment.paymentId, claimID: claim.claimID)])
                }
            }
            throw error
        }
    }

    /// One delivery's handling in progress.
    private struct PaymentHandling {
        let payment: PaymentRequest
        let delivery: AMQPDelivery
        let queue: String
        var facts: PaymentFacts
        /// This delivery's winning claim, once it has one.
        var heldClaim: ClaimArbiter.Holder?
        /// When the first claim of the line of expired claims this delivery's claim took over was made.
        var replacedClaimAt: Int64?
        /// Whether the outcome's publish has started: from then on the outcome may exist even if the publish fails.
        var outcomeMayBeOut = false
        var metadata: Logger.Metadata {
            ["payment.id": "\(payment.paymentId)", "client.id": "\(payment.clientId)", "attempt": "\(facts.attempt)"]
        }
    }

    /// The most non-terminal steps one delivery takes: far more than any real sequence needs (each wait for another
    /// claim lasts up to a lease), and a bound on a loop that a bug could otherwise make endless.
    private static let maximumSteps = 64

    private func run(_ handling: inout PaymentHandling) async throws {
        for _ in 0..<Self.maximumSteps {
            let decision = PaymentDecision.decide(handling.facts, policy: policy, hold: hold)
            switch decision {
            case .hold(let time):
                handling.facts.holdTried = true
                let clientID = handling.payment.clientId
                let woken = await withSpan("hold payment", ofKind: .internal) { span in
                    let woken = await registry.waitForRegistration(of: clientID, timeout: time, limit: hold.maxHeld)
                    span.attributes["payment.hold.outcome"] = "\(woken)"
                    return woken
                }
                switch woken {
                case .registered:
                    metrics.record(.woken)
                    logger.debug("held payment woken by its registration", metadata: handling.metadata)
                case .expired:
                    break
                case .cancelled:
                    // Shutting down: leave it unacknowledged; closing the channel hands it back to the broker.
                    return
                }
                refresh(&handling)
            case .claim:
                try await claim(&handling)
            case .waitForHolder(let time):
                try await claims.waitUntilFreed(handling.payment.paymentId, timeout: time)
                handling.facts.claim = .unclaimed
                refresh(&handling)
            case .lookForEarlierOutcome:
                try await lookForEarlierOutcome(&handling)
            case .skipDuplicate, .retry, .process, .park:
                try await finish(&handling, with: decision)
                return
            }
        }
        throw AMQPError(.timeout, "payment \(handling.payment.paymentId) took over \(Self.maximumSteps) steps")
    }

    /// Reads again what other deliveries may have changed meanwhile.
    private func refresh(_ handling: inout PaymentHandling) {
        handling.facts.clientKnown = registry.contains(handling.payment.clientId)
        if handling.facts.settled == nil { handling.facts.settled = claims.outcome(of: handling.payment.paymentId) }
    }

    private func claim(_ handling: inout PaymentHandling) async throws {
        let claimID = "\(instanceID)-\(claimCounter.add(1, ordering: .relaxed).newValue)"
        let at = ClaimBoard.now()
        let paymentID = handling.payment.paymentId
        claims.expect(claimID)
        do {
            try await claimsLog.append([.claim(paymentID: paymentID, claimID: claimID, at: at)])
        } catch {
            claims.abandon(claimID)
            throw error
        }
        switch try await claims.verdict(on: claimID, timeout: .seconds(30)) {
        case .settled(let outcome):
            handling.facts.settled = outcome
        case .heldBy(let holder):
            let expiresAt = holder.at + Int64(PaymentTopology.milliseconds(lease))
            handling.facts.claim = .heldByAnother(expiresIn: .milliseconds(max(0, expiresAt - ClaimBoard.now())))
            logger.debug("payment claimed by another copy; waiting", metadata: handling.metadata)
        case .won(let replaced):
            handling.heldClaim = ClaimArbiter.Holder(claimID: claimID, at: at)
            handling.facts.claim = .won(replacedExpiredClaim: replaced != nil)
            handling.replacedClaimAt = replaced?.lineStart
        }
        refresh(&handling)
    }

    /// After taking over an expired claim: its holder may have published the outcome and died before recording
    /// the settlement. The outcomes stream says.
    private func lookForEarlierOutcome(_ handling: inout PaymentHandling) async throws {
        let since = handling.replacedClaimAt ?? ClaimBoard.now()
        let found = try await earlierOutcomes.outcome(of: handling.payment.paymentId, since: since)
        metrics.record(.claimTakenOver)
        logger.warning(
            "took over the expired claim of another instance",
            metadata: handling.metadata.merging(["earlier_outcome": "\(found?.rawValue ?? "none")"]) { $1 })
        handling.facts.claim = .won(replacedExpiredClaim: false)
        if let found { handling.facts.settled = found }
    }

    /// Carries out a terminal decision, then acknowledges the delivery and records the settlement, if any.
    private func finish(_ handling: inout PaymentHandling, with decision: PaymentDecision) async throws {
        let payment = handling.payment
        // Built only when a line is logged: this runs for every payment, and a service logging at warning logs none.
        let facts = handling.facts
        var metadata: Logger.Metadata {
            ["payment.id": "\(payment.paymentId)", "client.id": "\(payment.clientId)", "attempt": "\(facts.attempt)"]
        }
        var settlement: (claim: ClaimArbiter.Holder, outcome: PaymentOutcome.Kind)?
        switch decision {
        case .skipDuplicate(let outcome):
            if let claim = handling.heldClaim {
                // A taken-over claim whose outcome was found: record the settlement the dead holder could not.
                settlement = (claim, outcome)
            }
            metrics.record(.duplicateSkipped)
            logger.info("duplicate payment skipped", metadata: metadata.merging(["outcome": "\(outcome.rawValue)"]) { $1 })
        case .retry(let nextAttempt, let delay):
            try await publisher.scheduleRetry(of: handling.delivery, attempt: nextAttempt, delay: delay)
            if let claim = handling.heldClaim {
                try? await claimsLog.append([.release(paymentID: payment.paymentId, claimID: claim.claimID)])
                handling.heldClaim = nil
            }
            metrics.record(.retried)
            logger.info(
                "payment retry scheduled",
                metadata: metadata.merging([
                    "next_attempt": "\(nextAttempt)", "delay_ms": "\(PaymentTopology.milliseconds(delay))",
                ]) { $1 })
        case .process:
            let claim = try checkLease(handling)
            handling.outcomeMayBeOut = true
            try await publisher.publish(
                PaymentOutcome(
                    paymentId: payment.paymentId, clientId: payment.clientId, attempts: handling.facts.attempt,
                    outcome: .processed),
                settling: handling.delivery)
            settlement = (claim, .processed)
            metrics.record(.processed)
            logger.info("payment processed", metadata: metadata)
        case .park(let reason):
            let claim = try checkLease(handling)
            try await publisher.park(handling.delivery, reason: reason, from: handling.queue)
            handling.outcomeMayBeOut = true
            try await publisher.publish(
                PaymentOutcome(
                    paymentId: payment.paymentId, clientId: payment.clientId, attempts: handling.facts.attempt,
                    outcome: .parked, reason: reason),
                settling: handling.delivery)
            settlement = (claim, .parked)
            metrics.record(.parked)
            logger.warning("payment parked", metadata: metadata.merging(["reason": "\(reason)"]) { $1 })
        case .hold, .claim, .waitForHolder, .lookForEarlierOutcome:
            preconditionFailure("\(decision) is not a terminal decision")
        }
        guard let settlement else {
            try await handling.delivery.ack()
            return
        }
        // The outcome is confirmed: from here on the claim is this delivery's record, not a lock to give back. The
        // settlement and the acknowledgement go out together, since the delivery's prefetch slot need not wait for
        // the settlement's confirm; the handler still ends only once both are done.
        handling.heldClaim = nil
        async let recorded: Void = recordSettlement(of: payment, claim: settlement.claim, as: settlement.outcome)
        try await handling.delivery.ack()
        await recorded
    }

    /// Records in the claims stream that the payment has its outcome. A failure loses no outcome and makes none
    /// twice: other copies wait for the claim's lease, take it over and find the outcome in the outcomes stream.
    private func recordSettlement(of payment: PaymentRequest, claim: ClaimArbiter.Holder, as outcome: PaymentOutcome.Kind)
        async
    {
        do {
            try await claimsLog.append([
                .settle(paymentID: payment.paymentId, claimID: claim.claimID, outcome: outcome, at: ClaimBoard.now())
            ])
        } catch {
            logger.warning(
                "settlement not recorded; copies of the payment will wait for the claim's lease",
                metadata: ["payment.id": "\(payment.paymentId)", "error": "\(error)"])
        }
    }

    /// The delivery's claim, if it may still start an outcome: a claim near the end of its lease could be taken
    /// over while the outcome is on its way, and the taker would not see it.
    ///
    /// - Throws: ``AMQPError`` `timeout` (retriable: the delivery goes back to its queue) when the lease is too
    ///   far gone.
    private func checkLease(_ handling: PaymentHandling) throws -> ClaimArbiter.Holder {
        guard let claim = handling.heldClaim else {
            throw AMQPError(.libraryError, "payment \(handling.payment.paymentId) has no claim to act on")
        }
        let heldFor = Duration.milliseconds(ClaimBoard.now() - claim.at)
        guard heldFor < lease - Self.leaseMargin else {
            throw AMQPError(
                .timeout, "the claim on payment \(handling.payment.paymentId) is \(heldFor) old, too near its lease")
        }
        return claim
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

/// What is known about one delivery of a payment at one step of its handling: the plain inputs of
/// ``PaymentDecision/decide(_:policy:hold:)``.
struct PaymentFacts: Sendable, Equatable {
    /// How far this delivery's claim on the payment has got.
    enum ClaimProgress: Sendable, Equatable {
        /// Not claimed (yet, or again after waiting for another claim).
        case unclaimed
        /// Another instance's live claim holds the payment; it expires in `expiresIn` unless settled or released.
        case heldByAnother(expiresIn: Duration)
        /// This delivery holds the payment. `replacedExpiredClaim`: it took over a claim whose holder never settled
        /// it (presumably died), and has not yet looked for an outcome that holder may have published.
        case won(replacedExpiredClaim: Bool)
    }

    /// The attempt this delivery is (1 for the first delivery).
    var attempt: Int
    /// The payment's client.
    var clientID: String
    /// The payment's outcome, when it has one inside the dedupe window.
    var settled: PaymentOutcome.Kind?
    /// Whether the client is registered.
    var clientKnown: Bool
    /// Whether this delivery has already been held for its registration.
    var holdTried: Bool
    /// The claim's progress.
    var claim: ClaimProgress

    /// Creates the facts of a delivery.
    ///
    /// - Parameters:
    ///   - attempt: The attempt this delivery is (1 for the first delivery).
    ///   - clientID: The payment's client.
    ///   - settled: The payment's outcome inside the dedupe window, if it has one. Default `nil`.
    ///   - clientKnown: Whether the client is registered.
    ///   - holdTried: Whether the delivery was already held for its registration. Default `false`.
    ///   - claim: How far the delivery's claim has got. Default ``ClaimProgress/unclaimed``.
    init(
        attempt: Int, clientID: String, settled: PaymentOutcome.Kind? = nil, clientKnown: Bool,
        holdTried: Bool = false, claim: ClaimProgress = .unclaimed
    ) {
        self.attempt = attempt
        self.clientID = clientID
        self.settled = settled
        self.clientKnown = clientKnown
        self.holdTried = holdTried
        self.claim = claim
    }
}

/// The next step for a payment delivery. Terminal steps end with the delivery acknowledged; the others gather a new
/// fact and ask again.
enum PaymentDecision: Sendable, Equatable {
    /// The payment already has this outcome: acknowledge the copy, publish nothing (terminal).
    case skipDuplicate(PaymentOutcome.Kind)
    /// Wait up to this long for the client's registration, then decide again.
    case hold(upTo: Duration)
    /// Publish the payment again, to come back as attempt `nextAttempt` after `delay` (terminal).
    case retry(nextAttempt: Int, delay: Duration)
    /// Append a claim to the claims stream and wait for its verdict, then decide again.
    case claim
    /// Wait until another instance's claim is settled, released or expired (at most this long), then decide again.
    case waitForHolder(upTo: Duration)
    /// Look in the outcomes stream for an outcome the expired claim's holder published, then decide again.
    case lookForEarlierOutcome
    /// Publish `payment.processed` (terminal).
    case process
    /// Park the payment with this reason and publish `payment.parked` (terminal).
    case park(reason: String)

    /// Whether the step ends the handling of the delivery.
    var isTerminal: Bool {
        switch self {
        case .skipDuplicate, .retry, .process, .park: true
        case .hold, .claim, .waitForHolder, .lookForEarlierOutcome: false
        }
    }

    /// The next step for a payment, from the facts alone.
    ///
    /// Only an outcome (processed or parked) needs the claim: retries publish nothing final, so any number of
    /// copies may retry side by side, and the claim is taken once the client is known or the attempts are spent.
    ///
    /// - Parameters:
    ///   - facts: What is known about the delivery now.
    ///   - policy: When to retry and when to park a payment of an unknown client.
    ///   - hold: Whether, and how long, a payment of an unknown client is held first.
    /// - Returns: The next step; a step that is not ``isTerminal`` gathers a new fact, and the caller decides again.
    static func decide(_ facts: PaymentFacts, policy: RetryPolicy, hold: HoldPolicy) -> PaymentDecision {
        if let settled = facts.settled { return .skipDuplicate(settled) }
        var parkReason: String?
        if !facts.clientKnown {
            if !facts.holdTried && hold.time > .zero && facts.claim == .unclaimed {
                return .hold(upTo: hold.time)
            }
            switch policy.decide(attempt: facts.attempt, clientID: facts.clientID) {
            case .retry(let nextAttempt, let delay):
                return .retry(nextAttempt: nextAttempt, delay: delay)
            case .park(let reason):
                parkReason = reason
            }
        }
        switch facts.claim {
        case .unclaimed:
            return .claim
        case .heldByAnother(let expiresIn):
            // Never a zero wait: a claim judged expired by its own clock may still be live by the stream's.
            return .waitForHolder(upTo: max(expiresIn, .milliseconds(50)))
        case .won(replacedExpiredClaim: true):
            return .lookForEarlierOutcome
        case .won(replacedExpiredClaim: false):
            if let parkReason { return .park(reason: parkReason) }
            return .process
        }
    }
}

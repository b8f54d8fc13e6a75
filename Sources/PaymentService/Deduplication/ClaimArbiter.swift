/// Decides, from the claims stream alone, which claim of a payment may produce its outcome.
///
/// Every instance feeds the same records in the same (stream) order into its own arbiter, and the arbiter looks at
/// nothing else (no clock, no local state), so every instance reaches the same verdict for every claim: that is what
/// makes "the first claim wins" hold across instances without any other coordination.
///
/// The rules, for a claim of payment *p* made at time *t*:
/// 1. *p* was settled at a time within `window` before *t* → ``Verdict/settled(_:)``: the copy is a duplicate.
/// 2. Another claim of *p*, made less than `lease` before *t*, is neither settled nor released →
///    ``Verdict/heldBy(_:)``: wait for it.
/// 3. Otherwise the claim wins; if it replaces an expired claim (its holder presumably died),
///    ``Verdict/won(replacing:)`` names that claim, so the winner can look for an outcome the holder (or any holder
///    it had itself taken over from, back to ``Holder/lineStart``) published before it died.
struct ClaimArbiter: Sendable {
    /// A claim that holds a payment.
    struct Holder: Sendable, Equatable {
        /// The claim's id.
        var claimID: String
        /// When it was made (milliseconds since 1970, on its writer's clock).
        var at: Int64
        /// When the first claim of the unbroken line of takeovers that ends in this one was made: each holder in the
        /// line may have published the outcome and died before settling, so a winner that takes the line over
        /// looks for an outcome from here, not from the last holder's claim (a payment was processed twice under
        /// FaultTests when the second of two dead holders had taken over from the first).
        var lineStart: Int64

        /// Creates a holder.
        ///
        /// - Parameters:
        ///   - claimID: The claim's id.
        ///   - at: When the claim was made, in milliseconds since 1970 on its writer's clock.
        ///   - lineStart: When the first claim of its line of takeovers was made; nil when it took nothing over.
        init(claimID: String, at: Int64, lineStart: Int64? = nil) {
            self.claimID = claimID
            self.at = at
            self.lineStart = lineStart ?? at
        }
    }

    /// The verdict on one claim.
    enum Verdict: Sendable, Equatable {
        /// The claim holds the payment; `replacing` is the expired claim it took over, if any.
        case won(replacing: Holder?)
        /// The payment already has this outcome: the copy is a duplicate.
        case settled(PaymentOutcome.Kind)
        /// Another live claim holds the payment.
        case heldBy(Holder)
    }

    /// What applying a record changed.
    enum Change: Sendable, Equatable {
        /// A claim got its verdict.
        case verdict(claimID: String, Verdict)
        /// A payment was settled or its claim released: whoever waits for it should look again.
        case freed(paymentID: String)
        /// Nothing anyone waits for.
        case none
    }

    /// An outcome and when it was recorded, packed in 8 bytes (the time shifted left, the outcome in the low bit):
    /// with a million settlements in the window, every byte per entry counts.
    private struct Settlement {
        private let packed: Int64

        init(outcome: PaymentOutcome.Kind, at: Int64) {
            packed = at << 1 | (outcome == .parked ? 1 : 0)
        }

        var outcome: PaymentOutcome.Kind { packed & 1 == 1 ? .parked : .processed }
        var at: Int64 { packed >> 1 }
    }

    /// How long a claim holds its payment, in milliseconds.
    let leaseMilliseconds: Int64
    /// How long a settlement makes later copies duplicates, in milliseconds.
    let windowMilliseconds: Int64
    /// Keyed by digests of payment ids, which keep a million settlements in tens of megabytes.
    private var settlements: [IDDigest: Settlement] = [:]
    private var holders: [IDDigest: Holder] = [:]

    /// Creates an empty arbiter.
    ///
    /// Every instance must use the same values, or their verdicts differ.
    ///
    /// - Parameters:
    ///   - leaseMilliseconds: How long a claim holds its payment unless settled or released.
    ///   - windowMilliseconds: How long a settlement makes later claims of the payment duplicates.
    init(leaseMilliseconds: Int64, windowMilliseconds: Int64) {
        self.leaseMilliseconds = leaseMilliseconds
        self.windowMilliseconds = windowMilliseconds
    }

    /// How many settled payments and live claims it remembers.
    var count: (settled: Int, held: Int) { (settlements.count, holders.count) }

    /// Applies the next record of the stream.
    ///
    /// - Parameter record: The record, in stream order; feeding records in another order gives other verdicts.
    /// - Returns: The verdict on a claim record; for a settlement or a release of the current holder,
    ///   ``Change/freed(paymentID:)``; ``Change/none`` for a release of a claim that no longer holds the payment.
    mutating func apply(_ record: ClaimRecord) -> Change {
        switch record {
        case .claim(let paymentID, let claimID, let at):
            let key = IDDigest(paymentID)
            if let settlement = settlements[key], at - settlement.at <= windowMilliseconds {
                return .verdict(claimID: claimID, .settled(settlement.outcome))
            }
            let previous = holders[key]
            if let previous, at - previous.at < leaseMilliseconds {
                return .verdict(claimID: claimID, .heldBy(previous))
            }
            // A release or a settlement ends a line (neither leaves an outcome behind unsettled); an expired
            // holder continues it.
            holders[key] = Holder(claimID: claimID, at: at, lineStart: previous?.lineStart)
            return .verdict(claimID: claimID, .won(replacing: previous))
        case .settle(let paymentID, _, let outcome, let at):
            let key = IDDigest(paymentID)
            settlements[key] = Settlement(outcome: outcome, at: at)
            holders[key] = nil
            return .freed(paymentID: paymentID)
        case .release(let paymentID, let claimID):
            let key = IDDigest(paymentID)
            guard holders[key]?.claimID == claimID else { return .none }
            holders[key] = nil
            return .freed(paymentID: paymentID)
        }
    }

    /// The outcome of a payment settled no earlier than `window` before `now` (milliseconds since 1970).
    ///
    /// - Parameters:
    ///   - paymentID: The payment's id.
    ///   - now: The moment to judge from, in milliseconds since 1970.
    /// - Returns: The outcome, or `nil` when the payment has none inside the window.
    func outcome(of paymentID: String, now: Int64) -> PaymentOutcome.Kind? {
        guard let settlement = settlements[IDDigest(paymentID)], now - settlement.at <= windowMilliseconds else {
            return nil
        }
        return settlement.outcome
    }

    /// The claim that holds a payment, if any.
    ///
    /// - Parameter paymentID: The payment's id.
    /// - Returns: The latest winning claim, unless it was settled, released or forgotten; it may have expired.
    func holder(of paymentID: String) -> Holder? {
        holders[IDDigest(paymentID)]
    }

    /// Forgets settlements older than the window and claims older than the lease, as of `now`: they can no longer
    /// decide the verdict of a claim made from now on. Keeps memory bound by the window, not by history.
    ///
    /// A minute of slack keeps every instance's verdicts equal even when their clocks differ by less than that: a
    /// claim written by a clock behind `now` still finds what it would have found without forgetting.
    ///
    /// - Parameter now: The present, in milliseconds since 1970.
    mutating func forget(asOf now: Int64) {
        let slack: Int64 = 60_000
        settlements = settlements.filter { now - $0.value.at <= windowMilliseconds + slack }
        holders = holders.filter { now - $0.value.at < leaseMilliseconds + slack }
    }
}

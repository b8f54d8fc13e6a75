import Synchronization

/// Which payments have an outcome, so that a duplicate or a redelivery of a payment is acknowledged without a
/// second outcome.
///
/// It learns outcomes from this instance's handlers and, through the shared outcomes stream, from every instance,
/// including those that ran before this one started.
///
/// Handlers run concurrently, so two copies of one payment can arrive together: ``claim(_:)`` lets one copy through
/// and makes the other wait until the first is settled (then it is a duplicate) or released (then it may try).
public final class PaymentLedger: Sendable {
    /// What a handler may do with a payment.
    public enum Claim: Sendable, Equatable {
        /// This copy is the one to handle; settle or release it afterwards.
        case claimed
        /// The payment already has an outcome; acknowledge this copy and publish nothing.
        case settled(PaymentOutcome.Kind)
    }

    private struct State {
        var settled: [String: PaymentOutcome.Kind] = [:]
        var inFlight: [String: [CheckedContinuation<Void, Never>]] = [:]
    }

    private let state = Mutex(State())

    /// Creates an empty ledger.
    public init() {}

    /// Claims a payment for handling, waiting while another copy of it is being handled.
    public func claim(_ paymentID: String) async -> Claim {
        while true {
            let claim = state.withLock { state -> Claim? in
                if let outcome = state.settled[paymentID] { return .settled(outcome) }
                if state.inFlight[paymentID] == nil {
                    state.inFlight[paymentID] = []
                    return .claimed
                }
                return nil
            }
            if let claim { return claim }
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let wait = state.withLock { state -> Bool in
                    guard state.inFlight[paymentID] != nil else { return false }
                    state.inFlight[paymentID]?.append(continuation)
                    return true
                }
                if !wait { continuation.resume() }
            }
        }
    }

    /// Records the outcome of a claimed payment; waiting copies then see it as settled.
    public func settle(_ paymentID: String, as outcome: PaymentOutcome.Kind) {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.settled[paymentID] = outcome
            return state.inFlight.removeValue(forKey: paymentID) ?? []
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Gives a claimed payment back without an outcome (it was scheduled for a retry, or handling failed).
    public func release(_ paymentID: String) {
        let waiters = state.withLock { $0.inFlight.removeValue(forKey: paymentID) ?? [] }
        for waiter in waiters { waiter.resume() }
    }

    /// The outcome recorded for a payment, if any.
    public func outcome(of paymentID: String) -> PaymentOutcome.Kind? {
        state.withLock { $0.settled[paymentID] }
    }
}

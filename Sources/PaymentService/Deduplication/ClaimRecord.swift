/// One record of the claims stream (`payment-claims-log`): the ordered history from which every instance derives,
/// identically, which copy of a payment may produce its outcome.
///
/// Times are milliseconds since 1970 on the clock of the instance that wrote the record. They are compared only with
/// each other, inside the deterministic ``ClaimArbiter``, so every instance reaches the same verdicts.
public enum ClaimRecord: Sendable, Equatable {
    /// An instance asks to produce the outcome of `paymentID`; `claimID` is unique to this request.
    case claim(paymentID: String, claimID: String, at: Int64)
    /// The outcome of `paymentID` was published (confirmed by the broker) by the holder of `claimID`.
    case settle(paymentID: String, claimID: String, outcome: PaymentOutcome.Kind, at: Int64)
    /// The holder of `claimID` gives its claim up without an outcome (its handling failed).
    case release(paymentID: String, claimID: String)

    /// The payment the record is about.
    public var paymentID: String {
        switch self {
        case .claim(let paymentID, _, _), .settle(let paymentID, _, _, _), .release(let paymentID, _):
            return paymentID
        }
    }
}

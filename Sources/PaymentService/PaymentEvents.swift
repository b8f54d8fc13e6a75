import Foundation

/// A client registration, read from `clients-processor`: `{"clientId": "...", "name": "..."}`.
public struct ClientRegistration: Codable, Sendable, Equatable {
    /// The client's id: 1 to 128 characters.
    public var clientId: String
    /// The client's name, if the registration carries one.
    public var name: String?

    /// Creates a registration.
    ///
    /// - Parameters:
    ///   - clientId: The client's id: 1 to 128 characters.
    ///   - name: The client's name, if any.
    public init(clientId: String, name: String? = nil) {
        self.clientId = clientId
        self.name = name
    }
}

/// A payment to process, read from `payment-processor`:
/// `{"paymentId": "...", "clientId": "...", "amount": "10.50", "currency": "EUR"}`.
///
/// The amount stays a decimal string end to end: money is never binary floating point.
public struct PaymentRequest: Codable, Sendable, Equatable {
    /// The payment's id, which makes processing idempotent: 1 to 128 characters.
    public var paymentId: String
    /// The id of the client the payment belongs to.
    public var clientId: String
    /// The amount as a decimal string, such as `10.50`.
    public var amount: String
    /// The ISO 4217 currency code, such as `EUR`.
    public var currency: String

    /// Creates a payment.
    ///
    /// - Parameters:
    ///   - paymentId: The payment's id: 1 to 128 characters.
    ///   - clientId: The id of the client the payment belongs to.
    ///   - amount: The amount as a positive decimal string, such as `10.50`.
    ///   - currency: The ISO 4217 currency code, such as `EUR`.
    public init(paymentId: String, clientId: String, amount: String, currency: String) {
        self.paymentId = paymentId
        self.clientId = clientId
        self.amount = amount
        self.currency = currency
    }
}

/// What became of a payment, published once per payment to the `payment-events` topic exchange with routing key
/// `payment.processed` or `payment.parked`.
public struct PaymentOutcome: Codable, Sendable, Equatable {
    /// The two outcomes.
    public enum Kind: String, Codable, Sendable {
        /// The client was known and the payment was processed.
        case processed
        /// The payment could not be processed and waits in `payment-parking-lot`.
        case parked

        /// The routing key the outcome is published with.
        public var routingKey: String { "payment.\(rawValue)" }
    }

    /// The payment's id.
    public var paymentId: String
    /// The client's id.
    public var clientId: String
    /// How many times the service tried to process the payment (1 when it was processed at once).
    public var attempts: Int
    /// The outcome.
    public var outcome: Kind
    /// Why the payment was parked; absent when it was processed.
    public var reason: String?

    /// Creates an outcome.
    ///
    /// - Parameters:
    ///   - paymentId: The payment's id.
    ///   - clientId: The client's id.
    ///   - attempts: How many times the service tried to process the payment.
    ///   - outcome: Whether the payment was processed or parked.
    ///   - reason: Why the payment was parked; `nil` when it was processed.
    public init(paymentId: String, clientId: String, attempts: Int, outcome: Kind, reason: String? = nil) {
        self.paymentId = paymentId
        self.clientId = clientId
        self.attempts = attempts
        self.outcome = outcome
        self.reason = reason
    }
}

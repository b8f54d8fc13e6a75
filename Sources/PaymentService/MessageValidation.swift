import Foundation

/// Why a message could not be read; it goes to the parking lot with this text as its reason.
public struct UnreadableMessage: Error, Sendable, Equatable, CustomStringConvertible {
    /// The reason, for people and for the `parking-reason` header.
    public let reason: String

    /// Creates a reason.
    ///
    /// - Parameter reason: What is wrong with the message, in a sentence fragment such as `the body is empty`.
    public init(_ reason: String) {
        self.reason = reason
    }

    /// The reason.
    public var description: String { reason }
}

/// Reads and checks the service's JSON messages.
///
/// Every way a body can be wrong gets its own reason: empty, oversized, not UTF-8, not JSON, not an object, a missing
/// field, a field of the wrong type, or a value outside the contract (an empty or over-long id, an amount that is not
/// a positive decimal string, a currency that is not three capital letters).
public enum MessageValidation {
    /// The largest body the service reads; anything larger is parked unread.
    public static let maximumBodySize = 64 * 1024
    /// The longest id the contract allows.
    public static let maximumIDLength = 128

    /// Reads a client registration.
    ///
    /// - Parameter body: The message body, which should be a JSON object with `clientId` (and optionally `name`).
    /// - Returns: The registration, or why the body is not a valid one.
    public static func registration(from body: Data) -> Result<ClientRegistration, UnreadableMessage> {
        decode(ClientRegistration.self, from: body).flatMap { registration in
            if let problem = idProblem(registration.clientId, field: "clientId") { return .failure(problem) }
            return .success(registration)
        }
    }

    /// Reads a payment.
    ///
    /// - Parameter body: The message body, which should be a JSON object with `paymentId`, `clientId`, `amount`
    ///   and `currency`.
    /// - Returns: The payment, or why the body is not a valid one.
    public static func payment(from body: Data) -> Result<PaymentRequest, UnreadableMessage> {
        decode(PaymentRequest.self, from: body).flatMap { payment in
            if let problem = idProblem(payment.paymentId, field: "paymentId") { return .failure(problem) }
            if let problem = idProblem(payment.clientId, field: "clientId") { return .failure(problem) }
            if !isPositiveDecimal(payment.amount) {
                return .failure(UnreadableMessage(
                    "field \"amount\" must be a positive decimal string such as \"10.50\", not \"\(payment.amount.prefix(40))\""))
            }
            if !isCurrencyCode(payment.currency) {
                return .failure(UnreadableMessage(
                    "field \"currency\" must be an ISO 4217 code of three capital letters, not \"\(payment.currency.prefix(40))\""))
            }
            return .success(payment)
        }
    }

    private static func decode<Value: Decodable>(_ type: Value.Type, from body: Data) -> Result<Value, UnreadableMessage> {
        if body.isEmpty { return .failure(UnreadableMessage("the body is empty")) }
        if body.count > maximumBodySize {
            return .failure(UnreadableMessage("the body has \(body.count) bytes, over the limit of \(maximumBodySize)"))
        }
        guard String(validating: body, as: UTF8.self) != nil else {
            return .failure(UnreadableMessage("the body is not valid UTF-8"))
        }
        do {
            return .success(try JSONDecoder().decode(type, from: body))
        } catch let error as DecodingError {
            return .failure(UnreadableMessage(describe(error)))
        } catch {
            return .failure(UnreadableMessage("the body is not valid JSON"))
        }
    }

    private static func describe(_ error: DecodingError) -> String {
        switch error {
        case .keyNotFound(let key, _):
            return "field \"\(key.stringValue)\" is missing"
        case .typeMismatch(_, let context) where context.codingPath.isEmpty:
            return "the body is not a JSON object"
        case .typeMismatch(let type, let context):
            return "field \"\(path(context))\" has the wrong type (expected \(typeName(type)))"
        case .valueNotFound(_, let context) where context.codingPath.isEmpty:
            return "the body is not a JSON object"
        case .valueNotFound(let type, let context):
            return "field \"\(path(context))\" is null (expected \(typeName(type)))"
        case .dataCorrupted(let context) where context.codingPath.isEmpty:
            return "the body is not valid JSON"
        case .dataCorrupted(let context):
            return "field \"\(path(context))\" is invalid"
        @unknown default:
            return "the body does not match the message contract"
        }
    }

    private static func path(_ context: DecodingError.Context) -> String {
        context.codingPath.map(\.stringValue).joined(separator: ".")
    }

    private static func typeName(_ type: Any.Type) -> String {
        type == String.self ? "a string" : "\(type)"
    }

    private static func idProblem(_ id: String, field: String) -> UnreadableMessage? {
        if id.isEmpty { return UnreadableMessage("field \"\(field)\" is empty") }
        if id.count > maximumIDLength {
            return UnreadableMessage("field \"\(field)\" has \(id.count) characters, over the limit of \(maximumIDLength)")
        }
        return nil
    }

    /// Whether `text` is a decimal number above zero with at most 15 integer and 4 fraction digits.
    static func isPositiveDecimal(_ text: String) -> Bool {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count <= 2, let whole = parts.first, (1...15).contains(whole.count),
            whole.allSatisfy(\.isASCIIDigit)
        else { return false }
        if parts.count == 2 {
            let fraction = parts[1]
            guard (1...4).contains(fraction.count), fraction.allSatisfy(\.isASCIIDigit) else { return false }
        }
        return text.contains { $0 != "0" && $0 != "." }
    }

    /// Whether `text` has the shape of an ISO 4217 code.
    static func isCurrencyCode(_ text: String) -> Bool {
        text.count == 3 && text.allSatisfy { $0.isASCII && $0.isUppercase }
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { isASCII && isNumber }
}

extension MessageValidation {
    /// What is wrong with a registration about to be published, if anything.
    ///
    /// - Parameter registration: The registration to check.
    /// - Returns: The same reason ``registration(from:)`` would give the consumer, or `nil` when it is valid.
    public static func problem(with registration: ClientRegistration) -> UnreadableMessage? {
        idProblem(registration.clientId, field: "clientId")
    }

    /// What is wrong with a payment about to be published, if anything.
    ///
    /// - Parameter payment: The payment to check.
    /// - Returns: The same reason ``payment(from:)`` would give the consumer, or `nil` when it is valid.
    public static func problem(with payment: PaymentRequest) -> UnreadableMessage? {
        guard let body = try? JSONEncoder().encode(payment) else { return UnreadableMessage("cannot encode") }
        if case .failure(let problem) = self.payment(from: body) { return problem }
        return nil
    }
}

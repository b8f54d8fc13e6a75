/// The one error type of the library.
///
/// An error says what went wrong in three layers, each optional: the ``code`` (what kind of failure, stable across
/// releases), the broker's answer (``replyCode``, ``replyText`` and the ``method`` it refused), and rabbitmq-c's
/// status (``libraryStatus``, ``libraryStatusText``). Match on the code:
///
/// ```swift
/// do {
///     try await channel.declareQueue("orders", passive: true)
/// } catch let error as AMQPError where error.code == .channelClosedByBroker && error.replyCode == 404 {
///     // the queue does not exist
/// }
/// ```
///
/// No description of an error ever contains a password.
public struct AMQPError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure an error is. New codes may be added without breaking callers.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String

        private init(_ name: String) {
            self.name = name
        }

        /// A configuration value or connection URL is invalid; nothing was sent.
        public static let invalidConfiguration = Code("invalidConfiguration")
        /// An argument of a call is invalid (a name longer than 255 bytes, a delay out of range, ...); nothing was sent.
        public static let invalidArgument = Code("invalidArgument")
        /// The broker's host name could not be resolved.
        public static let hostNotFound = Code("hostNotFound")
        /// Nothing listens on the broker's port (the TCP connection was refused).
        public static let connectionRefused = Code("connectionRefused")
        /// Opening the connection (TCP, TLS and the AMQP handshake) took longer than the connect timeout.
        public static let connectTimeout = Code("connectTimeout")
        /// The TLS handshake or certificate verification failed.
        public static let tlsFailure = Code("tlsFailure")
        /// The broker refused the user name and password (403 ACCESS_REFUSED at login).
        public static let authenticationFailed = Code("authenticationFailed")
        /// The virtual host does not exist or the user may not use it (530 NOT_ALLOWED at login).
        public static let virtualHostNotAccessible = Code("virtualHostNotAccessible")
        /// The broker does not offer the requested SASL mechanism.
        public static let authenticationMechanismUnsupported = Code("authenticationMechanismUnsupported")
        /// The connection failed underneath: a socket error, missed heartbeats or a protocol error.
        public static let connectionLost = Code("connectionLost")
        /// The broker closed the connection with a connection exception (`connection.close`).
        public static let connectionClosedByBroker = Code("connectionClosedByBroker")
        /// The connection was closed by the application, or an operation needs a connection that is gone.
        public static let connectionClosed = Code("connectionClosed")
        /// The broker closed the channel with a channel exception (`channel.close`, such as 404 or 406).
        public static let channelClosedByBroker = Code("channelClosedByBroker")
        /// The channel was closed (by the application, or earlier by the broker); it cannot be used any more.
        public static let channelClosed = Code("channelClosed")
        /// The broker refused a confirmed publish (`basic.nack`).
        public static let publishNacked = Code("publishNacked")
        /// The broker returned a mandatory publish it could not route (`basic.return`).
        public static let messageReturned = Code("messageReturned")
        /// The broker cancelled a consumer (`basic.cancel`), for instance because its queue was deleted.
        public static let consumerCancelledByBroker = Code("consumerCancelledByBroker")
        /// The broker lacks the delayed-message plugin, so exchange type `x-delayed-message` does not exist.
        public static let delayedMessagePluginMissing = Code("delayedMessagePluginMissing")
        /// A message body could not be decoded into the expected type; the raw delivery is attached.
        public static let decodingFailed = Code("decodingFailed")
        /// A message could not be encoded into a body.
        public static let encodingFailed = Code("encodingFailed")
        /// An operation did not finish within its time limit.
        public static let timeout = Code("timeout")
        /// rabbitmq-c reported a failure that fits no other code.
        public static let libraryError = Code("libraryError")

        /// The code's name, such as `channelClosedByBroker`.
        public var description: String { name }
    }

    /// What kind of failure this is.
    public var code: Code
    /// A sentence that says what failed, for people.
    public var message: String
    /// The broker's reply code (for instance 404 NOT_FOUND, 403 ACCESS_REFUSED, 406 PRECONDITION_FAILED), when the
    /// broker answered.
    public var replyCode: UInt16?
    /// The broker's reply text, when the broker answered.
    public var replyText: String?
    /// The AMQP method the broker refused, when it said which.
    public var method: AMQPMethod?
    /// rabbitmq-c's status code (a negative `amqp_status_enum` value), when the library reported one.
    public var libraryStatus: Int32?
    /// rabbitmq-c's text for ``libraryStatus``.
    public var libraryStatusText: String?
    /// The delivery whose body could not be decoded (``Code-swift.struct/decodingFailed``), so that the caller can
    /// dead-letter it.
    public var delivery: AMQPDelivery?

    /// Creates an error.
    ///
    /// - Parameters:
    ///   - code: What kind of failure this is.
    ///   - message: A sentence that says what failed; it must not contain a password.
    ///   - replyCode: The broker's reply code, if the broker answered.
    ///   - replyText: The broker's reply text, if the broker answered.
    ///   - method: The AMQP method the broker refused.
    ///   - libraryStatus: rabbitmq-c's status code.
    ///   - libraryStatusText: rabbitmq-c's text for the status.
    ///   - delivery: The delivery an error is about.
    public init(
        _ code: Code,
        _ message: String,
        replyCode: UInt16? = nil,
        replyText: String? = nil,
        method: AMQPMethod? = nil,
        libraryStatus: Int32? = nil,
        libraryStatusText: String? = nil,
        delivery: AMQPDelivery? = nil
    ) {
        self.code = code
        self.message = message
        self.replyCode = replyCode
        self.replyText = replyText
        self.method = method
        self.libraryStatus = libraryStatus
        self.libraryStatusText = libraryStatusText
        self.delivery = delivery
    }

    /// The symbolic name of ``replyCode`` as the AMQP specification spells it, such as `NOT_FOUND`.
    public var replyCodeName: String? {
        replyCode.map { AMQPError.replyCodeNames[$0] ?? "UNKNOWN" }
    }

    /// Whether the whole connection is unusable after this error (as opposed to one channel or one call).
    public var isFatal: Bool {
        switch code {
        case .connectionLost, .connectionClosedByBroker, .connectionClosed, .delayedMessagePluginMissing:
            return true
        default:
            return false
        }
    }

    /// Whether the same operation may succeed if it is tried again later, on this or a new connection.
    public var isRetriable: Bool {
        switch code {
        case .connectionRefused, .connectTimeout, .connectionLost, .timeout, .publishNacked:
            return true
        case .connectionClosedByBroker:
            // 320 CONNECTION_FORCED is an operator or a restarting broker; other hard errors are our own fault.
            return replyCode == 320
        default:
            return false
        }
    }

    /// One line: the code, the message, then the broker's and the library's details.
    public var description: String {
        var text = "AMQPError.\(code): \(message)"
        if let replyCode {
            text += " [broker: \(replyCode) \(replyCodeName ?? "")"
            if let replyText, !replyText.isEmpty { text += " \"\(replyText)\"" }
            if let method { text += " on \(method)" }
            text += "]"
        } else if let method {
            text += " [method: \(method)]"
        }
        if let libraryStatus {
            text += " [rabbitmq-c: \(libraryStatus)"
            if let libraryStatusText { text += " \(libraryStatusText)" }
            text += "]"
        }
        return text
    }

    /// The reply codes of the AMQP 0-9-1 specification.
    static let replyCodeNames: [UInt16: String] = [
        200: "REPLY_SUCCESS",
        311: "CONTENT_TOO_LARGE",
        312: "NO_ROUTE",
        313: "NO_CONSUMERS",
        320: "CONNECTION_FORCED",
        402: "INVALID_PATH",
        403: "ACCESS_REFUSED",
        404: "NOT_FOUND",
        405: "RESOURCE_LOCKED",
        406: "PRECONDITION_FAILED",
        501: "FRAME_ERROR",
        502: "SYNTAX_ERROR",
        503: "COMMAND_INVALID",
        504: "CHANNEL_ERROR",
        505: "UNEXPECTED_FRAME",
        506: "RESOURCE_ERROR",
        530: "NOT_ALLOWED",
        540: "NOT_IMPLEMENTED",
        541: "INTERNAL_ERROR",
    ]
}

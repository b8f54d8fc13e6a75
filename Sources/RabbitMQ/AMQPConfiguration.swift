/// Where a broker is, who logs in, and how the connection is tuned.
///
/// Build one field by field, or from a URL that follows RabbitMQ's URI specification:
///
/// ```swift
/// var configuration = try AMQPConfiguration(url: "amqps://orders:secret@rabbit.internal/payments?heartbeat=30")
/// configuration.connectionName = "payments-worker"
/// try configuration.validate()
/// ```
///
/// The memberwise initializer never throws, and the properties can be changed freely, so a value built or changed by
/// hand is checked by ``validate()``; ``init(url:)`` calls it before it returns.
///
/// The password is secret: ``description``, ``debugDescription``, the value's `Mirror` (and therefore `dump(_:)`) and
/// every error the type throws show it as `***`. It still takes part in `==` and `hashValue`, so two configurations
/// that differ only in their passwords are different.
///
/// See [RabbitMQ URI Specification](https://www.rabbitmq.com/docs/uri-spec) and
/// [URI Query Parameters](https://www.rabbitmq.com/docs/uri-query-parameters).
public struct AMQPConfiguration: Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible {
    /// How the client proves who it is, with SASL, during the AMQP handshake (`connection.start-ok`).
    public enum Authentication: String, Sendable, Hashable {
        /// SASL `PLAIN`: the broker checks ``AMQPConfiguration/username`` and ``AMQPConfiguration/password``.
        case plain
        /// SASL `EXTERNAL`: the broker takes the identity from the TLS client certificate, so the configuration needs
        /// ``AMQPConfiguration/tls`` with a client certificate and key. RabbitMQ offers it only with the
        /// `rabbitmq_auth_mechanism_ssl` plugin enabled.
        case external
    }

    /// The broker's host name, IPv4 address or IPv6 address (without brackets). Default `"localhost"`.
    public var host: String
    /// The broker's TCP port, 1...65535. Default 5672, or 5671 (AMQP over TLS) when ``tls`` is set.
    public var port: Int
    /// Further nodes of the same cluster, tried in order after ``host``:``port`` when a connection is made or
    /// recovered (see ``endpoints``). Default empty: one broker.
    public var failoverEndpoints: [Endpoint] = []
    /// Whether each walk of ``endpoints`` takes them in a new random order, which spreads many clients over the
    /// nodes; otherwise the first endpoint that answers is used. Default `false`.
    public var shuffleEndpoints = false
    /// The virtual host to open (`connection.open`), at most 255 bytes of UTF-8. Default `"/"`.
    public var virtualHost: String
    /// The user name for ``Authentication/plain``, at most 255 bytes of UTF-8. Default `"guest"`.
    ///
    /// RabbitMQ lets the `guest` user in only from `localhost`.
    public var username: String
    /// The password for ``Authentication/plain``. Default `"guest"`.
    ///
    /// Never shown by ``description``, ``debugDescription``, `dump(_:)` or an error.
    public var password: String
    /// How often each side sends a heartbeat frame when it has nothing else to send. Default `.seconds(60)`;
    /// `.zero` disables heartbeats.
    ///
    /// AMQP carries whole seconds, 0...65535, so a fraction of a second is rounded up to the next whole second
    /// (see ``heartbeatSeconds``): `.milliseconds(200)` asks for 1 second, never for 0 (which would turn heartbeats
    /// off). The broker may lower the value during `connection.tune`.
    public var heartbeat: Duration
    /// How long opening a connection may take in all: the TCP connect, the TLS handshake and the AMQP handshake
    /// together. Default `.seconds(10)`; it must be longer than zero.
    public var connectTimeout: Duration
    /// The highest channel number the client asks for (`connection.tune-ok`). Default 2047; 0 means "the broker's
    /// limit".
    public var channelMax: UInt16
    /// The largest frame, in bytes, the client asks for (`connection.tune-ok`). Default 131 072; 0 means "the broker's
    /// limit"; any other value must be at least 4096, the AMQP minimum.
    ///
    /// Debian's patched rabbitmq-c 0.11 turns 0 into 4096 bytes instead (see
    /// <doc:RabbitMQCBehaviour#Frame-size>): keep the default unless you need smaller frames.
    public var frameMax: UInt32
    /// A name for the connection, sent as the `connection_name` client property so that it shows up in RabbitMQ's
    /// management UI; at most 255 bytes of UTF-8. Default `nil` (no name).
    public var connectionName: String?
    /// The SASL mechanism the client logs in with. Default ``Authentication/plain``.
    public var authentication: Authentication
    /// TLS settings; `nil` means plain TCP. Default `nil`.
    public var tls: TLS?
    /// Whether and how the connection recovers by itself when it fails. Default ``Recovery-swift.struct/enabled(initialDelay:maxDelay:maxAttempts:)``
    /// with its defaults: retries after 0.5 s, 1 s, 2 s … up to 30 s apart, forever.
    public var recovery: Recovery = .enabled()
    /// How long a publish waits while the broker blocks the connection (`connection.blocked`, a resource alarm)
    /// before it fails with ``AMQPError/Code-swift.struct/timeout``. Default `.seconds(30)`.
    public var blockedPublishTimeout: Duration = .seconds(30)
    /// Spans and metrics. Default: spans when a tracer is bootstrapped, no metrics.
    public var observability = Observability()

    /// Creates a configuration; every argument has the default its property documents.
    ///
    /// Nothing is checked here; call ``validate()`` before using a configuration built by hand.
    ///
    /// - Parameters:
    ///   - host: The broker's host name or address. Default `"localhost"`.
    ///   - port: The broker's TCP port. Default `nil`: 5672, or 5671 when `tls` is not `nil`.
    ///   - virtualHost: The virtual host to open. Default `"/"`.
    ///   - username: The user name. Default `"guest"`.
    ///   - password: The password. Default `"guest"`.
    ///   - heartbeat: The heartbeat interval, rounded up to whole seconds; `.zero` disables heartbeats.
    ///     Default `.seconds(60)`.
    ///   - connectTimeout: The time limit for opening the connection. Default `.seconds(10)`.
    ///   - channelMax: The highest channel number; 0 means the broker's limit. Default 2047.
    ///   - frameMax: The largest frame in bytes; 0 means the broker's limit. Default 131 072.
    ///   - connectionName: The `connection_name` client property. Default `nil`.
    ///   - authentication: The SASL mechanism. Default ``Authentication/plain``.
    ///   - tls: TLS settings, or `nil` for plain TCP. Default `nil`.
    public init(
        host: String = "localhost",
        port: Int? = nil,
        virtualHost: String = "/",
        username: String = "guest",
        password: String = "guest",
        heartbeat: Duration = .seconds(60),
        connectTimeout: Duration = .seconds(10),
        channelMax: UInt16 = 2047,
        frameMax: UInt32 = 131_072,
        connectionName: String? = nil,
        authentication: Authentication = .plain,
        tls: TLS? = nil
    ) {
        self.host = host
        self.port = port ?? (tls == nil ? Self.defaultPort : Self.defaultTLSPort)
        self.virtualHost = virtualHost
        self.username = username
        self.password = password
        self.heartbeat = heartbeat
        self.connectTimeout = connectTimeout
        self.channelMax = channelMax
        self.frameMax = frameMax
        self.connectionName = connectionName
        self.authentication = authentication
        self.tls = tls
    }

    /// The IANA port of AMQP over plain TCP.
    static let defaultPort = 5672
    /// The IANA port of AMQP over TLS.
    static let defaultTLSPort = 5671
    /// The smallest `frame-max` AMQP 0-9-1 allows, other than 0.
    static let minimumFrameMax: UInt32 = 4096
    /// The longest AMQP short string (`shortstr`) in bytes.
    static let maximumShortStringLength = 255

    /// The heartbeat interval as AMQP sends it: whole seconds, a fraction rounded up.
    ///
    /// Meaningful for a configuration that passed ``validate()``: then it is within 0...65535.
    public var heartbeatSeconds: Int {
        Self.wholeUnitsRoundedUp(heartbeat, unitsPerSecond: 1)
    }

    /// The connect timeout in whole milliseconds, a fraction rounded up, so that a positive timeout never becomes 0.
    ///
    /// Meaningful for a configuration that passed ``validate()``: then it is at least 1.
    public var connectTimeoutMilliseconds: Int {
        Self.wholeUnitsRoundedUp(connectTimeout, unitsPerSecond: 1000)
    }

    /// Checks every rule a configuration must follow before it can be used.
    ///
    /// The rules: ``host`` is not empty; ``port`` is within 1...65535; so are those of every failover endpoint; ``heartbeat`` is not negative and at most
    /// 65535 seconds once rounded up; ``connectTimeout`` is longer than zero; ``frameMax`` is 0 or at least 4096;
    /// ``virtualHost``, ``username`` and ``connectionName`` fit an AMQP short string (255 bytes of UTF-8);
    /// no text contains a NUL character; ``Authentication/external`` comes with a TLS client certificate; and ``tls``
    /// passes ``TLS/validate()``.
    ///
    /// - Throws: ``AMQPError`` with code ``AMQPError/Code-swift.struct/invalidConfiguration`` naming the first rule
    ///   broken. The message never contains the password.
    public func validate() throws {
        if host.isEmpty {
            throw Self.invalid("the host is empty")
        }
        if !(1...65535).contains(port) {
            throw Self.invalid("port \(port) is out of range; use 1...65535")
        }
        if heartbeat < .zero {
            throw Self.invalid("the heartbeat \(heartbeat) is negative; use .zero to disable heartbeats")
        }
        if heartbeatSeconds > 65535 {
            throw Self.invalid("the heartbeat \(heartbeat) is longer than AMQP's limit of 65535 seconds")
        }
        if connectTimeout <= .zero {
            throw Self.invalid("the connect timeout \(connectTimeout) must be longer than zero")
        }
        if frameMax != 0 && frameMax < Self.minimumFrameMax {
            throw Self.invalid(
                "frameMax \(frameMax) is below AMQP's minimum of \(Self.minimumFrameMax) bytes "
                    + "(0 means the broker's limit)")
        }
        // rabbitmq-c takes these as C strings, which a NUL would silently cut short; in SASL PLAIN a NUL would also
        // split the user name from the password in the wrong place.
        let textFields: [(name: String, value: String?)] = [
            ("the host", host), ("the virtual host", virtualHost), ("the user name", username),
            ("the password", password), ("the connection name", connectionName),
            ("TLS caCertificatePath", tls?.caCertificatePath),
            ("TLS clientCertificatePath", tls?.clientCertificatePath),
            ("TLS clientKeyPath", tls?.clientKeyPath),
            ("TLS serverName", tls?.serverName),
        ]
        for (name, value) in textFields where value?.utf8.contains(0) == true {
            throw Self.invalid("\(name) contains a NUL character (U+0000), which cannot be sent")
        }
        try Self.checkShortString(virtualHost, named: "the virtual host")
        try Self.checkShortString(username, named: "the user name")
        if let connectionName {
            try Self.checkShortString(connectionName, named: "the connection name")
        }
        if authentication == .external && tls?.clientCertificatePath == nil {
            throw Self.invalid(
                "authentication .external (SASL EXTERNAL) needs TLS with a client certificate: "
                    + "set tls.clientCertificatePath and tls.clientKeyPath")
        }
        try validateFailoverEndpoints()
        try tls?.validate()
    }

    /// One line in URL form, the password shown as `***`, for logs:
    /// `amqp://guest:***@localhost:5672/%2F?heartbeat=60&connection_timeout=10000&channel_max=2047&frame_max=131072`.
    ///
    /// Every setting appears, as the query parameter ``init(url:)`` reads (TLS ones only with `amqps`), so the line
    /// reads back into an equal configuration once the password is restored, with four exceptions: the heartbeat and
    /// connect timeout come back rounded up (``heartbeatSeconds``, ``connectTimeoutMilliseconds``); an empty virtual
    /// host comes back as `/`; ``TLS/verifyHostname`` comes back off whenever ``TLS/verifyPeer`` is off; and
    /// ``TLS/serverName`` is dropped when ``TLS/verifyHostname`` is off but ``TLS/verifyPeer`` is on.
    ///
    /// With ``failoverEndpoints``, one such URL per endpoint, separated by commas (as ``init(urls:)`` reads them once
    /// split).
    public var description: String {
        endpoints.map { endpoint in
            var single = self
            single.host = endpoint.host
            single.port = endpoint.port
            single.tls?.serverName = endpoint.serverName
            return single.urlString(password: Self.redacted)
        }.joined(separator: ",")
    }

    /// The value field by field, in initializer syntax, with exact durations; the password is shown as `***`.
    public var debugDescription: String {
        var fields = [
            "host: \(String(reflecting: host))",
            "port: \(port)",
            "failoverEndpoints: \(failoverEndpoints)",
            "shuffleEndpoints: \(shuffleEndpoints)",
            "virtualHost: \(String(reflecting: virtualHost))",
            "username: \(String(reflecting: username))",
            "password: \(Self.redacted)",
            "heartbeat: \(heartbeat)",
            "connectTimeout: \(connectTimeout)",
            "channelMax: \(channelMax)",
            "frameMax: \(frameMax)",
            "connectionName: \(connectionName.map { String(reflecting: $0) } ?? "nil")",
            "authentication: .\(authentication.rawValue)",
        ]
        if let tls {
            fields.append("tls: \(tls.fieldsDescription)")
        } else {
            fields.append("tls: nil")
        }
        return "AMQPConfiguration(\(fields.joined(separator: ", ")))"
    }

    /// What stands in for the password wherever a configuration is shown.
    static let redacted = "***"

    /// Makes the error every configuration check throws.
    static func invalid(_ message: String) -> AMQPError {
        AMQPError(.invalidConfiguration, message)
    }

    private static func checkShortString(_ value: String, named name: String) throws {
        let length = value.utf8.count
        if length > maximumShortStringLength {
            // The value itself is left out: it may be long, and the length is what the reader has to fix.
            throw invalid("\(name) is \(length) bytes long; AMQP allows at most \(maximumShortStringLength)")
        }
    }

    /// `duration` in whole units (`unitsPerSecond` of them per second), any fraction rounded towards +∞, clamped to
    /// `Int`.
    private static func wholeUnitsRoundedUp(_ duration: Duration, unitsPerSecond: Int64) -> Int {
        let (seconds, attoseconds) = duration.components
        let attosecondsPerUnit = 1_000_000_000_000_000_000 / unitsPerSecond
        let (wholeUnits, multiplyOverflow) = seconds.multipliedReportingOverflow(by: unitsPerSecond)
        if multiplyOverflow {
            return seconds < 0 ? Int.min : Int.max
        }
        // `components` gives both parts the sign of the duration, and integer division truncates towards zero, so
        // only a positive remainder needs one more unit to round up.
        var fractionUnits = attoseconds / attosecondsPerUnit
        if attoseconds % attosecondsPerUnit > 0 {
            fractionUnits += 1
        }
        let (total, addOverflow) = wholeUnits.addingReportingOverflow(fractionUnits)
        if addOverflow {
            return seconds < 0 ? Int.min : Int.max
        }
        return Int(clamping: total)
    }
}

extension AMQPConfiguration: CustomReflectable {
    /// The stored properties as `dump(_:)` and debuggers show them, with the password replaced by `***`.
    public var customMirror: Mirror {
        Mirror(
            self,
            children: [
                "host": host,
                "port": port,
                "failoverEndpoints": failoverEndpoints,
                "shuffleEndpoints": shuffleEndpoints,
                "virtualHost": virtualHost,
                "username": username,
                "password": Self.redacted,
                "heartbeat": heartbeat,
                "connectTimeout": connectTimeout,
                "channelMax": channelMax,
                "frameMax": frameMax,
                "connectionName": connectionName as Any,
                "authentication": authentication,
                "tls": tls as Any,
                "recovery": recovery,
                "blockedPublishTimeout": blockedPublishTimeout,
                "observability": observability,
            ],
            displayStyle: .struct
        )
    }
}

extension AMQPConfiguration {
    /// Creates a configuration from an `amqp://` or `amqps://` URL, as RabbitMQ's URI specification defines it, then
    /// checks it with ``validate()``.
    ///
    /// ```
    /// amqp[s]://[user[:password]@][host][:port][/vhost][?parameter=value&...]
    /// ```
    ///
    /// - The scheme is `amqp` (plain TCP, port 5672) or `amqps` (TLS with ``TLS/systemTrust`` settings, port 5671),
    ///   in any case.
    /// - The user name, password, host and virtual host are percent-decoded: `%2F` is `/`, `%40` is `@`, `%3A` is `:`.
    ///   Without user info the user and password are `guest`; with a user but no `:password` the password is also
    ///   the default, `guest`, because the specification treats an absent password like an absent user (`user:`
    ///   gives the empty password). The last `@` of the authority ends the user info and the first `:` in it ends the
    ///   user name, so an unencoded `@` or `:` in the password still works.
    /// - The host is a name, an IPv4 address, or an IPv6 address in brackets (`amqp://[::1]:5673`, with an optional
    ///   RFC 6874 zone such as `[fe80::1%25eth0]`); it is stored without brackets. An empty host means `localhost`.
    /// - The virtual host is the single path segment. No path, or `/` alone, means the default virtual host `/`
    ///   (RabbitMQ cannot use an empty virtual host name, so `amqp://host/` is read as pika reads it, not as the
    ///   empty name the specification gives). `/%2F` is `/` and `/orders` is `orders`; a second unencoded `/`, as in
    ///   `/a/b`, is an error.
    /// - Query parameters, from RabbitMQ's URI query parameters plus `connection_name`:
    ///   `heartbeat` (seconds, 0...65535, 0 disables), `connection_timeout` (milliseconds, at least 1),
    ///   `channel_max` (0...65535), `frame_max` (bytes, 0 or at least 4096), `auth_mechanism` (`plain` or `external`,
    ///   in any case; it may repeat, and the first supported one wins), `connection_name`, and, on `amqps` URLs only,
    ///   `cacertfile`, `certfile`, `keyfile`, `verify` (`verify_peer` or `verify_none`; `verify_none` turns off both
    ///   ``TLS/verifyPeer`` and ``TLS/verifyHostname``) and `server_name_indication` (a host name for
    ///   ``TLS/serverName``, or `disable` to turn off ``TLS/verifyHostname``). Names and values are percent-decoded;
    ///   `+` is a plus sign, not a space.
    ///
    /// To keep a typo from silently falling back to a default, these are errors: an unknown or repeated parameter
    /// (except `auth_mechanism`), a parameter without a value or with an empty one, and a TLS parameter on an
    /// `amqp://` URL. So that a password with an unencoded `/`, `?` or `#` can never be mistaken for a virtual host or
    /// a query parameter and then shown in a message or a log, an `@` after the host (`%40` is fine) and a `#`
    /// anywhere are errors too, as are spaces and control characters.
    ///
    /// This parser does not use Foundation's `URL`, whose handling of percent-encoded user info and of IPv6 hosts
    /// differs between platforms.
    ///
    /// - Parameter url: The URL, such as `amqps://orders:s3cr3t@rabbit.internal/payments?heartbeat=30`.
    /// - Throws: ``AMQPError`` with code ``AMQPError/Code-swift.struct/invalidConfiguration`` naming the part at fault
    ///   (the scheme, the port, the parameter, ...). No message contains the password: the port is quoted only
    ///   when the URL has user info, since in `amqp://user:s3cr3t` (host forgotten) the "port" is the password.
    public init(url: String) throws {
        self = try AMQPURLParser(url).parse()
        try validate()
    }

    /// The configuration as an AMQP URL whose password part is `shownPassword`, for ``description``.
    func urlString(password shownPassword: String) -> String {
        var text = tls == nil ? "amqp://" : "amqps://"
        text += URLEncoding.encode(username) + ":" + shownPassword + "@"
        if host.contains(":") {
            // Only an IPv6 address has a colon; its zone separator must travel as %25 inside the brackets.
            text += "[" + URLEncoding.encode(host, keeping: ":") + "]"
        } else {
            text += URLEncoding.encode(host)
        }
        text += ":\(port)/" + URLEncoding.encode(virtualHost)

        var parameters: [(name: String, value: String)] = [
            ("heartbeat", "\(heartbeatSeconds)"),
            ("connection_timeout", "\(connectTimeoutMilliseconds)"),
            ("channel_max", "\(channelMax)"),
            ("frame_max", "\(frameMax)"),
        ]
        if authentication != .plain {
            parameters.append(("auth_mechanism", authentication.rawValue))
        }
        if let connectionName {
            parameters.append(("connection_name", connectionName))
        }
        if let tls {
            if let path = tls.caCertificatePath { parameters.append(("cacertfile", path)) }
            if let path = tls.clientCertificatePath { parameters.append(("certfile", path)) }
            if let path = tls.clientKeyPath { parameters.append(("keyfile", path)) }
            // The URL's parameters cannot say everything TLS can: the verification switches win over serverName.
            if !tls.verifyPeer {
                parameters.append(("verify", "verify_none"))
            }
            if tls.verifyPeer && !tls.verifyHostname {
                parameters.append(("server_name_indication", "disable"))
            } else if let serverName = tls.serverName {
                parameters.append(("server_name_indication", serverName))
            }
        }
        let query = parameters.map { "\($0.name)=\(URLEncoding.encode($0.value, keeping: "/"))" }
        return text + "?" + query.joined(separator: "&")
    }
}

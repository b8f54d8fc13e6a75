extension AMQPConfiguration {
    /// How a connection uses TLS: whom it trusts, how it proves who it is, and what it checks.
    ///
    /// ```swift
    /// let configuration = AMQPConfiguration(
    ///     host: "rabbit.internal",
    ///     tls: .init(caCertificatePath: "/etc/rabbitmq/ca.pem")
    /// )
    /// ```
    ///
    /// Every path names a PEM file; they are read when the connection opens, not here.
    public struct TLS: Sendable, Hashable {
        /// The PEM file of the certificate authorities that may sign the broker's certificate. Default `nil`: the
        /// system trust store.
        public var caCertificatePath: String?
        /// The PEM file of the client certificate, for brokers that require one and for
        /// ``AMQPConfiguration/Authentication/external``. Default `nil`: no client certificate. Set together with
        /// ``clientKeyPath``.
        public var clientCertificatePath: String?
        /// The PEM file of the client certificate's private key. Default `nil`. Set together with
        /// ``clientCertificatePath``.
        public var clientKeyPath: String?
        /// Whether the broker's certificate chain must lead to a trusted authority. Default `true`.
        ///
        /// Turning it off accepts any certificate, so the connection is encrypted but the broker is not
        /// authenticated; use it only for tests.
        public var verifyPeer: Bool
        /// Whether the broker's certificate must be issued for the name the client connects to,
        /// ``AMQPConfiguration/host``. Default `true`.
        ///
        /// rabbitmq-c 0.11 matches DNS names only: with an IP address as the host, the check fails even when the
        /// certificate lists that address (see <doc:RabbitMQCBehaviour#TLS>).
        public var verifyHostname: Bool
        /// The name the broker's certificate should carry, and the TLS server name (SNI), when it differs from the
        /// host. Default `nil`: the configuration's ``AMQPConfiguration/host``.
        ///
        /// - Important: The connection does not apply it yet. rabbitmq-c 0.11 takes both the name it checks and the
        ///   name it sends from the host it connects to, so ``AMQPConfiguration/host`` is used whatever this says.
        ///   The value is still validated, and read from and written to URLs as `server_name_indication`.
        public var serverName: String?

        /// Creates TLS settings; every argument has the default its property documents.
        ///
        /// - Parameters:
        ///   - caCertificatePath: The PEM file of trusted authorities. Default `nil`: the system trust store.
        ///   - clientCertificatePath: The PEM file of the client certificate. Default `nil`.
        ///   - clientKeyPath: The PEM file of the client certificate's key. Default `nil`.
        ///   - verifyPeer: Whether to verify the broker's certificate chain. Default `true`.
        ///   - verifyHostname: Whether to check the broker's certificate against the expected name. Default `true`.
        ///   - serverName: The expected name and SNI; not applied yet (see ``serverName``). Default `nil`: the host.
        public init(
            caCertificatePath: String? = nil,
            clientCertificatePath: String? = nil,
            clientKeyPath: String? = nil,
            verifyPeer: Bool = true,
            verifyHostname: Bool = true,
            serverName: String? = nil
        ) {
            self.caCertificatePath = caCertificatePath
            self.clientCertificatePath = clientCertificatePath
            self.clientKeyPath = clientKeyPath
            self.verifyPeer = verifyPeer
            self.verifyHostname = verifyHostname
            self.serverName = serverName
        }

        /// TLS that trusts the system's certificate authorities and verifies the broker's certificate and name, with
        /// no client certificate: the same as `TLS()`.
        public static var systemTrust: TLS { TLS() }

        /// Checks that the settings make sense together.
        ///
        /// The rules: ``clientCertificatePath`` and ``clientKeyPath`` are both set or both `nil`; no path and no
        /// ``serverName`` is an empty string (use `nil` for the default). Whether the files exist is checked when the
        /// connection opens.
        ///
        /// - Throws: ``AMQPError`` with code ``AMQPError/Code-swift.struct/invalidConfiguration`` naming the rule
        ///   broken.
        public func validate() throws {
            switch (clientCertificatePath, clientKeyPath) {
            case (.some, nil):
                throw AMQPConfiguration.invalid(
                    "TLS has a client certificate (clientCertificatePath) but no key: set clientKeyPath too")
            case (nil, .some):
                throw AMQPConfiguration.invalid(
                    "TLS has a client key (clientKeyPath) but no certificate: set clientCertificatePath too")
            default:
                break
            }
            let namedValues: [(name: String, value: String?, defaultMeaning: String)] = [
                ("caCertificatePath", caCertificatePath, "the system trust store"),
                ("clientCertificatePath", clientCertificatePath, "no client certificate"),
                ("clientKeyPath", clientKeyPath, "no client certificate"),
                ("serverName", serverName, "the host"),
            ]
            for (name, value, defaultMeaning) in namedValues where value?.isEmpty == true {
                throw AMQPConfiguration.invalid("TLS \(name) is empty; use nil for \(defaultMeaning)")
            }
        }

        /// The settings in initializer syntax, for ``AMQPConfiguration/debugDescription``.
        var fieldsDescription: String {
            func show(_ value: String?) -> String {
                value.map { String(reflecting: $0) } ?? "nil"
            }
            return "TLS(caCertificatePath: \(show(caCertificatePath)), "
                + "clientCertificatePath: \(show(clientCertificatePath)), "
                + "clientKeyPath: \(show(clientKeyPath)), "
                + "verifyPeer: \(verifyPeer), verifyHostname: \(verifyHostname), "
                + "serverName: \(show(serverName)))"
        }
    }
}

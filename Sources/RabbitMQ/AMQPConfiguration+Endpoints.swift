extension AMQPConfiguration {
    /// One broker a connection may be made to: a RabbitMQ node's host and AMQP port, and the name its TLS certificate
    /// carries when that is not the host.
    public struct Endpoint: Sendable, Hashable, CustomStringConvertible {
        /// The node's host name, IPv4 address or IPv6 address (without brackets).
        public var host: String
        /// The node's AMQP port, 1...65535.
        public var port: Int
        /// The TLS server name of this node when it differs from ``host`` (a node reached by address whose
        /// certificate names it); nil: as ``AMQPConfiguration/TLS-swift.struct/serverName`` says.
        ///
        /// - Important: Carried and validated like ``AMQPConfiguration/TLS-swift.struct/serverName``, and not applied
        ///   yet for the same reason: rabbitmq-c 0.11 takes the name it checks and sends from the host.
        public var serverName: String?

        /// Creates an endpoint.
        ///
        /// - Parameters:
        ///   - host: The node's host name or address.
        ///   - port: The node's AMQP port.
        ///   - serverName: The node's TLS server name when it is not `host`. Default `nil`.
        public init(host: String, port: Int, serverName: String? = nil) {
            self.host = host
            self.port = port
            self.serverName = serverName
        }

        /// `host:port`, with an IPv6 address in brackets.
        public var description: String {
            host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        }
    }

    /// Every endpoint a connection attempt walks, in order: ``host``:``port`` first, then ``failoverEndpoints``.
    ///
    /// The first connection and every recovery attempt try them one after the other, without pausing between them;
    /// the recovery backoff comes between two walks of the whole list. With ``shuffleEndpoints`` each walk takes them
    /// in a new random order.
    public var endpoints: [Endpoint] {
        [Endpoint(host: host, port: port, serverName: tls?.serverName)] + failoverEndpoints
    }

    /// Creates a configuration for a cluster from one URL per node, which must agree on everything but their host,
    /// port and TLS server name (`server_name_indication`): scheme, credentials, virtual host, other parameters. The
    /// first gives ``host``, ``port`` and the TLS settings, the others ``failoverEndpoints``. Checked with
    /// ``validate()``.
    ///
    /// ```swift
    /// let configuration = try AMQPConfiguration(urls: [
    ///     "amqp://app:secret@rabbit-1:5672/payments",
    ///     "amqp://app:secret@rabbit-2:5672/payments",
    ///     "amqp://app:secret@rabbit-3:5672/payments",
    /// ])
    /// ```
    ///
    /// - Parameter urls: At least one URL, each as ``init(url:)`` reads it.
    /// - Throws: ``AMQPError`` with code ``AMQPError/Code-swift.struct/invalidConfiguration``: no URL, a URL
    ///   ``init(url:)`` refuses, or a URL that differs from the first in more than its host, port and TLS server name
    ///   (the message names it by position, never by its password).
    public init(urls: [String]) throws {
        guard let first = urls.first else {
            throw Self.invalid("no broker URL was given")
        }
        let base = try AMQPConfiguration(url: first)
        var configuration = base
        for (index, url) in urls.enumerated().dropFirst() {
            let other = try AMQPConfiguration(url: url)
            var comparable = other
            comparable.host = base.host
            comparable.port = base.port
            // Each node may have a certificate of its own: the TLS server name may differ from URL to URL.
            comparable.tls?.serverName = base.tls?.serverName
            guard comparable == base else {
                throw Self.invalid(
                    "broker URL \(index + 1) of \(urls.count) differs from the first in more than its host, port and "
                        + "server name: the URLs of one cluster share the scheme, credentials, virtual host and "
                        + "parameters")
            }
            configuration.failoverEndpoints.append(
                Endpoint(host: other.host, port: other.port, serverName: other.tls?.serverName))
        }
        self = configuration
    }

    /// Checks the failover endpoints as ``validate()`` checks ``host`` and ``port``.
    func validateFailoverEndpoints() throws(AMQPError) {
        for (index, endpoint) in failoverEndpoints.enumerated() {
            let name = "failover endpoint \(index + 1)"
            if endpoint.host.isEmpty {
                throw Self.invalid("the host of \(name) is empty")
            }
            if endpoint.host.utf8.contains(0) {
                throw Self.invalid("the host of \(name) contains a NUL character (U+0000), which cannot be sent")
            }
            if !(1...65535).contains(endpoint.port) {
                throw Self.invalid("the port \(endpoint.port) of \(name) is out of range; use 1...65535")
            }
            if endpoint.serverName?.isEmpty == true {
                throw Self.invalid("the TLS server name of \(name) is empty; use nil for its host")
            }
        }
    }
}

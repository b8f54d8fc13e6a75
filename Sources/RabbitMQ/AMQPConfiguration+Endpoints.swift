extension AMQPConfiguration {
    /// One broker a connection may be made to: a RabbitMQ node's host and AMQP port.
    public struct Endpoint: Sendable, Hashable, CustomStringConvertible {
        /// The node's host name, IPv4 address or IPv6 address (without brackets).
        public var host: String
        /// The node's AMQP port, 1...65535.
        public var port: Int

        /// Creates an endpoint.
        ///
        /// - Parameters:
        ///   - host: The node's host name or address.
        ///   - port: The node's AMQP port.
        public init(host: String, port: Int) {
            self.host = host
            self.port = port
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
        [Endpoint(host: host, port: port)] + failoverEndpoints
    }

    /// Creates a configuration for a cluster from one URL per node, which must agree on everything but their host
    /// and port (scheme, credentials, virtual host, query parameters): the first gives ``host`` and ``port``, the
    /// others ``failoverEndpoints``. Checked with ``validate()``.
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
    ///   ``init(url:)`` refuses, or a URL that differs from the first in more than its host and port (the message
    ///   names it by position, never by its password).
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
            guard comparable == base else {
                throw Self.invalid(
                    "broker URL \(index + 1) of \(urls.count) differs from the first in more than its host and port: "
                        + "the URLs of one cluster share the scheme, credentials, virtual host and parameters")
            }
            configuration.failoverEndpoints.append(Endpoint(host: other.host, port: other.port))
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
        }
    }
}

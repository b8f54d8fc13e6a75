internal import CRabbitMQ
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Creating the TCP or TLS socket of a connection, and small conversions the I/O code shares.
enum RabbitMQCSocket {
    /// A socket for the configuration: plain TCP, or TLS with the configured trust and client certificate.
    ///
    /// The socket belongs to `state` and is freed with it.
    static func make(
        state: amqp_connection_state_t, configuration: AMQPConfiguration
    ) throws(AMQPError) -> OpaquePointer {
        guard let tls = configuration.tls else {
            guard let socket = amqp_tcp_socket_new(state) else {
                throw AMQPError(.libraryError, "rabbitmq-c could not create a TCP socket")
            }
            return socket
        }
        guard let socket = amqp_ssl_socket_new(state) else {
            throw AMQPError(.tlsFailure, "rabbitmq-c could not create a TLS socket")
        }
        // rabbitmq-c 0.11 still allows TLS 1.0 and 1.1 unless told otherwise.
        _ = amqp_ssl_socket_set_ssl_versions(socket, AMQP_TLSv1_2, AMQP_TLSvLATEST)
        amqp_ssl_socket_set_verify_peer(socket, tls.verifyPeer ? 1 : 0)
        amqp_ssl_socket_set_verify_hostname(socket, tls.verifyHostname ? 1 : 0)
        if let caPath = tls.caCertificatePath {
            let status = amqp_ssl_socket_set_cacert(socket, caPath)
            guard status == AMQP_STATUS_OK.rawValue else {
                throw RabbitMQCErrors.library(
                    .tlsFailure, "could not load the CA certificate file \"\(caPath)\"", status: status)
            }
        } else if rmq_ssl_use_default_verify_paths(socket) != 0 {
            throw AMQPError(.tlsFailure, "could not load the system's trusted CA certificates")
        }
        if let certificatePath = tls.clientCertificatePath, let keyPath = tls.clientKeyPath {
            let status = amqp_ssl_socket_set_key(socket, certificatePath, keyPath)
            guard status == AMQP_STATUS_OK.rawValue else {
                throw RabbitMQCErrors.library(
                    .tlsFailure, "could not load the client certificate \"\(certificatePath)\" or its key \"\(keyPath)\"",
                    status: status)
            }
        }
        return socket
    }

    /// The time left until `deadline`, as the `timeval` rabbitmq-c takes (at least one millisecond).
    static func timeout(until deadline: ContinuousClock.Instant) -> timeval {
        let left = max(deadline - .now, .milliseconds(1))
        let (seconds, attoseconds) = left.components
        return rmq_timeval(Int(seconds), Int(attoseconds / 1_000_000_000_000))
    }
}

internal import CRabbitMQ
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Making a rabbitmq-c connection: used at start and by every recovery attempt.
extension RabbitMQCConnection {
    /// Opens a rabbitmq-c connection to `endpoint` and logs in: TCP (or TLS), then the AMQP handshake, all within the connect
    /// timeout. Used at start and by every recovery attempt.
    static func establish(
        _ configuration: AMQPConfiguration, endpoint: AMQPConfiguration.Endpoint, pool: UnsafeMutablePointer<amqp_pool_t>
    ) throws(AMQPError) -> amqp_connection_state_t {
        guard let state = amqp_new_connection() else {
            throw AMQPError(.libraryError, "rabbitmq-c could not allocate a connection")
        }
        var succeeded = false
        defer {
            if !succeeded { amqp_destroy_connection(state) }
        }

        let socket = try RabbitMQCSocket.make(state: state, configuration: configuration)
        let deadline = ContinuousClock.now + configuration.connectTimeout
        var timeout = RabbitMQCSocket.timeout(until: deadline)
        errno = 0
        let status = amqp_socket_open_noblock(socket, endpoint.host, Int32(endpoint.port), &timeout)
        let savedErrno = errno
        guard status == AMQP_STATUS_OK.rawValue else {
            throw RabbitMQCErrors.socketOpen(
                status: status, savedErrno: savedErrno, host: endpoint.host, port: endpoint.port)
        }
        var handshakeTimeout = RabbitMQCSocket.timeout(until: deadline)
        _ = amqp_set_handshake_timeout(state, &handshakeTimeout)

        let encoder = RabbitMQCEncoder(pool: pool)
        var clientProperties = try encoder.table(clientPropertiesTable(configuration))
        let reply: amqp_rpc_reply_t =
            switch configuration.authentication {
            case .plain:
                rmq_login_plain(
                    state, configuration.virtualHost, Int32(configuration.channelMax), Int32(configuration.frameMax),
                    Int32(configuration.heartbeatSeconds), &clientProperties, configuration.username,
                    configuration.password)
            case .external:
                rmq_login_external(
                    state, configuration.virtualHost, Int32(configuration.channelMax), Int32(configuration.frameMax),
                    Int32(configuration.heartbeatSeconds), &clientProperties, configuration.username)
            }
        recycle_amqp_pool(pool)
        guard reply.reply_type == AMQP_RESPONSE_NORMAL else {
            throw RabbitMQCErrors.login(
                reply, username: configuration.username, virtualHost: configuration.virtualHost)
        }
        // Past the handshake, silence is detected by heartbeats, not by a timeout.
        _ = amqp_set_handshake_timeout(state, nil)
        succeeded = true
        return state
    }

    /// The client properties: our product name, the connection name, and the capabilities that make the broker send
    /// `basic.cancel`, `connection.blocked`, confirms with `basic.nack`, and a `connection.close` on bad credentials.
    private static func clientPropertiesTable(_ configuration: AMQPConfiguration) -> AMQPTable {
        var table: AMQPTable = [
            "product": .string("swift-rabbitmq"),
            "capabilities": .table([
                "consumer_cancel_notify": .bool(true),
                "connection.blocked": .bool(true),
                "publisher_confirms": .bool(true),
                "basic.nack": .bool(true),
                "authentication_failure_close": .bool(true),
                "exchange_exchange_bindings": .bool(true),
                "per_consumer_qos": .bool(true),
            ]),
        ]
        if let name = configuration.connectionName {
            table["connection_name"] = .string(name)
        }
        return table
    }
}

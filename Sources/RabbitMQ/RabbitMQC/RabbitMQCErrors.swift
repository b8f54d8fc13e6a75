internal import CRabbitMQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The one place where rabbitmq-c's results become ``AMQPError``s.
enum RabbitMQCErrors {
    /// rabbitmq-c's text for a status code (a static string, so nothing to free).
    static func statusText(_ status: Int32) -> String {
        String(cString: amqp_error_string2(status))
    }

    /// An error for a failed library call, with the library's status attached.
    static func library(_ code: AMQPError.Code, _ message: String, status: Int32) -> AMQPError {
        AMQPError(code, message, libraryStatus: status, libraryStatusText: statusText(status))
    }

    /// An error for a failure of the established connection (socket error, missed heartbeats, bad data).
    static func connectionLost(status: Int32) -> AMQPError {
        let message: String
        switch status {
        case AMQP_STATUS_HEARTBEAT_TIMEOUT.rawValue:
            message = "the broker stopped answering: no data or heartbeat within two heartbeat intervals"
        case AMQP_STATUS_CONNECTION_CLOSED.rawValue, AMQP_STATUS_SOCKET_CLOSED.rawValue:
            message = "the broker closed the TCP connection"
        case AMQP_STATUS_BAD_AMQP_DATA.rawValue, AMQP_STATUS_UNKNOWN_CLASS.rawValue,
            AMQP_STATUS_UNKNOWN_METHOD.rawValue, AMQP_STATUS_UNEXPECTED_STATE.rawValue:
            message = "the connection broke on a protocol error"
        default:
            message = "the connection failed"
        }
        return library(.connectionLost, message, status: status)
    }

    /// An error for a failed socket open, telling an unknown host, a refused port and a timeout apart.
    static func socketOpen(status: Int32, savedErrno: Int32, host: String, port: Int) -> AMQPError {
        let target = "\(host):\(port)"
        switch status {
        case AMQP_STATUS_HOSTNAME_RESOLUTION_FAILED.rawValue:
            return library(.hostNotFound, "the host name \"\(host)\" could not be resolved", status: status)
        case AMQP_STATUS_TIMEOUT.rawValue:
            return library(.connectTimeout, "connecting to \(target) timed out", status: status)
        case AMQP_STATUS_SOCKET_ERROR.rawValue:
            // rabbitmq-c connects without blocking and reads the outcome with SO_ERROR, so errno is left at
            // EINPROGRESS and cannot tell a refusal from an unreachable network; on the usual local or LAN broker it
            // is a refusal.
            return library(
                .connectionRefused,
                "could not connect to \(target): connection refused (nothing listens there) or the network is unreachable",
                status: status)
        case AMQP_STATUS_SSL_ERROR.rawValue, AMQP_STATUS_SSL_HOSTNAME_VERIFY_FAILED.rawValue,
            AMQP_STATUS_SSL_PEER_VERIFY_FAILED.rawValue, AMQP_STATUS_SSL_CONNECTION_FAILED.rawValue,
            AMQP_STATUS_SSL_SET_ENGINE_FAILED.rawValue:
            return library(.tlsFailure, "the TLS handshake with \(target) failed", status: status)
        default:
            let reason = savedErrno != 0 ? String(cString: strerror(savedErrno)) : statusText(status)
            return library(.connectionRefused, "could not connect to \(target): \(reason)", status: status)
        }
    }

    /// An error for a failed login reply.
    static func login(_ reply: amqp_rpc_reply_t, username: String, virtualHost: String) -> AMQPError {
        switch reply.reply_type {
        case AMQP_RESPONSE_SERVER_EXCEPTION where reply.reply.id == AMQP_CONNECTION_CLOSE_METHOD:
            let close = reply.reply.decoded.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
            var error = connectionClose(close)
            switch close.reply_code {
            case 403:
                error.code = .authenticationFailed
                error.message = "the broker refused the credentials of user \"\(username)\""
            case 530:
                error.code = .virtualHostNotAccessible
                error.message = "virtual host \"\(virtualHost)\" does not exist or user \"\(username)\" may not use it"
            default:
                error.message = "the broker refused the connection during login"
            }
            return error
        case AMQP_RESPONSE_LIBRARY_EXCEPTION:
            let status = reply.library_error
            switch status {
            case AMQP_STATUS_BROKER_UNSUPPORTED_SASL_METHOD.rawValue:
                return library(
                    .authenticationMechanismUnsupported, "the broker does not offer the requested SASL mechanism",
                    status: status)
            case AMQP_STATUS_TIMEOUT.rawValue:
                return library(.connectTimeout, "the AMQP handshake timed out", status: status)
            case AMQP_STATUS_CONNECTION_CLOSED.rawValue, AMQP_STATUS_SOCKET_CLOSED.rawValue:
                // Without authentication_failure_close a broker drops the socket on bad credentials; we announce
                // the capability, so this is a broker that closed for another reason during the handshake.
                return library(.connectionLost, "the broker closed the connection during the handshake", status: status)
            default:
                return library(.connectionLost, "the AMQP handshake failed", status: status)
            }
        default:
            return AMQPError(.libraryError, "the AMQP handshake failed without a reply")
        }
    }

    /// The error for a `connection.close` sent by the broker.
    static func connectionClose(_ close: amqp_connection_close_t) -> AMQPError {
        let method = close.class_id == 0 ? nil : AMQPMethod(classID: close.class_id, methodID: close.method_id)
        return AMQPError(
            .connectionClosedByBroker, "the broker closed the connection",
            replyCode: close.reply_code, replyText: RabbitMQCBytes.string(close.reply_text), method: method)
    }

    /// The error for a `channel.close` sent by the broker.
    static func channelClose(_ close: amqp_channel_close_t, channel: UInt16) -> AMQPError {
        let method = close.class_id == 0 ? nil : AMQPMethod(classID: close.class_id, methodID: close.method_id)
        return AMQPError(
            .channelClosedByBroker, "the broker closed channel \(channel)",
            replyCode: close.reply_code, replyText: RabbitMQCBytes.string(close.reply_text), method: method)
    }
}

/// Entry points for the unit tests, which cannot build rabbitmq-c's structures themselves.
extension RabbitMQCErrors {
    /// The error for a broker's `channel.close` with these fields.
    static func channelCloseForTesting(
        channel: UInt16, replyCode: UInt16, replyText: String, classID: UInt16, methodID: UInt16
    ) -> AMQPError {
        var text = Array(replyText.utf8)
        return text.withUnsafeMutableBytes { buffer in
            channelClose(
                amqp_channel_close_t(
                    reply_code: replyCode, reply_text: amqp_bytes_t(len: buffer.count, bytes: buffer.baseAddress),
                    class_id: classID, method_id: methodID),
                channel: channel)
        }
    }

    /// The error for a login refused by a broker's `connection.close` with these fields.
    static func loginRefusedForTesting(replyCode: UInt16, replyText: String, username: String, virtualHost: String)
        -> AMQPError
    {
        var text = Array(replyText.utf8)
        return text.withUnsafeMutableBytes { buffer in
            var close = amqp_connection_close_t(
                reply_code: replyCode, reply_text: amqp_bytes_t(len: buffer.count, bytes: buffer.baseAddress),
                class_id: 10, method_id: 40)
            return withUnsafeMutablePointer(to: &close) { pointer in
                var reply = amqp_rpc_reply_t()
                reply.reply_type = AMQP_RESPONSE_SERVER_EXCEPTION
                reply.reply = amqp_method_t(id: AMQP_CONNECTION_CLOSE_METHOD, decoded: UnsafeMutableRawPointer(pointer))
                return login(reply, username: username, virtualHost: virtualHost)
            }
        }
    }

    /// The error for a login that failed inside rabbitmq-c with `status`.
    static func loginFailedForTesting(status: Int32) -> AMQPError {
        var reply = amqp_rpc_reply_t()
        reply.reply_type = AMQP_RESPONSE_LIBRARY_EXCEPTION
        reply.library_error = status
        return login(reply, username: "user", virtualHost: "/")
    }
}

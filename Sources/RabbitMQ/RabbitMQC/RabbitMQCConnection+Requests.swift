internal import CRabbitMQ
import Foundation
import Logging

/// Sending methods: one-way ones, and synchronous requests queued per channel until their reply arrives.
extension RabbitMQCConnection {
    /// Sends a method that needs no reply. A failure to send is fatal: the socket is broken.
    @discardableResult
    func send<Method>(_ id: amqp_method_number_t, on channel: UInt16, _ method: inout Method) -> Bool {
        let status = withUnsafeMutablePointer(to: &method) { amqp_send_method(state, channel, id, $0) }
        recycle_amqp_pool(pool)
        guard status == AMQP_STATUS_OK.rawValue else {
            fail(RabbitMQCErrors.connectionLost(status: status))
            return false
        }
        return true
    }

    /// Sends a synchronous method on an open channel and registers what to do with its reply.
    ///
    /// `build` fills the C structure (its memory comes from ``pool``); `reply` turns the decoded reply into the
    /// caller's result. Every failure settles the reply.
    func request<Method, Result: Sendable>(
        _ id: amqp_method_number_t,
        on channelID: UInt16,
        expecting replies: [amqp_method_number_t],
        continuation: RequestReply<Result>,
        build: @escaping (RabbitMQCEncoder) throws -> Method,
        reply: @escaping (amqp_method_t) -> Result
    ) {
        request(id, on: channelID, expecting: replies, build: build,
                complete: { continuation.resume(returning: reply($0)) },
                fail: { continuation.resume(throwing: $0) })
    }

    /// The general form of ``request(_:on:expecting:continuation:build:reply:)``, for replies that do not
    /// complete at once (`basic.get-ok` waits for its content).
    ///
    /// AMQP allows one synchronous request in flight per channel, and RabbitMQ relies on it: some replies come from
    /// the queue process and others from the channel process, so pipelined requests can be answered out of order.
    /// A request made while another waits for its reply is therefore queued, and sent when that reply arrives.
    func request<Method>(
        _ id: amqp_method_number_t,
        on channelID: UInt16,
        expecting replies: [amqp_method_number_t],
        closing: Bool = false,
        build: @escaping (RabbitMQCEncoder) throws -> Method,
        complete: @escaping (amqp_method_t) -> Void,
        fail: @escaping (AMQPError) -> Void
    ) {
        // A channel's own close goes out once the machine has marked it closing; nothing else does.
        let usable = closing ? isConnected && machine.channels[channelID] != nil : machine.isUsable(channel: channelID)
        guard usable, let channel = channels[channelID] else {
            fail(refusal(forChannel: channelID))
            return
        }
        let pending = RabbitMQCChannel.PendingReply(
            request: RabbitMQCBytes.method(id), replies: replies, complete: complete, fail: fail)
        let queued = RabbitMQCChannel.QueuedRequest(fail: fail) { [unowned self] in
            self.sendRequest(id, on: channel, build: build, pending: pending)
        }
        if channel.pendingReplies.isEmpty && channel.queuedRequests.isEmpty {
            queued.send()
        } else {
            channel.queuedRequests.append(queued)
        }
    }

    /// Sends a request and registers it as the one awaiting the channel's next reply.
    private func sendRequest<Method>(
        _ id: amqp_method_number_t, on channel: RabbitMQCChannel, build: (RabbitMQCEncoder) throws -> Method,
        pending: RabbitMQCChannel.PendingReply
    ) {
        var method: Method
        do {
            method = try build(encoder)
        } catch let error as AMQPError {
            recycle_amqp_pool(pool)
            pending.fail(error)
            sendNextRequest(on: channel)
            return
        } catch {
            recycle_amqp_pool(pool)
            pending.fail(AMQPError(.invalidArgument, "\(error)"))
            sendNextRequest(on: channel)
            return
        }
        guard send(id, on: channel.id, &method) else {
            // The failed send ended or began recovering the connection; say which, so callers know to retry.
            pending.fail(refusal(forChannel: channel.id))
            return
        }
        logger.trace("sent \(pending.request) on channel \(channel.id)")
        channel.pendingReplies.append(pending)
    }

    /// Sends the channel's next queued request, once nothing awaits a reply.
    func sendNextRequest(on channel: RabbitMQCChannel) {
        guard channel.pendingReplies.isEmpty, !channel.queuedRequests.isEmpty, channels[channel.id] === channel else {
            return
        }
        channel.queuedRequests.removeFirst().send()
    }

    /// Why a command aimed at channel `id` cannot be carried out (see ``ConnectionStateMachine/refusal(forChannel:)``).
    func refusal(forChannel id: UInt16) -> AMQPError {
        machine.refusal(forChannel: id) ?? AMQPError(.channelClosed, "channel \(id) is closed")
    }

    /// The error commands get once the connection has ended.
    var endedError: AMQPError {
        machine.endedError ?? AMQPError(.connectionClosed, "the connection is closed")
    }
}

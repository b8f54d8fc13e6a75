internal import CRabbitMQ
import Foundation

/// Opening and closing channels, as the state machine decides.
extension RabbitMQCConnection {
    /// Opens a channel on the lowest free number (`channel.open`); the reply gets the channel's shared state, from
    /// which the caller builds its ``AMQPChannel``.
    func openChannel(reply: RequestReply<ChannelState>) {
        let id: UInt16
        switch machine.channelOpenRequested() {
        case .success(let allocated): id = allocated
        case .failure(let error):
            reply.resume(throwing: error)
            return
        }
        let shared = ChannelState(id: id, metrics: core.instruments.metrics)
        channels[id] = RabbitMQCChannel(shared: shared)
        request(
            AMQP_CHANNEL_OPEN_METHOD, on: id, expecting: [AMQP_CHANNEL_OPEN_OK_METHOD],
            build: { _ in amqp_channel_open_t(out_of_band: amqp_empty_bytes) },
            complete: { [weak self] _ in
                self?.machine.channelOpened(id)
                reply.resume(returning: shared)
            },
            fail: { [weak self] error in
                if let self, self.channels[id]?.shared === shared {
                    self.machine.channelOpenFailed(id)
                    self.channels[id] = nil
                }
                reply.resume(throwing: error)
            })
    }

    /// Closes a channel (`channel.close` 200); `reply`, if any, is settled once the broker confirmed.
    func closeChannel(_ id: UInt16, reason: String, reply: RequestReply<Void>?) {
        switch machine.channelCloseRequested(id, reason: reason) {
        case .alreadyClosed:
            reply?.resume()
        case .forgotten:
            // No connection to tell (recovering): forgetting the channel is all there is to closing it.
            removeChannel(id, error: nil, consumerError: nil)
            reply?.resume()
        case .sendClose:
            channels[id]?.shared.markClosed(refusal(forChannel: id))
            request(
                AMQP_CHANNEL_CLOSE_METHOD, on: id, expecting: [AMQP_CHANNEL_CLOSE_OK_METHOD], closing: true,
                build: { encoder in
                    amqp_channel_close_t(reply_code: 200, reply_text: encoder.bytes(reason), class_id: 0, method_id: 0)
                },
                complete: { [weak self] _ in
                    self?.channelDidClose(id, error: nil, consumerError: nil)
                    reply?.resume()
                },
                fail: { error in reply?.resume(throwing: error) })
        }
    }

    /// Channel `id` is gone (`error` nil: the close the application asked for completed): the machine forgets it,
    /// and whatever waited on it fails.
    func channelDidClose(_ id: UInt16, error: AMQPError?, consumerError: AMQPError?) {
        machine.channelClosed(id, error: error)
        removeChannel(id, error: error, consumerError: consumerError)
    }

    /// Forgets the I/O thread's side of a channel the machine no longer holds, failing whatever waited on it with
    /// `error` (or else the error the machine recorded for the channel, which later calls get).
    func removeChannel(_ id: UInt16, error: AMQPError?, consumerError: AMQPError?) {
        guard let channel = channels.removeValue(forKey: id) else { return }
        let closedError = machine.closedChannelError(id) ?? AMQPError(.channelClosed, "channel \(id) was closed")
        channel.fail(with: error ?? closedError, closedError: closedError, consumerError: consumerError)
    }
}

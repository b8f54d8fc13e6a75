internal import CRabbitMQ
import Foundation
import Logging

/// Carrying out what the state machine decides: failures, the graceful close, and the end of the connection.
extension RabbitMQCConnection {
    /// The connection failed: recovery begins, or the connection ends with `error`.
    func fail(_ error: AMQPError) {
        apply(machine.connectionFailed(error, now: .now))
    }

    /// Moves a graceful close along, once per turn of the loop.
    func advanceClose() {
        guard machine.stage == .closing else { return }
        let settled = channels.values.allSatisfy { $0.consumers.isEmpty && $0.pendingConfirms.isEmpty }
        apply(machine.closeProgress(now: .now, settled: settled))
    }

    /// Carries out the machine's actions, in order.
    func apply(_ actions: [ConnectionStateMachine<OneShotResult<Void>>.Action]) {
        for action in actions {
            switch action {
            case .cancelConsumers:
                logger.debug("closing the AMQP connection")
                for channel in channels.values {
                    for tag in channel.consumers.keys {
                        cancelConsumer(tag, on: channel.id, continuation: nil)
                    }
                }
            case .closeChannels(let ids, let reason):
                for id in ids {
                    channels[id]?.shared.markClosed(refusal(forChannel: id))
                    request(
                        AMQP_CHANNEL_CLOSE_METHOD, on: id, expecting: [AMQP_CHANNEL_CLOSE_OK_METHOD], closing: true,
                        build: { encoder in
                            amqp_channel_close_t(
                                reply_code: 200, reply_text: encoder.bytes(reason), class_id: 0, method_id: 0)
                        },
                        complete: { [weak self] _ in self?.channelDidClose(id, error: nil, consumerError: nil) },
                        fail: { _ in })
                }
            case .sendConnectionClose:
                let reply = amqp_connection_close(state, 200)
                if reply.reply_type != AMQP_RESPONSE_NORMAL {
                    logger.debug("the broker did not confirm connection.close")
                }
                apply(machine.connectionCloseCompleted())
                logger.debug("AMQP connection closed")
            case .interruptChannels(let error, let forget):
                logger.info("AMQP connection failed; recovering", metadata: ["amqp.error": "\(error)"])
                // The C connection is destroyed by the loop, not here: this may run in the middle of dispatching a
                // frame that still lives in its buffers.
                for id in forget { removeChannel(id, error: nil, consumerError: nil) }
                for channel in channels.values { channel.interrupt(with: error) }
            case .finish(let error, let consumerError):
                if case .ended(let cause?) = machine.phase {
                    logger.info("AMQP connection lost: \(cause)")
                }
                let leftovers = core.commands.shutdown(with: error)
                for id in Array(channels.keys) {
                    removeChannel(id, error: error, consumerError: consumerError)
                }
                for command in leftovers { command.fail(error) }
            case .recordEnd(let cause):
                core.didEnd(with: cause)
            case .report(let event):
                core.report(event)
            case .resumeCloseWaiters(let waiters):
                for waiter in waiters { waiter.resume() }
            }
        }
    }
}

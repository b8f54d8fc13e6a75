internal import CRabbitMQ
import Foundation
import Logging

/// Every frame the broker sends goes through here, in the order it arrived: replies complete the request at the head
/// of their channel's queue, content frames assemble messages, and asynchronous methods (deliveries, confirms,
/// returns, cancellations, closes, flow control) reach whoever waits for them.
extension RabbitMQCConnection {
    func dispatch(_ frame: amqp_frame_t) {
        // Everything below copies what it keeps, so the channel's buffers can be reused at once; this keeps memory
        // flat when large messages stream in.
        defer { amqp_maybe_release_buffers_on_channel(state, frame.channel) }
        switch Int32(frame.frame_type) {
        case AMQP_FRAME_METHOD:
            dispatchMethod(frame.payload.method, on: frame.channel)
        case AMQP_FRAME_HEADER:
            receiveHeader(
                bodySize: frame.payload.properties.body_size, decoded: frame.payload.properties.decoded,
                on: frame.channel)
        case AMQP_FRAME_BODY:
            receiveBody(frame.payload.body_fragment, on: frame.channel)
        default:
            break
        }
    }

    private func dispatchMethod(_ method: amqp_method_t, on channelID: UInt16) {
        logger.trace("received \(RabbitMQCBytes.method(method.id)) on channel \(channelID)")
        switch method.id {
        case AMQP_CONNECTION_CLOSE_METHOD:
            let close = method.decoded.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
            let error = RabbitMQCErrors.connectionClose(close)
            var ok = amqp_connection_close_ok_t(dummy: 0)
            _ = withUnsafeMutablePointer(to: &ok) { amqp_send_method(state, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, $0) }
            fail(error)
        case AMQP_CONNECTION_BLOCKED_METHOD:
            let blocked = method.decoded.assumingMemoryBound(to: amqp_connection_blocked_t.self).pointee
            let reason = RabbitMQCBytes.string(blocked.reason)
            core.setBlocked(reason)
            logger.info("the broker blocked publishing on this connection", metadata: ["amqp.reason": "\(reason)"])
        case AMQP_CONNECTION_UNBLOCKED_METHOD:
            core.setBlocked(nil)
            logger.info("the broker unblocked this connection")
        case AMQP_CHANNEL_CLOSE_METHOD:
            let close = method.decoded.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
            let error = RabbitMQCErrors.channelClose(close, channel: channelID)
            // rabbitmq-c does not answer for us; without close-ok the broker ignores the channel
            // (see <doc:RabbitMQCBehaviour#Closing-a-channel>).
            var ok = amqp_channel_close_ok_t(dummy: 0)
            guard send(AMQP_CHANNEL_CLOSE_OK_METHOD, on: channelID, &ok) else { return }
            logger.info("the broker closed a channel", metadata: ["amqp.channel": "\(channelID)", "amqp.error": "\(error)"])
            channelDidClose(channelID, error: error, consumerError: error)
        case AMQP_CHANNEL_FLOW_METHOD:
            let flow = method.decoded.assumingMemoryBound(to: amqp_channel_flow_t.self).pointee
            var ok = amqp_channel_flow_ok_t(active: flow.active)
            send(AMQP_CHANNEL_FLOW_OK_METHOD, on: channelID, &ok)
        case AMQP_BASIC_DELIVER_METHOD:
            let deliver = method.decoded.assumingMemoryBound(to: amqp_basic_deliver_t.self).pointee
            beginContent(
                .delivery(
                    consumerTag: names.string(deliver.consumer_tag), deliveryTag: deliver.delivery_tag,
                    redelivered: deliver.redelivered != 0, exchange: names.string(deliver.exchange),
                    routingKey: names.string(deliver.routing_key)),
                on: channelID)
        case AMQP_BASIC_RETURN_METHOD:
            let returned = method.decoded.assumingMemoryBound(to: amqp_basic_return_t.self).pointee
            beginContent(
                .returned(
                    replyCode: returned.reply_code, replyText: RabbitMQCBytes.string(returned.reply_text),
                    exchange: RabbitMQCBytes.string(returned.exchange),
                    routingKey: RabbitMQCBytes.string(returned.routing_key)),
                on: channelID)
        case AMQP_BASIC_ACK_METHOD:
            let ack = method.decoded.assumingMemoryBound(to: amqp_basic_ack_t.self).pointee
            settleConfirms(on: channelID, upTo: ack.delivery_tag, multiple: ack.multiple != 0, acked: true)
        case AMQP_BASIC_NACK_METHOD:
            let nack = method.decoded.assumingMemoryBound(to: amqp_basic_nack_t.self).pointee
            settleConfirms(on: channelID, upTo: nack.delivery_tag, multiple: nack.multiple != 0, acked: false)
        case AMQP_BASIC_CANCEL_METHOD:
            let cancel = method.decoded.assumingMemoryBound(to: amqp_basic_cancel_t.self).pointee
            let tag = RabbitMQCBytes.string(cancel.consumer_tag)
            if let consumer = channels[channelID]?.consumers.removeValue(forKey: tag) {
                logger.info("the broker cancelled a consumer", metadata: ["amqp.consumer_tag": "\(tag)"])
                consumer.sink.finish(throwing: AMQPError(
                    .consumerCancelledByBroker,
                    "the broker cancelled consumer \"\(tag)\" (its queue was deleted or became unavailable)",
                    method: AMQPMethod(classID: 60, methodID: 30)))
            }
            if cancel.nowait == 0 {
                var ok = amqp_basic_cancel_ok_t(consumer_tag: encoder.bytes(tag))
                send(AMQP_BASIC_CANCEL_OK_METHOD, on: channelID, &ok)
            }
        default:
            completeReply(method, on: channelID)
        }
    }

    /// Hands a synchronous reply to the request waiting at the head of its channel.
    private func completeReply(_ method: amqp_method_t, on channelID: UInt16) {
        guard let channel = channels[channelID], !channel.pendingReplies.isEmpty else {
            logger.debug(
                "unexpected method from the broker ignored",
                metadata: ["amqp.channel": "\(channelID)", "amqp.method": "\(RabbitMQCBytes.method(method.id))"])
            return
        }
        let pending = channel.pendingReplies.removeFirst()
        guard pending.replies.contains(method.id) else {
            let error = AMQPError(
                .connectionLost,
                "the broker answered \(RabbitMQCBytes.method(method.id)) to \(pending.request): protocol out of step",
                method: pending.request)
            pending.fail(error)
            fail(error)
            return
        }
        pending.complete(method)
        if channels[channelID] === channel {
            sendNextRequest(on: channel)
        }
    }

    private func settleConfirms(on channelID: UInt16, upTo tag: UInt64, multiple: Bool, acked: Bool) {
        guard let channel = channels[channelID] else { return }
        let released = channel.settleConfirms(upTo: tag, multiple: multiple, acked: acked)
        channel.shared.releaseConfirmSlots(released)
    }

    // MARK: - Content

    /// Starts assembling a message whose header and body frames follow on the channel.
    func beginContent(_ owner: RabbitMQCChannel.ContentOwner, on channelID: UInt16) {
        guard let channel = channels[channelID] else { return }
        channel.content = RabbitMQCChannel.Content(owner: owner)
    }

    private func receiveHeader(bodySize: UInt64, decoded: UnsafeMutableRawPointer?, on channelID: UInt16) {
        guard let channel = channels[channelID] else { return }
        // Taken out rather than copied, so that its body is uniquely owned and filled in place.
        guard var content = channel.content.take(), !content.headerSeen else {
            fail(AMQPError(.connectionLost, "the broker sent a content header without a method on channel \(channelID)"))
            return
        }
        if let decoded {
            content.properties = AMQPProperties(
                decoding: decoded.assumingMemoryBound(to: amqp_basic_properties_t.self).pointee)
        }
        content.headerSeen = true
        content.expectedSize = Int(bodySize)
        if bodySize == 0 {
            completeContent(content, on: channel)
        } else {
            content.body.reserveCapacity(Int(bodySize))
            channel.content = content
        }
    }

    private func receiveBody(_ fragment: amqp_bytes_t, on channelID: UInt16) {
        guard let channel = channels[channelID] else { return }
        guard var content = channel.content.take(), content.headerSeen else {
            fail(AMQPError(.connectionLost, "the broker sent a content body without a header on channel \(channelID)"))
            return
        }
        if fragment.len > 0, let start = fragment.bytes {
            content.body.append(start.assumingMemoryBound(to: UInt8.self), count: fragment.len)
        }
        guard content.body.count >= content.expectedSize else {
            // More body frames follow.
            channel.content = content
            return
        }
        completeContent(content, on: channel)
    }

    private func completeContent(_ content: consuming RabbitMQCChannel.Content, on channel: RabbitMQCChannel) {
        switch content.owner {
        case .delivery(let consumerTag, let deliveryTag, let redelivered, let exchange, let routingKey):
            let consumer = channel.consumers[consumerTag]
            // Unknown consumers count too: their deliveries stay unacknowledged on the broker.
            if consumer?.noAck != true { channel.unsettled.delivered(deliveryTag) }
            guard let consumer else {
                logger.warning(
                    "delivery for an unknown consumer dropped; the broker redelivers it when the channel closes",
                    metadata: ["amqp.consumer_tag": "\(consumerTag)", "amqp.delivery_tag": "\(deliveryTag)"])
                return
            }
            let delivery = InboundMessage(
                body: content.body, properties: content.properties, exchange: exchange, routingKey: routingKey,
                deliveryTag: deliveryTag, isRedelivered: redelivered, consumerTag: consumerTag,
                remainingMessageCount: nil, epoch: channel.epoch)
            switch consumer.sink.append(delivery) {
            case .enqueued:
                // Its reader is woken once the read pass ends: one thread switch for a burst of deliveries.
                if readersToWake.last !== consumer.sink && !readersToWake.contains(where: { $0 === consumer.sink }) {
                    readersToWake.append(consumer.sink)
                }
            case .terminated where !consumer.noAck:
                // Nobody iterates the consumer any more (its cancel is on the way): give the message back now
                // rather than holding it until the channel closes.
                channel.unsettled.settle(deliveryTag)
                if amqp_basic_nack(state, channel.id, deliveryTag, 0, 1) != AMQP_STATUS_OK.rawValue {
                    fail(AMQPError(.connectionLost, "could not requeue a delivery"))
                }
            case .terminated:
                break
            }
        case .returned(let replyCode, let replyText, let exchange, let routingKey):
            let returned = AMQPReturnedMessage(
                replyCode: replyCode, replyText: replyText, exchange: exchange, routingKey: routingKey,
                properties: content.properties, body: content.body)
            if channel.confirmsEnabled { channel.attachReturn(returned) }
            logger.debug(
                "the broker returned a message",
                metadata: ["amqp.reply_code": "\(replyCode)", "amqp.routing_key": "\(routingKey)"])
            channel.shared.deliverReturned(returned)
        case .fetched(let deliveryTag, let redelivered, let exchange, let routingKey, let remaining, let noAck, let reply):
            if !noAck { channel.unsettled.delivered(deliveryTag) }
            reply.resume(returning: InboundMessage(
                body: content.body, properties: content.properties, exchange: exchange, routingKey: routingKey,
                deliveryTag: deliveryTag, isRedelivered: redelivered, consumerTag: nil,
                remainingMessageCount: remaining, epoch: channel.epoch))
        }
    }
}

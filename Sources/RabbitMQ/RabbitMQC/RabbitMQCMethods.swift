internal import CRabbitMQ
import Foundation

/// The synchronous AMQP methods, each built as rabbitmq-c's C structure and sent without blocking; the reply
/// completes the caller's continuation when the loop dispatches it.
extension RabbitMQCConnection {
    // MARK: Exchanges

    func declareExchange(
        on channel: UInt16, name: String, type: String, passive: Bool, durable: Bool, autoDelete: Bool,
        isInternal: Bool, arguments: AMQPTable, continuation: RequestReply<Void>
    ) {
        request(
            AMQP_EXCHANGE_DECLARE_METHOD, on: channel, expecting: [AMQP_EXCHANGE_DECLARE_OK_METHOD],
            continuation: continuation,
            build: { encoder in
                amqp_exchange_declare_t(
                    ticket: 0, exchange: encoder.bytes(name), type: encoder.bytes(type), passive: flag(passive),
                    durable: flag(durable), auto_delete: flag(autoDelete), internal: flag(isInternal), nowait: 0,
                    arguments: try encoder.table(arguments))
            },
            reply: { [weak self] _ in
                if !passive {
                    self?.topology.record(
                        .exchange(
                            name: name, type: type, durable: durable, autoDelete: autoDelete, isInternal: isInternal,
                            arguments: arguments))
                }
            })
    }

    func deleteExchange(
        on channel: UInt16, name: String, ifUnused: Bool, continuation: RequestReply<Void>
    ) {
        request(
            AMQP_EXCHANGE_DELETE_METHOD, on: channel, expecting: [AMQP_EXCHANGE_DELETE_OK_METHOD],
            continuation: continuation,
            build: { encoder in
                amqp_exchange_delete_t(ticket: 0, exchange: encoder.bytes(name), if_unused: flag(ifUnused), nowait: 0)
            },
            reply: { [weak self] _ in self?.topology.removeExchange(name) })
    }

    func bindExchange(
        on channel: UInt16, destination: String, source: String, routingKey: String, arguments: AMQPTable,
        unbind: Bool, continuation: RequestReply<Void>
    ) {
        let binding = RabbitMQCTopology.Entry.exchangeBinding(
            destination: destination, source: source, routingKey: routingKey, arguments: arguments)
        if unbind {
            request(
                AMQP_EXCHANGE_UNBIND_METHOD, on: channel, expecting: [AMQP_EXCHANGE_UNBIND_OK_METHOD],
                continuation: continuation,
                build: { encoder in
                    amqp_exchange_unbind_t(
                        ticket: 0, destination: encoder.bytes(destination), source: encoder.bytes(source),
                        routing_key: encoder.bytes(routingKey), nowait: 0, arguments: try encoder.table(arguments))
                },
                reply: { [weak self] _ in self?.topology.removeBinding(binding) })
        } else {
            request(
                AMQP_EXCHANGE_BIND_METHOD, on: channel, expecting: [AMQP_EXCHANGE_BIND_OK_METHOD],
                continuation: continuation,
                build: { encoder in
                    amqp_exchange_bind_t(
                        ticket: 0, destination: encoder.bytes(destination), source: encoder.bytes(source),
                        routing_key: encoder.bytes(routingKey), nowait: 0, arguments: try encoder.table(arguments))
                },
                reply: { [weak self] _ in self?.topology.record(binding) })
        }
    }

    // MARK: Queues

    func declareQueue(
        on channel: UInt16, name: String, passive: Bool, durable: Bool, exclusive: Bool, autoDelete: Bool,
        arguments: AMQPTable, continuation: RequestReply<AMQPQueueInfo>
    ) {
        request(
            AMQP_QUEUE_DECLARE_METHOD, on: channel, expecting: [AMQP_QUEUE_DECLARE_OK_METHOD],
            continuation: continuation,
            build: { encoder in
                amqp_queue_declare_t(
                    ticket: 0, queue: encoder.bytes(name), passive: flag(passive), durable: flag(durable),
                    exclusive: flag(exclusive), auto_delete: flag(autoDelete), nowait: 0,
                    arguments: try encoder.table(arguments))
            },
            reply: { [weak self] method in
                let ok = method.decoded.assumingMemoryBound(to: amqp_queue_declare_ok_t.self).pointee
                let info = AMQPQueueInfo(
                    name: RabbitMQCBytes.string(ok.queue), messageCount: ok.message_count,
                    consumerCount: ok.consumer_count)
                if !passive {
                    self?.topology.record(
                        .queue(
                            name: info.name, durable: durable, exclusive: exclusive, autoDelete: autoDelete,
                            arguments: arguments, serverNamed: name.isEmpty))
                }
                return info
            })
    }

    func bindQueue(
        on channel: UInt16, queue: String, exchange: String, routingKey: String, arguments: AMQPTable,
        unbind: Bool, continuation: RequestReply<Void>
    ) {
        let binding = RabbitMQCTopology.Entry.queueBinding(
            queue: queue, exchange: exchange, routingKey: routingKey, arguments: arguments)
        if unbind {
            request(
                AMQP_QUEUE_UNBIND_METHOD, on: channel, expecting: [AMQP_QUEUE_UNBIND_OK_METHOD],
                continuation: continuation,
                build: { encoder in
                    amqp_queue_unbind_t(
                        ticket: 0, queue: encoder.bytes(queue), exchange: encoder.bytes(exchange),
                        routing_key: encoder.bytes(routingKey), arguments: try encoder.table(arguments))
                },
                reply: { [weak self] _ in self?.topology.removeBinding(binding) })
        } else {
            request(
                AMQP_QUEUE_BIND_METHOD, on: channel, expecting: [AMQP_QUEUE_BIND_OK_METHOD],
                continuation: continuation,
                build: { encoder in
                    amqp_queue_bind_t(
                        ticket: 0, queue: encoder.bytes(queue), exchange: encoder.bytes(exchange),
                        routing_key: encoder.bytes(routingKey), nowait: 0, arguments: try encoder.table(arguments))
                },
                reply: { [weak self] _ in self?.topology.record(binding) })
        }
    }

    func purgeQueue(on channel: UInt16, name: String, continuation: RequestReply<UInt32>) {
        request(
            AMQP_QUEUE_PURGE_METHOD, on: channel, expecting: [AMQP_QUEUE_PURGE_OK_METHOD],
            continuation: continuation,
            build: { encoder in amqp_queue_purge_t(ticket: 0, queue: encoder.bytes(name), nowait: 0) },
            reply: { method in method.decoded.assumingMemoryBound(to: amqp_queue_purge_ok_t.self).pointee.message_count })
    }

    func deleteQueue(
        on channel: UInt16, name: String, ifUnused: Bool, ifEmpty: Bool,
        continuation: RequestReply<UInt32>
    ) {
        request(
            AMQP_QUEUE_DELETE_METHOD, on: channel, expecting: [AMQP_QUEUE_DELETE_OK_METHOD],
            continuation: continuation,
            build: { encoder in
                amqp_queue_delete_t(
                    ticket: 0, queue: encoder.bytes(name), if_unused: flag(ifUnused), if_empty: flag(ifEmpty),
                    nowait: 0)
            },
            reply: { [weak self] method in
                self?.topology.removeQueue(name)
                return method.decoded.assumingMemoryBound(to: amqp_queue_delete_ok_t.self).pointee.message_count
            })
    }

    // MARK: Basic

    func setPrefetch(
        on channel: UInt16, count: UInt16, global: Bool, continuation: RequestReply<Void>
    ) {
        request(
            AMQP_BASIC_QOS_METHOD, on: channel, expecting: [AMQP_BASIC_QOS_OK_METHOD], continuation: continuation,
            build: { _ in amqp_basic_qos_t(prefetch_size: 0, prefetch_count: count, global: flag(global)) },
            reply: { [weak self] _ in self?.channels[channel]?.prefetch = (count, global) })
    }

    func enableConfirms(on channelID: UInt16, continuation: RequestReply<Void>) {
        request(
            AMQP_CONFIRM_SELECT_METHOD, on: channelID, expecting: [AMQP_CONFIRM_SELECT_OK_METHOD],
            continuation: continuation,
            build: { _ in amqp_confirm_select_t(nowait: 0) },
            reply: { _ in () })
        // The broker numbers publishes from the moment it processes confirm.select, which precedes every publish
        // queued after it, so count from now rather than from the reply.
        if let channel = channels[channelID], !channel.confirmsEnabled {
            channel.confirmsEnabled = true
        }
    }

    func recover(on channel: UInt16, requeue: Bool, continuation: RequestReply<Void>) {
        request(
            AMQP_BASIC_RECOVER_METHOD, on: channel, expecting: [AMQP_BASIC_RECOVER_OK_METHOD],
            continuation: continuation,
            build: { _ in amqp_basic_recover_t(requeue: flag(requeue)) },
            reply: { _ in () })
    }

    /// Starts a consumer (`basic.consume`); deliveries go to `sink` from the `basic.consume-ok` on.
    func consume(
        on channelID: UInt16, queue: String, tag: String, noAck: Bool, exclusive: Bool, arguments: AMQPTable,
        sink: DeliveryBuffer,
        continuation: RequestReply<String>
    ) {
        request(
            AMQP_BASIC_CONSUME_METHOD, on: channelID, expecting: [AMQP_BASIC_CONSUME_OK_METHOD],
            build: { encoder in
                amqp_basic_consume_t(
                    ticket: 0, queue: encoder.bytes(queue), consumer_tag: encoder.bytes(tag), no_local: 0,
                    no_ack: flag(noAck), exclusive: flag(exclusive), nowait: 0,
                    arguments: try encoder.table(arguments))
            },
            complete: { [weak self] method in
                let ok = method.decoded.assumingMemoryBound(to: amqp_basic_consume_ok_t.self).pointee
                let tag = RabbitMQCBytes.string(ok.consumer_tag)
                self?.channels[channelID]?.consumers[tag] = RabbitMQCChannel.Consumer(
                    noAck: noAck, sink: sink, queue: queue, exclusive: exclusive, arguments: arguments)
                continuation.resume(returning: tag)
                if sink.isTerminated {
                    // The caller stopped waiting (its task was cancelled) before the broker started the consumer:
                    // nobody will read it, so stop it now rather than let deliveries pile up until the channel closes.
                    self?.cancelConsumer(tag, on: channelID, continuation: nil)
                }
            },
            fail: { error in
                sink.finish(throwing: error)
                continuation.resume(throwing: error)
            })
    }

    /// Cancels a consumer (`basic.cancel`); its sequence ends at the `basic.cancel-ok`, after the deliveries that
    /// were already on their way.
    func cancelConsumer(_ tag: String, on channelID: UInt16, continuation: RequestReply<Void>?) {
        guard channels[channelID]?.consumers[tag] != nil else {
            continuation?.resume()
            return
        }
        if isRecovering {
            // Not restarted by recovery, then: the sequence ends here.
            channels[channelID]?.consumers.removeValue(forKey: tag)?.sink.finish()
            continuation?.resume()
            return
        }
        request(
            AMQP_BASIC_CANCEL_METHOD, on: channelID, expecting: [AMQP_BASIC_CANCEL_OK_METHOD],
            build: { encoder in amqp_basic_cancel_t(consumer_tag: encoder.bytes(tag), nowait: 0) },
            complete: { [weak self] _ in
                self?.channels[channelID]?.consumers.removeValue(forKey: tag)?.sink.finish()
                continuation?.resume()
            },
            fail: { error in continuation?.resume(throwing: error) })
    }

    /// Fetches one message (`basic.get`): nil for `basic.get-empty`, else the delivery once its content arrived.
    func get(
        on channelID: UInt16, queue: String, noAck: Bool, continuation: RequestReply<InboundMessage?>
    ) {
        request(
            AMQP_BASIC_GET_METHOD, on: channelID, expecting: [AMQP_BASIC_GET_OK_METHOD, AMQP_BASIC_GET_EMPTY_METHOD],
            build: { encoder in amqp_basic_get_t(ticket: 0, queue: encoder.bytes(queue), no_ack: flag(noAck)) },
            complete: { [weak self] method in
                guard method.id == AMQP_BASIC_GET_OK_METHOD else {
                    continuation.resume(returning: nil)
                    return
                }
                let ok = method.decoded.assumingMemoryBound(to: amqp_basic_get_ok_t.self).pointee
                self?.beginContent(
                    .fetched(
                        deliveryTag: ok.delivery_tag, redelivered: ok.redelivered != 0,
                        exchange: RabbitMQCBytes.string(ok.exchange), routingKey: RabbitMQCBytes.string(ok.routing_key),
                        remaining: ok.message_count, noAck: noAck, reply: continuation),
                    on: channelID)
            },
            fail: { continuation.resume(throwing: $0) })
    }
}

/// A Swift `Bool` as rabbitmq-c's `amqp_boolean_t`.
private func flag(_ value: Bool) -> amqp_boolean_t {
    value ? 1 : 0
}

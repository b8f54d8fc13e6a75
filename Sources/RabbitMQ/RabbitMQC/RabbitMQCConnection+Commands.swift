internal import CRabbitMQ
import Foundation
import Logging

/// What tasks queue for the I/O thread: publishes, acknowledgements, and closures that run against the connection.
extension RabbitMQCConnection {
    func execute(_ command: ConnectionCommand) {
        switch command {
        case .perform(let body, _):
            body(self)
        case .publish(let request):
            publish(request)
        case .acknowledge(let request):
            acknowledge(request)
        case .close(let waiter):
            apply(machine.closeRequested(by: waiter, now: .now))
        case .run(let job):
            job.runSynchronously(on: core.taskExecutor.asUnownedTaskExecutor())
        }
    }

    func publish(_ request: PublishRequest) {
        // The machine's rule asked of its fields: a method call on the machine copied all of it for every publish.
        guard machine.stage.allowsMethods(on: machine.channels[request.channelID]),
            let channel = channels[request.channelID]
        else {
            refuse(request, with: refusal(forChannel: request.channelID))
            return
        }
        var status: Int32 = AMQP_STATUS_OK.rawValue
        var exchange = request.exchange
        var routingKey = request.routingKey
        do {
            // The common case, plain properties, needs neither the encoder nor its scratch pool.
            var properties = request.properties.isEmpty ? amqp_basic_properties_t() : try encoder.properties(request.properties)
            // Names are passed straight from their UTF-8 storage, valid for the duration of the call.
            exchange.withUTF8 { exchangeBytes in
                routingKey.withUTF8 { routingKeyBytes in
                    request.body.withUnsafeBytes { body in
                        status = amqp_basic_publish(
                            state, request.channelID,
                            amqp_bytes_t(len: exchangeBytes.count, bytes: UnsafeMutableRawPointer(mutating: exchangeBytes.baseAddress)),
                            amqp_bytes_t(len: routingKeyBytes.count, bytes: UnsafeMutableRawPointer(mutating: routingKeyBytes.baseAddress)),
                            request.mandatory ? 1 : 0, 0, &properties,
                            amqp_bytes_t(len: body.count, bytes: UnsafeMutableRawPointer(mutating: body.baseAddress)))
                    }
                }
            }
        } catch {
            recycle_amqp_pool(pool)
            refuse(request, with: error)
            logger.error("message not published: \(error)")
            return
        }
        if !request.properties.isEmpty { recycle_amqp_pool(pool) }
        guard status == AMQP_STATUS_OK.rawValue else {
            // The method frame may be out already, so the stream is no longer in a known state
            // (see <doc:RabbitMQCBehaviour#A-failed-publish-ends-the-connection>).
            let error = RabbitMQCErrors.connectionLost(status: status)
            refuse(request, with: error)
            fail(error)
            return
        }
        if channel.confirmsEnabled {
            channel.recordPublish(request)
        }
    }

    /// Fails a publish that was not sent, and gives back the confirm-window slot its publisher took (the channel
    /// may outlive this, across a recovery).
    private func refuse(_ request: PublishRequest, with error: AMQPError) {
        guard let confirmation = request.confirmation else { return }
        confirmation.settle(.failure(error))
        channels[request.channelID]?.shared.releaseConfirmSlots(1)
    }

    /// Sends a run of single acknowledgements: on each channel, as one `basic.ack` with `multiple` when no other
    /// delivery at or below the highest tag awaits its acknowledgement (then it settles exactly the same ones), as
    /// separate ones otherwise. Consumers acking every delivery thus cost one frame per batch, not per message.
    func sendAcknowledgements(_ requests: inout [AcknowledgeRequest]) {
        guard !requests.isEmpty else { return }
        defer { requests.removeAll(keepingCapacity: true) }
        guard requests.count > 1, isConnected else {
            for request in requests { acknowledge(request) }
            return
        }
        var byChannel: [UInt16: [AcknowledgeRequest]] = [:]
        for request in requests { byChannel[request.channelID, default: []].append(request) }
        for (channelID, group) in byChannel {
            guard let channel = channels[channelID], machine.stage.allowsMethods(on: machine.channels[channelID]),
                group.allSatisfy({ $0.epoch == nil || $0.epoch == channel.epoch })
            else {
                for request in group { acknowledge(request) }
                continue
            }
            var highest: UInt64 = 0
            for request in group {
                channel.unsettled.settle(request.deliveryTag)
                highest = max(highest, request.deliveryTag)
            }
            if group.count > 1, (channel.unsettled.lowest ?? .max) > highest {
                let status = amqp_basic_ack(state, channelID, highest, 1)
                if status != AMQP_STATUS_OK.rawValue {
                    fail(RabbitMQCErrors.connectionLost(status: status))
                    return
                }
            } else {
                for request in group { acknowledge(request) }
            }
        }
    }

    private func acknowledge(_ request: AcknowledgeRequest) {
        // Not once the channel's close went out either: the broker answers a method on a channel it has closed with
        // 504 CHANNEL_ERROR, which ends the whole connection (seen in FaultTests), and it requeues those deliveries.
        guard let channel = channels[request.channelID], !isRecovering,
            machine.stage.allowsMethods(on: machine.channels[request.channelID])
        else {
            logger.debug(
                "acknowledgement of a delivery on a closed channel ignored",
                metadata: ["amqp.channel": "\(request.channelID)", "amqp.delivery_tag": "\(request.deliveryTag)"])
            return
        }
        if let epoch = request.epoch, epoch != channel.epoch {
            // The delivery came on a connection that has since been replaced: its tag means nothing now, and the
            // broker has already put the message back in its queue.
            logger.info(
                "acknowledgement of a delivery from before the connection recovered ignored",
                metadata: ["amqp.channel": "\(request.channelID)", "amqp.delivery_tag": "\(request.deliveryTag)"])
            return
        }
        if request.multiple {
            channel.unsettled.settle(upTo: request.deliveryTag)
        } else {
            channel.unsettled.settle(request.deliveryTag)
        }
        let status: Int32
        switch request.kind {
        case .ack:
            status = amqp_basic_ack(state, request.channelID, request.deliveryTag, request.multiple ? 1 : 0)
        case .nack(let requeue):
            status = amqp_basic_nack(
                state, request.channelID, request.deliveryTag, request.multiple ? 1 : 0, requeue ? 1 : 0)
        case .reject(let requeue):
            status = amqp_basic_reject(state, request.channelID, request.deliveryTag, requeue ? 1 : 0)
        }
        if status != AMQP_STATUS_OK.rawValue {
            fail(RabbitMQCErrors.connectionLost(status: status))
        }
    }
}

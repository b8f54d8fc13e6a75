internal import CRabbitMQ
import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Automatic recovery (see ``AMQPConfiguration/Recovery-swift.struct``), on the I/O thread.
///
/// A recoverable failure destroys the C connection, fails what was in flight with a retriable error, and keeps the
/// channels, their consumers and settings, and the recorded topology. The loop then waits out a backoff (still
/// answering commands: they fail fast) and tries again. A successful attempt declares the topology again and reopens
/// every channel with its prefetch, confirm mode and consumers, using rabbitmq-c's blocking calls: nothing else can
/// happen on the connection meanwhile, and frames that arrive for the restarted consumers are queued by rabbitmq-c
/// and dispatched by the loop afterwards.
extension RabbitMQCConnection {
    /// One turn of the loop while recovering: answer commands, then wait for the next attempt or make it.
    func recoverIfDue(descriptors wake: inout pollfd, tickMilliseconds: Int32) {
        if hasLiveState {
            amqp_destroy_connection(state)
            hasLiveState = false
        }
        for command in core.commands.takeAll() {
            execute(command)
        }
        switch machine.recoveryStep(now: .now) {
        case .none:
            return
        case .wait(let delay):
            if core.commands.prepareToSleep() {
                wake.revents = 0
                _ = poll(&wake, 1, min(Int32(clamping: delay.roundedUpMilliseconds), tickMilliseconds))
                core.commands.didWake(drain: wake.revents & Int16(POLLIN) != 0)
            }
        case .connect(let attempt, let endpoint):
            attemptRecovery(attempt, on: endpoint)
        }
    }

    private func attemptRecovery(_ attempt: Int, on endpoint: AMQPConfiguration.Endpoint) {
        do {
            state = try Self.establish(core.configuration, endpoint: endpoint, pool: pool)
            hasLiveState = true
            socketDescriptor = amqp_get_sockfd(state)
            tick = Self.tick(for: state)
            silenceLimit = Self.silenceLimit(for: state)
            lastDataAt = .now
            try redeclareTopology()
            try reopenChannels()
        } catch {
            if hasLiveState {
                amqp_destroy_connection(state)
                hasLiveState = false
            }
            logger.info(
                "AMQP connection recovery could not reach an endpoint",
                metadata: ["amqp.attempt": "\(attempt)", "amqp.endpoint": "\(endpoint)", "amqp.error": "\(error)"])
            apply(machine.recoveryEndpointFailed(error, now: .now))
            if isEnded { logger.info("AMQP connection recovery gave up", metadata: ["amqp.attempts": "\(attempt)"]) }
            return
        }
        let recovered = machine.recoverySucceeded()
        // The new endpoint and parameters are recorded before anyone hears of the recovery.
        didEstablish()
        apply(recovered)
        logger.info(
            "AMQP connection recovered", metadata: ["amqp.attempts": "\(attempt)", "amqp.endpoint": "\(endpoint)"])
    }

    // MARK: - Topology

    /// Declares every recorded exchange, queue and binding again, in the order the application declared them. One
    /// the broker now refuses (say, a queue redeclared elsewhere with other arguments) is logged and skipped.
    private func redeclareTopology() throws(AMQPError) {
        guard !topology.entries.isEmpty else { return }
        var channelID = try openSpareChannel()
        // By index, over the live list: declaring a server-named queue renames it in the entries that follow.
        var index = 0
        while index < topology.entries.count {
            let entry = topology.entries[index]
            index += 1
            let reply = redeclare(entry, on: channelID)
            recycle_amqp_pool(pool)
            switch reply.reply_type {
            case AMQP_RESPONSE_NORMAL:
                continue
            case AMQP_RESPONSE_SERVER_EXCEPTION where reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD:
                let close = reply.reply.decoded.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
                logger.info(
                    "could not declare again after recovery; skipped",
                    metadata: ["amqp.entity": "\(entry)", "amqp.error": "\(RabbitMQCErrors.channelClose(close, channel: channelID))"])
                var ok = amqp_channel_close_ok_t(dummy: 0)
                _ = withUnsafeMutablePointer(to: &ok) { amqp_send_method(state, channelID, AMQP_CHANNEL_CLOSE_OK_METHOD, $0) }
                channelID = try openSpareChannel()
            default:
                throw recoveryError(reply, doing: "declaring the topology again")
            }
        }
        _ = amqp_channel_close(state, channelID, 200)
    }

    private func redeclare(_ entry: RabbitMQCTopology.Entry, on channelID: UInt16) -> amqp_rpc_reply_t {
        let encoder = self.encoder
        // Arguments were encoded once already, when the application declared them, so they encode again.
        func table(_ arguments: AMQPTable) -> amqp_table_t { (try? encoder.table(arguments)) ?? amqp_empty_table }
        switch entry {
        case .exchange(let name, let type, let durable, let autoDelete, let isInternal, let arguments):
            _ = amqp_exchange_declare(
                state, channelID, encoder.bytes(name), encoder.bytes(type), 0, durable ? 1 : 0, autoDelete ? 1 : 0,
                isInternal ? 1 : 0, table(arguments))
        case .queue(let name, let durable, let exclusive, let autoDelete, let arguments, let serverNamed):
            let declared = amqp_queue_declare(
                state, channelID, encoder.bytes(serverNamed ? "" : name), 0, durable ? 1 : 0, exclusive ? 1 : 0,
                autoDelete ? 1 : 0, table(arguments))
            if serverNamed, let declared {
                let newName = RabbitMQCBytes.string(declared.pointee.queue)
                if newName != name { rename(queue: name, to: newName) }
            }
        case .queueBinding(let queue, let exchange, let routingKey, let arguments):
            _ = amqp_queue_bind(
                state, channelID, encoder.bytes(queue), encoder.bytes(exchange), encoder.bytes(routingKey),
                table(arguments))
        case .exchangeBinding(let destination, let source, let routingKey, let arguments):
            _ = amqp_exchange_bind(
                state, channelID, encoder.bytes(destination), encoder.bytes(source), encoder.bytes(routingKey),
                table(arguments))
        }
        return amqp_get_rpc_reply(state)
    }

    private func rename(queue old: String, to new: String) {
        topology.renameQueue(old, to: new)
        for channel in channels.values {
            for (tag, consumer) in channel.consumers where consumer.queue == old {
                channel.consumers[tag]?.queue = new
            }
        }
        logger.info("server-named queue got a new name", metadata: ["amqp.old": "\(old)", "amqp.new": "\(new)"])
        core.report(.queueRenamed(from: old, to: new))
    }

    /// Opens a channel the application does not use, for declaring the topology.
    private func openSpareChannel() throws(AMQPError) -> UInt16 {
        var id = machine.channelMax
        while channels[id] != nil && id > 1 { id -= 1 }
        guard channels[id] == nil else {
            throw AMQPError(.libraryError, "no channel number left for recovery")
        }
        _ = amqp_channel_open(state, id)
        let reply = amqp_get_rpc_reply(state)
        guard reply.reply_type == AMQP_RESPONSE_NORMAL else { throw recoveryError(reply, doing: "opening a channel") }
        return id
    }

    // MARK: - Channels and consumers

    /// Reopens every channel with its prefetch and confirm mode, and restarts its consumers with their tags, so
    /// their sequences go on. A consumer whose queue is gone ends with the broker's error.
    private func reopenChannels() throws(AMQPError) {
        for id in channels.keys.sorted() {
            guard let channel = channels[id] else { continue }
            try restore(channel)
            for tag in Array(channel.consumers.keys) {
                guard let consumer = channel.consumers[tag] else { continue }
                let queue = encoder.bytes(consumer.queue)
                let tagBytes = encoder.bytes(tag)
                let arguments = (try? encoder.table(consumer.arguments)) ?? amqp_empty_table
                _ = amqp_basic_consume(
                    state, id, queue, tagBytes, 0, consumer.noAck ? 1 : 0, consumer.exclusive ? 1 : 0, arguments)
                let reply = amqp_get_rpc_reply(state)
                recycle_amqp_pool(pool)
                if reply.reply_type == AMQP_RESPONSE_NORMAL { continue }
                guard reply.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION, reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD
                else { throw recoveryError(reply, doing: "restarting a consumer") }
                let close = reply.reply.decoded.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
                let error = RabbitMQCErrors.channelClose(close, channel: id)
                var ok = amqp_channel_close_ok_t(dummy: 0)
                _ = withUnsafeMutablePointer(to: &ok) { amqp_send_method(state, id, AMQP_CHANNEL_CLOSE_OK_METHOD, $0) }
                logger.info(
                    "a consumer could not be restarted after recovery",
                    metadata: ["amqp.consumer_tag": "\(tag)", "amqp.error": "\(error)"])
                channel.consumers.removeValue(forKey: tag)?.sink.finish(throwing: error)
                try restore(channel)
            }
        }
    }

    /// Opens a channel again with the settings the application gave it.
    private func restore(_ channel: RabbitMQCChannel) throws(AMQPError) {
        _ = amqp_channel_open(state, channel.id)
        var reply = amqp_get_rpc_reply(state)
        guard reply.reply_type == AMQP_RESPONSE_NORMAL else { throw recoveryError(reply, doing: "reopening a channel") }
        if let prefetch = channel.prefetch {
            _ = amqp_basic_qos(state, channel.id, 0, prefetch.count, prefetch.global ? 1 : 0)
            reply = amqp_get_rpc_reply(state)
            guard reply.reply_type == AMQP_RESPONSE_NORMAL else {
                throw recoveryError(reply, doing: "setting the prefetch again")
            }
        }
        if channel.confirmsEnabled {
            _ = amqp_confirm_select(state, channel.id)
            reply = amqp_get_rpc_reply(state)
            guard reply.reply_type == AMQP_RESPONSE_NORMAL else {
                throw recoveryError(reply, doing: "enabling confirms again")
            }
            channel.nextPublishTag = 1
            channel.lowestUnsettledTag = 1
        }
    }

    private func recoveryError(_ reply: amqp_rpc_reply_t, doing what: String) -> AMQPError {
        switch reply.reply_type {
        case AMQP_RESPONSE_LIBRARY_EXCEPTION:
            return RabbitMQCErrors.library(.connectionLost, "recovery failed while \(what)", status: reply.library_error)
        case AMQP_RESPONSE_SERVER_EXCEPTION where reply.reply.id == AMQP_CONNECTION_CLOSE_METHOD:
            let close = reply.reply.decoded.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
            var error = RabbitMQCErrors.connectionClose(close)
            error.message = "recovery failed while \(what): the broker closed the connection"
            return error
        case AMQP_RESPONSE_SERVER_EXCEPTION where reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD:
            let close = reply.reply.decoded.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
            var error = RabbitMQCErrors.channelClose(close, channel: 0)
            error.message = "recovery failed while \(what)"
            return error
        default:
            return AMQPError(.connectionLost, "recovery failed while \(what)")
        }
    }
}

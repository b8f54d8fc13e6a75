internal import CRabbitMQ
import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Owns one rabbitmq-c connection and runs its I/O loop, on the connection's own thread.
///
/// rabbitmq-c is not thread-safe, so this class is deliberately not `Sendable`: it is created on the I/O thread,
/// every C call of the connection happens there, and it is never handed to another thread. Tasks reach it through
/// ``ConnectionCore/commands``; the loop answers them through continuations.
///
/// The loop (rabbitmq-c.md §10): release rabbitmq-c's buffers, run the queued commands, then `poll(2)` on the socket
/// and on the command queue's wake-up pipe, read and dispatch every frame that arrived, and every tick (a quarter of
/// the heartbeat) let rabbitmq-c send a heartbeat or notice a silent broker. The thread never sleeps on work: a
/// command wakes the poll at once.
final class RabbitMQCConnection {
    enum Phase {
        case open
        /// Graceful close: consumers are being cancelled and confirms awaited, then channels closed, until the
        /// deadline at the latest.
        case closing(deadline: ContinuousClock.Instant, channelsClosed: Bool, waiters: [CheckedContinuation<Void, any Error>])
        /// The connection failed and a new one is being made (automatic recovery): no C connection exists.
        case recovering(cause: AMQPError, attempt: Int, nextAttempt: ContinuousClock.Instant)
        case ended
    }

    let core: ConnectionCore
    var logger: Logger
    /// The current rabbitmq-c connection; recovery replaces it.
    var state: amqp_connection_state_t
    /// Scratch memory for the C structures of outgoing methods; recycled after each send.
    let pool: UnsafeMutablePointer<amqp_pool_t>
    var channels: [UInt16: RabbitMQCChannel] = [:]
    /// Why each closed channel closed, until its number is reused: a request that arrives just after the broker
    /// closed a channel then fails with the broker's reason, not a generic one.
    private var closedChannelErrors: [UInt16: AMQPError] = [:]
    /// What the application declared, in order, for recovery to declare again.
    var topology = RabbitMQCTopology()
    var socketDescriptor: Int32
    let channelMax: UInt16
    var tick: Duration
    private var nextHousekeeping: ContinuousClock.Instant
    /// When the socket last had something to read; a broker silent for too long is declared dead.
    var lastDataAt = ContinuousClock.now
    /// How long the broker may stay silent: RabbitMQ sends a heartbeat every half interval, so one and a half
    /// intervals is three missed heartbeats, and the broker is declared dead within two intervals (rabbitmq-c's own
    /// deadline, two intervals after the last byte, plus a poll tick, would come later). Nil without heartbeats.
    var silenceLimit: Duration?
    var phase = Phase.open {
        didSet {
            switch phase {
            case .open, .closing: (isConnected, isRecovering, isEnded) = (true, false, false)
            case .recovering: (isConnected, isRecovering, isEnded) = (false, true, false)
            case .ended: (isConnected, isRecovering, isEnded) = (false, false, true)
            }
        }
    }
    /// Whether the C connection is there to be used (not while recovering, not once ended). Stored rather than
    /// computed from ``phase``: the loop asks for every frame, and the phase carries arrays.
    private(set) var isConnected = true
    private(set) var isRecovering = false
    private(set) var isEnded = false
    /// False between a failure that started recovery (which destroyed the C connection) and the next success.
    var hasLiveState = true
    private var nextChannelHint: UInt16 = 1

    /// How long a graceful close waits for consumers to be cancelled and confirms to arrive.
    static let closeTimeout = Duration.seconds(5)

    private init(core: ConnectionCore, state: amqp_connection_state_t, pool: UnsafeMutablePointer<amqp_pool_t>) {
        self.core = core
        self.logger = core.logger
        self.state = state
        self.pool = pool
        self.socketDescriptor = amqp_get_sockfd(state)
        self.channelMax = UInt16(clamping: amqp_get_channel_max(state) == 0 ? 65535 : amqp_get_channel_max(state))
        self.tick = Self.tick(for: state)
        self.nextHousekeeping = .now + tick
        self.silenceLimit = Self.silenceLimit(for: state)
    }

    static func silenceLimit(for state: amqp_connection_state_t) -> Duration? {
        let heartbeat = amqp_get_heartbeat(state)
        return heartbeat > 0 ? .milliseconds(Int(heartbeat) * 1500) : nil
    }

    /// A quarter of the heartbeat keeps sends well inside the broker's patience; without heartbeats the tick only
    /// paces deadlines (graceful close, recovery attempts).
    static func tick(for state: amqp_connection_state_t) -> Duration {
        let heartbeat = amqp_get_heartbeat(state)
        return heartbeat > 0 ? .milliseconds(max(50, min(1000, Int(heartbeat) * 250))) : .seconds(1)
    }

    var encoder: RabbitMQCEncoder { RabbitMQCEncoder(pool: pool) }



    // MARK: - Thread entry

    /// The body of a connection's I/O thread: connects, reports the outcome, then runs the loop until the end.
    static func run(core: ConnectionCore, name: String, opened: CheckedContinuation<Void, any Error>) {
        // Foundation on Linux does not hand Thread.name to the system.
        rmq_name_current_thread(String(decoding: name.utf8.prefix(15), as: UTF8.self))
        let connection: RabbitMQCConnection
        do {
            connection = try open(core: core)
        } catch {
            core.didEnd(with: error)
            _ = core.commands.shutdown(with: error)
            opened.resume(throwing: error)
            return
        }
        opened.resume()
        connection.loop()
    }

    private static func open(core: ConnectionCore) throws(AMQPError) -> RabbitMQCConnection {
        let configuration = core.configuration
        let pool = UnsafeMutablePointer<amqp_pool_t>.allocate(capacity: 1)
        init_amqp_pool(pool, 4096)
        let state: amqp_connection_state_t
        do {
            state = try establish(configuration, pool: pool)
        } catch {
            empty_amqp_pool(pool)
            pool.deallocate()
            throw error
        }
        let connection = RabbitMQCConnection(core: core, state: state, pool: pool)
        connection.logger[metadataKey: "amqp.connection"] = "\(configuration.host):\(configuration.port)"
        connection.didEstablish()
        return connection
    }

    /// Records what a new rabbitmq-c connection negotiated.
    func didEstablish() {
        let parameters = AMQPConnection.Parameters(
            heartbeat: .seconds(Int(amqp_get_heartbeat(state))),
            frameMax: UInt32(clamping: amqp_get_frame_max(state)),
            channelMax: channelMax)
        let serverProperties: AMQPTable
        if let properties = amqp_get_server_properties(state) {
            serverProperties = AMQPTable(decoding: properties.pointee)
        } else {
            serverProperties = AMQPTable()
        }
        core.didOpen(parameters: parameters, serverProperties: serverProperties)
        logger.debug(
            "AMQP connection open",
            metadata: [
                "amqp.heartbeat": "\(parameters.heartbeat)", "amqp.frame_max": "\(parameters.frameMax)",
                "amqp.channel_max": "\(parameters.channelMax)",
            ])
    }

    /// Opens a rabbitmq-c connection and logs in: TCP (or TLS), then the AMQP handshake, all within the connect
    /// timeout. Used at start and by every recovery attempt.
    static func establish(
        _ configuration: AMQPConfiguration, pool: UnsafeMutablePointer<amqp_pool_t>
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
        let status = amqp_socket_open_noblock(socket, configuration.host, Int32(configuration.port), &timeout)
        let savedErrno = errno
        guard status == AMQP_STATUS_OK.rawValue else {
            throw RabbitMQCErrors.socketOpen(
                status: status, savedErrno: savedErrno, host: configuration.host, port: configuration.port)
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

    // MARK: - The loop

    private func loop() {
        var descriptors = [
            pollfd(fd: socketDescriptor, events: Int16(POLLIN), revents: 0),
            pollfd(fd: core.commands.wakeReadDescriptor, events: Int16(POLLIN), revents: 0),
        ]
        let tickMilliseconds = Int32(tick.components.seconds * 1000 + tick.components.attoseconds / 1_000_000_000_000_000)
        while !isEnded {
            descriptors[0].fd = socketDescriptor
            if isRecovering {
                recoverIfDue(descriptors: &descriptors[1], tickMilliseconds: tickMilliseconds)
                continue
            }
            amqp_maybe_release_buffers(state)
            let commands = core.commands.takeAll()
            var acknowledgements: [AcknowledgeRequest] = []
            for command in commands {
                if isEnded {
                    command.fail(endedError)
                } else if case .acknowledge(let request) = command, case .ack = request.kind, !request.multiple {
                    acknowledgements.append(request)
                } else {
                    // Acknowledgements keep their place relative to everything else on the connection.
                    sendAcknowledgements(&acknowledgements)
                    execute(command)
                }
            }
            sendAcknowledgements(&acknowledgements)
            if !isConnected { continue }

            // Frames rabbitmq-c already holds would not wake poll(2).
            var readable = amqp_frames_enqueued(state) != 0 || amqp_data_in_buffer(state) != 0
            if !readable {
                let mayBlock = commands.isEmpty && core.commands.prepareToSleep()
                descriptors[0].revents = 0
                descriptors[1].revents = 0
                let ready = poll(&descriptors, 2, mayBlock ? tickMilliseconds : 0)
                if mayBlock { core.commands.didWake(drain: descriptors[1].revents & Int16(POLLIN) != 0) }
                if ready < 0 && errno != EINTR {
                    fail(AMQPError(.connectionLost, "poll(2) failed: \(String(cString: strerror(errno)))"))
                    break
                }
                readable = descriptors[0].revents != 0
            }
            if readable {
                lastDataAt = .now
                if isConnected { readFrames() }
            }
            housekeepIfDue()
            if isConnected { advanceClose() }
        }
        if hasLiveState { amqp_destroy_connection(state) }
        empty_amqp_pool(pool)
        pool.deallocate()
    }

    /// Reads and dispatches every frame that is ready, without blocking.
    private func readFrames() {
        // Bounded so that a flood of deliveries cannot starve queued acknowledgements and publishes.
        var budget = 2048
        while budget > 0 && isConnected {
            var frame = amqp_frame_t()
            var immediately = timeval(tv_sec: 0, tv_usec: 0)
            let status = amqp_simple_wait_frame_noblock(state, &frame, &immediately)
            if status == AMQP_STATUS_TIMEOUT.rawValue { return }
            guard status == AMQP_STATUS_OK.rawValue else {
                fail(RabbitMQCErrors.connectionLost(status: status))
                return
            }
            dispatch(frame)
            budget -= 1
        }
    }

    /// Lets rabbitmq-c send a due heartbeat and check the receive deadline, once per tick.
    ///
    /// A zero timeout would skip the receive-deadline check (rabbitmq-c compares deadlines and an immediate one always
    /// wins), so this waits one microsecond: then a broker silent for two heartbeats yields HEARTBEAT_TIMEOUT.
    private func housekeepIfDue() {
        guard isConnected else { return }
        let now = ContinuousClock.now
        guard now >= nextHousekeeping else { return }
        nextHousekeeping = now + tick
        if let silenceLimit, now - lastDataAt > silenceLimit {
            fail(AMQPError(
                .connectionLost,
                "the broker stopped answering: no data or heartbeat for \(now - lastDataAt) (heartbeat \(silenceLimit / 1.5))"))
            return
        }
        var frame = amqp_frame_t()
        var briefly = timeval(tv_sec: 0, tv_usec: 1)
        let status = amqp_simple_wait_frame_noblock(state, &frame, &briefly)
        if status == AMQP_STATUS_OK.rawValue {
            dispatch(frame)
        } else if status != AMQP_STATUS_TIMEOUT.rawValue {
            fail(RabbitMQCErrors.connectionLost(status: status))
        }
    }

    // MARK: - Commands

    func execute(_ command: ConnectionCommand) {
        switch command {
        case .perform(let body, _):
            body(self)
        case .publish(let request):
            publish(request)
        case .acknowledge(let request):
            acknowledge(request)
        case .close(let continuation):
            beginClose(continuation)
        }
    }

    private func publish(_ request: PublishRequest) {
        guard !isRecovering else {
            refuse(request, with: recoveringError)
            return
        }
        guard let channel = channels[request.channelID], !channel.isClosing else {
            refuse(request, with: channelGoneError(request.channelID))
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
            // The method frame may be out already, so the stream is no longer in a known state (rabbitmq-c.md §2).
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
        channels[request.channelID]?.handle.state.releaseConfirmSlots(1)
    }

    /// Sends a run of single acknowledgements: on each channel, as one `basic.ack` with `multiple` when no other
    /// delivery at or below the highest tag awaits its acknowledgement (then it settles exactly the same ones), as
    /// separate ones otherwise. Consumers acking every delivery thus cost one frame per batch, not per message.
    private func sendAcknowledgements(_ requests: inout [AcknowledgeRequest]) {
        guard !requests.isEmpty else { return }
        defer { requests.removeAll(keepingCapacity: true) }
        guard requests.count > 1, isConnected else {
            for request in requests { acknowledge(request) }
            return
        }
        var byChannel: [UInt16: [AcknowledgeRequest]] = [:]
        for request in requests { byChannel[request.channelID, default: []].append(request) }
        for (channelID, group) in byChannel {
            guard let channel = channels[channelID],
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
        guard let channel = channels[request.channelID], !isRecovering else {
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

    // MARK: - Sending methods

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
    /// caller's result. Every failure resumes the continuation.
    func request<Method, Result: Sendable>(
        _ id: amqp_method_number_t,
        on channelID: UInt16,
        expecting replies: [amqp_method_number_t],
        continuation: CheckedContinuation<Result, any Error>,
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
        build: @escaping (RabbitMQCEncoder) throws -> Method,
        complete: @escaping (amqp_method_t) -> Void,
        fail: @escaping (AMQPError) -> Void
    ) {
        guard !isRecovering else {
            fail(recoveringError)
            return
        }
        guard let channel = channels[channelID], !channel.isClosing else {
            fail(channelGoneError(channelID))
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
            pending.fail(isRecovering ? recoveringError : endedError)
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

    /// The error for a command aimed at a channel that is closed or closing.
    func channelGoneError(_ channelID: UInt16) -> AMQPError {
        if let error = channels[channelID]?.handle.state.closedError ?? closedChannelErrors[channelID] { return error }
        if case .ended = phase { return endedError }
        return AMQPError(.channelClosed, "channel \(channelID) is closed")
    }

    // MARK: - Channels

    /// Opens a channel on the lowest free id (`channel.open`).
    func openChannel(continuation: CheckedContinuation<AMQPChannel, any Error>) {
        if isRecovering {
            continuation.resume(throwing: recoveringError)
            return
        }
        if case .closing = phase {
            continuation.resume(throwing: AMQPError(.connectionClosed, "the connection is closing"))
            return
        }
        guard let id = freeChannelID() else {
            continuation.resume(throwing: AMQPError(
                .invalidArgument, "all \(channelMax) channels of the connection are in use; close some first"))
            return
        }
        let handle = AMQPChannel(id: id, core: core)
        channels[id] = RabbitMQCChannel(id: id, handle: handle)
        closedChannelErrors[id] = nil
        request(
            AMQP_CHANNEL_OPEN_METHOD, on: id, expecting: [AMQP_CHANNEL_OPEN_OK_METHOD],
            build: { _ in amqp_channel_open_t(out_of_band: amqp_empty_bytes) },
            complete: { _ in continuation.resume(returning: handle) },
            fail: { [weak self] error in
                self?.channels[id] = nil
                continuation.resume(throwing: error)
            })
    }

    private func freeChannelID() -> UInt16? {
        guard channels.count < Int(channelMax) else { return nil }
        var candidate = nextChannelHint
        while channels[candidate] != nil {
            candidate = candidate >= channelMax ? 1 : candidate + 1
        }
        nextChannelHint = candidate >= channelMax ? 1 : candidate + 1
        return candidate
    }

    /// Closes a channel (`channel.close` 200); `continuation`, if any, resumes once the broker confirmed.
    func closeChannel(_ id: UInt16, reason: String, continuation: CheckedContinuation<Void, any Error>?) {
        guard let channel = channels[id], !channel.isClosing else {
            continuation?.resume()
            return
        }
        if isRecovering {
            // No connection to tell: forgetting the channel is all there is to closing it.
            removeChannel(id, error: AMQPError(.channelClosed, "channel \(id) is closed: \(reason)"), consumerError: nil)
            continuation?.resume()
            return
        }
        request(
            AMQP_CHANNEL_CLOSE_METHOD, on: id, expecting: [AMQP_CHANNEL_CLOSE_OK_METHOD],
            build: { encoder in
                amqp_channel_close_t(reply_code: 200, reply_text: encoder.bytes(reason), class_id: 0, method_id: 0)
            },
            complete: { [weak self] _ in
                self?.removeChannel(id, error: AMQPError(.channelClosed, "channel \(id) was closed"), consumerError: nil)
                continuation?.resume()
            },
            fail: { error in continuation?.resume(throwing: error) })
        // Only now: the close request itself had to pass the closing check.
        channel.isClosing = true
        channel.handle.state.markClosed(AMQPError(.channelClosed, "channel \(id) is closed: \(reason)"))
    }

    /// Forgets a channel, failing whatever waited on it.
    func removeChannel(_ id: UInt16, error: AMQPError, consumerError: AMQPError?) {
        guard let channel = channels.removeValue(forKey: id) else { return }
        channel.fail(with: error, consumerError: consumerError)
        closedChannelErrors[id] = channel.handle.state.closedError ?? error
    }

    // MARK: - Ending

    /// The error commands get once the connection has ended.
    private var endedError: AMQPError {
        core.commands.closedError ?? AMQPError(.connectionClosed, "the connection is closed")
    }

    /// Ends the connection after a fatal error: every channel, consumer, confirm and queued command fails with it.
    func fail(_ error: AMQPError) {
        guard !isEnded else { return }
        if case .open = phase, core.configuration.recovery.isEnabled, Self.isRecoverable(error) {
            beginRecovery(after: error)
            return
        }
        logger.info("AMQP connection lost: \(error)")
        var waiters: [CheckedContinuation<Void, any Error>] = []
        if case .closing(_, _, let closeWaiters) = phase { waiters = closeWaiters }
        phase = .ended
        // Ended first: whoever sees a failure below also sees the connection closed.
        core.didEnd(with: error)
        finish(error: error, consumerError: error)
        for waiter in waiters { waiter.resume() }
    }

    private func finish(error: AMQPError, consumerError: AMQPError?) {
        let leftovers = core.commands.shutdown(with: error)
        for id in Array(channels.keys) {
            removeChannel(id, error: error, consumerError: consumerError)
        }
        for command in leftovers { command.fail(error) }
    }

    private func beginClose(_ continuation: CheckedContinuation<Void, any Error>) {
        switch phase {
        case .ended:
            continuation.resume()
        case .recovering:
            // No connection to close: stop recovering and end.
            phase = .ended
            core.didEnd(with: nil)
            finish(
                error: AMQPError(.connectionClosed, "the connection was closed by the application"), consumerError: nil)
            continuation.resume()
        case .closing(let deadline, let channelsClosed, var waiters):
            waiters.append(continuation)
            phase = .closing(deadline: deadline, channelsClosed: channelsClosed, waiters: waiters)
        case .open:
            logger.debug("closing the AMQP connection")
            phase = .closing(deadline: .now + Self.closeTimeout, channelsClosed: false, waiters: [continuation])
            for channel in channels.values {
                for tag in channel.consumers.keys {
                    cancelConsumer(tag, on: channel.id, continuation: nil)
                }
            }
        }
    }

    /// Moves a graceful close along: once consumers are cancelled and confirms settled (or the deadline passed),
    /// channels are closed; once they are, the connection is closed with 200.
    private func advanceClose() {
        guard case .closing(let deadline, let channelsClosed, let waiters) = phase else { return }
        let expired = ContinuousClock.now >= deadline
        if !channelsClosed {
            let settled = channels.values.allSatisfy { $0.consumers.isEmpty && $0.pendingConfirms.isEmpty }
            guard settled || expired else { return }
            phase = .closing(deadline: .now + Self.closeTimeout, channelsClosed: true, waiters: waiters)
            for id in Array(channels.keys) where channels[id]?.isClosing == false {
                closeChannel(id, reason: "the connection is closing", continuation: nil)
            }
            // With no channel to wait for, close now rather than after the next poll tick.
            if channels.isEmpty { advanceClose() }
            return
        }
        guard channels.isEmpty || expired else { return }
        let reply = amqp_connection_close(state, 200)
        if reply.reply_type != AMQP_RESPONSE_NORMAL {
            logger.debug("the broker did not confirm connection.close")
        }
        phase = .ended
        core.didEnd(with: nil)
        finish(
            error: AMQPError(.connectionClosed, "the connection was closed by the application"), consumerError: nil)
        logger.debug("AMQP connection closed")
        for waiter in waiters { waiter.resume() }
    }
}

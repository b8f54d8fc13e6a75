import Foundation

/// An AMQP channel: a lightweight session on a connection, through which topology is declared, messages published
/// and consumed.
///
/// A channel is `Sendable` and every method may be called from any task; the work runs on the connection's I/O
/// thread. Open channels with ``AMQPConnection/openChannel()``.
///
/// When the broker refuses a method with a channel exception (404 NOT_FOUND, 406 PRECONDITION_FAILED, ...), the call
/// throws ``AMQPError`` with code `channelClosedByBroker`, the reply code and text, and the refused method. The broker
/// has then closed the channel: every later call throws `channelClosed`, while the connection and its other channels
/// keep working. Open a new channel to continue.
public final class AMQPChannel: Sendable {
    /// The channel number on its connection.
    public var id: UInt16 { state.id }
    /// Messages the broker returned as unroutable (`basic.return` of `mandatory` publishes).
    ///
    /// The stream keeps the newest 1,024 returns nobody has read yet. It ends when the channel closes. In confirm mode
    /// a returned publish also fails its confirmation with `messageReturned`.
    public var returnedMessages: AsyncStream<AMQPReturnedMessage> { state.returnedMessages }

    let core: ConnectionCore
    /// What this channel shares with the connection's I/O thread.
    let state: ChannelState
    /// The connection, kept alive while the channel is in use: a connection closes itself once nothing refers to
    /// it, its channels included.
    let connection: AMQPConnection

    init(state: ChannelState, connection: AMQPConnection) {
        self.state = state
        self.connection = connection
        self.core = connection.core
    }

    /// Whether the channel can still be used.
    public var isOpen: Bool {
        state.closedError == nil && core.isOpen
    }

    /// Closes the channel (`channel.close` with 200). Closing a closed channel does nothing.
    ///
    /// Consumers on the channel end; unacknowledged deliveries go back to their queues.
    public func close() async throws {
        guard state.closedError == nil else { return }
        try await core.request { connection, continuation in
            connection.closeChannel(self.id, reason: "closed by the application", reply: continuation)
        }
    }

    // MARK: - Exchanges

    /// Declares an exchange (`exchange.declare`), or checks that it exists (`passive`).
    ///
    /// - Parameters:
    ///   - name: The exchange's name.
    ///   - type: Its type: `.direct`, `.fanout`, `.topic`, `.headers`, or a plugin's type such as
    ///     `x-delayed-message` or `x-consistent-hash`.
    ///   - durable: Whether the exchange survives a broker restart.
    ///   - autoDelete: Whether the broker deletes it when its last binding goes.
    ///   - internal: Whether clients may not publish to it directly (only other exchanges).
    ///   - passive: Only check that the exchange exists (404 NOT_FOUND otherwise); the other flags are ignored.
    ///   - arguments: Optional arguments, such as `alternate-exchange` or `x-delayed-type`.
    /// - Throws: ``AMQPError``: `channelClosedByBroker` with 406 when it exists with other flags, 404 for a passive
    ///   check of a missing one; `connectionClosedByBroker` with 503 COMMAND_INVALID for an unknown type (the broker
    ///   closes the whole connection: declare delayed-message exchanges with ``AMQPDelayedExchange``, which says
    ///   when the plugin is missing).
    public func declareExchange(
        _ name: String, type: AMQPExchangeType = .direct, durable: Bool = false, autoDelete: Bool = false,
        internal isInternal: Bool = false, passive: Bool = false, arguments: AMQPTable = [:]
    ) async throws {
        try Self.validateName(name, "exchange name")
        try await request { connection, continuation in
            connection.declareExchange(
                on: self.id, name: name, type: type.rawValue, passive: passive, durable: durable,
                autoDelete: autoDelete, isInternal: isInternal, arguments: arguments, continuation: continuation)
        }
    }

    /// Deletes an exchange (`exchange.delete`).
    ///
    /// - Parameter ifUnused: Only delete it if it has no bindings (406 otherwise).
    public func deleteExchange(_ name: String, ifUnused: Bool = false) async throws {
        try Self.validateName(name, "exchange name")
        try await request { connection, continuation in
            connection.deleteExchange(on: self.id, name: name, ifUnused: ifUnused, continuation: continuation)
        }
    }

    /// Binds an exchange to another (`exchange.bind`): messages routed by `source` also go to `destination`.
    public func bindExchange(
        _ destination: String, to source: String, routingKey: String = "", arguments: AMQPTable = [:]
    ) async throws {
        try Self.validateNames([(destination, "exchange name"), (source, "exchange name"), (routingKey, "routing key")])
        try await request { connection, continuation in
            connection.bindExchange(
                on: self.id, destination: destination, source: source, routingKey: routingKey, arguments: arguments,
                unbind: false, continuation: continuation)
        }
    }

    /// Removes an exchange-to-exchange binding (`exchange.unbind`).
    public func unbindExchange(
        _ destination: String, from source: String, routingKey: String = "", arguments: AMQPTable = [:]
    ) async throws {
        try Self.validateNames([(destination, "exchange name"), (source, "exchange name"), (routingKey, "routing key")])
        try await request { connection, continuation in
            connection.bindExchange(
                on: self.id, destination: destination, source: source, routingKey: routingKey, arguments: arguments,
                unbind: true, continuation: continuation)
        }
    }

    // MARK: - Queues

    /// Declares a queue (`queue.declare`), or checks that it exists (`passive`).
    ///
    /// ```swift
    /// let info = try await channel.declareQueue("orders", durable: true, arguments: ["x-queue-type": "quorum"])
    /// let reply = try await channel.declareQueue(exclusive: true)  // a server-named queue: reply.name
    /// ```
    ///
    /// - Parameters:
    ///   - name: The queue's name; empty for a name the broker chooses.
    ///   - durable: Whether the queue survives a broker restart.
    ///   - exclusive: Whether only this connection may use it; it is deleted when the connection closes.
    ///   - autoDelete: Whether the broker deletes it when its last consumer goes.
    ///   - passive: Only check that it exists (404 NOT_FOUND otherwise) and read its counts.
    ///   - arguments: Optional arguments: `x-queue-type` (`quorum`, `stream`), `x-dead-letter-exchange`,
    ///     `x-message-ttl`, `x-max-length`, ...
    /// - Returns: The queue's name and its message and consumer counts.
    public func declareQueue(
        _ name: String = "", durable: Bool = false, exclusive: Bool = false, autoDelete: Bool = false,
        passive: Bool = false, arguments: AMQPTable = [:]
    ) async throws -> AMQPQueueInfo {
        try Self.validateName(name, "queue name")
        return try await request { connection, continuation in
            connection.declareQueue(
                on: self.id, name: name, passive: passive, durable: durable, exclusive: exclusive,
                autoDelete: autoDelete, arguments: arguments, continuation: continuation)
        }
    }

    /// Binds a queue to an exchange (`queue.bind`).
    public func bindQueue(
        _ queue: String, to exchange: String, routingKey: String = "", arguments: AMQPTable = [:]
    ) async throws {
        try Self.validateNames([(queue, "queue name"), (exchange, "exchange name"), (routingKey, "routing key")])
        try await request { connection, continuation in
            connection.bindQueue(
                on: self.id, queue: queue, exchange: exchange, routingKey: routingKey, arguments: arguments,
                unbind: false, continuation: continuation)
        }
    }

    /// Removes a queue binding (`queue.unbind`).
    public func unbindQueue(
        _ queue: String, from exchange: String, routingKey: String = "", arguments: AMQPTable = [:]
    ) async throws {
        try Self.validateNames([(queue, "queue name"), (exchange, "exchange name"), (routingKey, "routing key")])
        try await request { connection, continuation in
            connection.bindQueue(
                on: self.id, queue: queue, exchange: exchange, routingKey: routingKey, arguments: arguments,
                unbind: true, continuation: continuation)
        }
    }

    /// Removes every ready message from a queue (`queue.purge`); returns how many were removed.
    @discardableResult
    public func purgeQueue(_ name: String) async throws -> UInt32 {
        try Self.validateName(name, "queue name")
        return try await request { connection, continuation in
            connection.purgeQueue(on: self.id, name: name, continuation: continuation)
        }
    }

    /// Deletes a queue (`queue.delete`); returns how many messages it held.
    ///
    /// - Parameters:
    ///   - ifUnused: Only delete it if it has no consumers (406 otherwise).
    ///   - ifEmpty: Only delete it if it holds no messages (406 otherwise).
    @discardableResult
    public func deleteQueue(_ name: String, ifUnused: Bool = false, ifEmpty: Bool = false) async throws -> UInt32 {
        try Self.validateName(name, "queue name")
        return try await request { connection, continuation in
            connection.deleteQueue(
                on: self.id, name: name, ifUnused: ifUnused, ifEmpty: ifEmpty, continuation: continuation)
        }
    }

    // MARK: - Quality of service and confirms

    /// Limits how many unacknowledged deliveries the broker sends (`basic.qos`).
    ///
    /// - Parameters:
    ///   - count: The most unacknowledged deliveries at once; 0 means no limit.
    ///   - global: Apply the limit to the whole channel instead of to each consumer started afterwards.
    public func setPrefetch(_ count: UInt16, global: Bool = false) async throws {
        try await request { connection, continuation in
            connection.setPrefetch(on: self.id, count: count, global: global, continuation: continuation)
        }
    }

    /// Puts the channel in confirm mode (`confirm.select`): from now on the broker acknowledges every publish, and
    /// ``publish(_:exchange:routingKey:properties:mandatory:)`` returns only once it did.
    ///
    /// - Parameter maxOutstanding: The most publishes awaiting their confirm at once; a publish beyond it waits for a
    ///   confirm to arrive, which bounds memory and paces the publisher to the broker.
    public func enablePublisherConfirms(maxOutstanding: Int = 1000) async throws {
        guard maxOutstanding > 0 else {
            throw AMQPError(.invalidArgument, "maxOutstanding must be at least 1, not \(maxOutstanding)")
        }
        try await request { connection, continuation in
            connection.enableConfirms(on: self.id, continuation: continuation)
        }
        state.enableConfirms(window: maxOutstanding)
    }

    // MARK: - Publishing

    /// Publishes a message (`basic.publish`) and, in confirm mode, waits for the broker's confirm.
    ///
    /// Without confirm mode the call returns once the message is queued for the socket: AMQP gives no answer to a
    /// plain publish, and errors (such as a missing exchange) arrive later as a channel exception.
    ///
    /// - Parameters:
    ///   - body: The message body; empty bodies and bodies larger than the frame size are fine.
    ///   - exchange: The exchange to publish to; empty for the default exchange, which routes by queue name.
    ///   - routingKey: The routing key.
    ///   - properties: The message properties.
    ///   - mandatory: Ask the broker to return the message (`basic.return`) when no queue takes it.
    /// - Throws: ``AMQPError``: `publishNacked`, `messageReturned` (mandatory and unroutable, in confirm mode),
    ///   `invalidArgument` for a name over 255 bytes or a bad header, or the channel's or connection's error.
    public func publish(
        _ body: Data, exchange: String = "", routingKey: String, properties: AMQPProperties = AMQPProperties(),
        mandatory: Bool = false
    ) async throws {
        try await startPublish(
            body, exchange: exchange, routingKey: routingKey, properties: properties, mandatory: mandatory
        )?.wait()
    }

    /// Publishes a message without waiting for its confirm; returns the confirm to wait for later, or nil when the
    /// channel is not in confirm mode.
    ///
    /// Waits only when ``enablePublisherConfirms(maxOutstanding:)``'s window is full, so a publisher can keep many
    /// messages in flight.
    @discardableResult
    public func startPublish(
        _ body: Data, exchange: String = "", routingKey: String, properties: AMQPProperties = AMQPProperties(),
        mandatory: Bool = false
    ) async throws -> AMQPPublishConfirmation? {
        try Self.validateNames([(exchange, "exchange name"), (routingKey, "routing key")])
        try properties.validate()
        // Fails while the connection recovers; while the broker blocks the connection (a resource alarm) waits,
        // bounded by a timeout. Acknowledgements never wait, so consumers keep draining queues.
        try await core.admitPublish()
        // Also throws once the channel is closed.
        let confirmed = try await state.acquireConfirmSlot()
        let box = confirmed ? ConfirmationBox() : nil
        let request = PublishRequest(
            channelID: id, exchange: exchange, routingKey: routingKey, body: body, properties: properties,
            mandatory: mandatory, confirmation: box)
        do {
            if confirmed {
                try core.commands.enqueue(.publish(request))
            } else {
                try await core.commands.enqueuePublish(.publish(request))
            }
        } catch {
            if confirmed { state.releaseConfirmSlots(1) }
            throw error
        }
        return box.map(AMQPPublishConfirmation.init)
    }

    // MARK: - Consuming

    /// Starts a consumer on a queue (`basic.consume`) and returns its deliveries as an `AsyncSequence`.
    ///
    /// ```swift
    /// try await channel.setPrefetch(100)
    /// let consumer = try await channel.consume(queue: "orders")
    /// for try await delivery in consumer {
    ///     handle(delivery.body)
    ///     try await delivery.ack()
    /// }
    /// ```
    ///
    /// The sequence ends normally after ``cancel(consumerTag:)`` or ``AMQPConsumer/cancel()``, and with an error
    /// when the broker cancels the consumer (its queue was deleted: `consumerCancelledByBroker`) or the channel or
    /// connection fails. Set a prefetch with ``setPrefetch(_:global:)`` first: it bounds how many deliveries are
    /// buffered. With `noAck` the broker sends as fast as it can and nothing bounds the buffer.
    ///
    /// Deliveries still buffered when the sequence is abandoned (its task cancelled, the loop left) are handed back
    /// to the queue with a nack, except from a stream (a consumer with `x-stream-offset`): a stream answers a nack
    /// with 540 NOT_IMPLEMENTED and closes the whole connection, and it never redelivers anyway.
    ///
    /// - Parameters:
    ///   - queue: The queue to consume from.
    ///   - tag: The consumer tag; empty for one the broker chooses.
    ///   - noAck: Let the broker consider messages acknowledged once sent (at-most-once delivery).
    ///   - exclusive: Be the queue's only consumer (403 ACCESS_REFUSED if it has another).
    ///   - arguments: Consumer arguments, such as `x-priority` or `x-stream-offset`.
    public func consume(
        queue: String, tag: String = "", noAck: Bool = false, exclusive: Bool = false, arguments: AMQPTable = [:]
    ) async throws -> AMQPConsumer {
        try Self.validateNames([(queue, "queue name"), (tag, "consumer tag")])
        let isStream = arguments["x-stream-offset"] != nil
        // Captures the core and the shared state, never this channel: the I/O thread keeps the buffer, and must not
        // keep the application's connection alive through it.
        let buffer = DeliveryBuffer(noAck: noAck, giveBack: isStream ? nil : Self.requeuer(core: core, state: state))
        let consumerTag = try await request { (connection, continuation: RequestReply<String>) in
            connection.consume(
                on: self.id, queue: queue, tag: tag, noAck: noAck, exclusive: exclusive, arguments: arguments,
                sink: buffer, continuation: continuation)
        }
        buffer.setOnTermination { [weak self] in
            // Nobody reads the deliveries any more: stop the broker sending them.
            guard let self else { return }
            try? self.core.commands.enqueue(.perform({ connection in
                connection.cancelConsumer(consumerTag, on: self.id, continuation: nil)
            }, onFailure: { _ in }))
        }
        return AMQPConsumer(owner: DeliveryBufferOwner(buffer), tag: consumerTag, channel: self)
    }

    /// Cancels a consumer (`basic.cancel`). Its sequence delivers what was already on its way, then ends.
    public func cancel(consumerTag: String) async throws {
        try await request { connection, continuation in
            connection.cancelConsumer(consumerTag, on: self.id, continuation: continuation)
        }
    }

    /// Fetches one message from a queue (`basic.get`), or nil when the queue is empty.
    ///
    /// - Parameter noAck: Consider the message acknowledged once sent.
    public func get(queue: String, noAck: Bool = false) async throws -> AMQPDelivery? {
        try Self.validateName(queue, "queue name")
        let message = try await request { connection, continuation in
            connection.get(on: self.id, queue: queue, noAck: noAck, continuation: continuation)
        }
        return message.map { AMQPDelivery($0, channel: self) }
    }

    /// Acknowledges a delivery (`basic.ack`).
    ///
    /// - Parameters:
    ///   - deliveryTag: The delivery's tag on this channel.
    ///   - multiple: Also acknowledge every earlier unacknowledged delivery.
    /// - Throws: The channel's error once it is closed (the broker then redelivers the message).
    public func ack(deliveryTag: UInt64, multiple: Bool = false) async throws {
        try acknowledge(deliveryTag: deliveryTag, multiple: multiple, kind: .ack)
    }

    /// Refuses deliveries (`basic.nack`), requeueing them or letting their queue dead-letter or drop them.
    public func nack(deliveryTag: UInt64, multiple: Bool = false, requeue: Bool = true) async throws {
        try acknowledge(deliveryTag: deliveryTag, multiple: multiple, kind: .nack(requeue: requeue))
    }

    /// Rejects one delivery (`basic.reject`).
    public func reject(deliveryTag: UInt64, requeue: Bool = true) async throws {
        try acknowledge(deliveryTag: deliveryTag, multiple: false, kind: .reject(requeue: requeue))
    }

    /// Asks the broker to redeliver every unacknowledged message of the channel (`basic.recover`).
    public func recover(requeue: Bool = true) async throws {
        try await request { connection, continuation in
            connection.recover(on: self.id, requeue: requeue, continuation: continuation)
        }
    }

    /// Runs a request on the I/O thread, failing at once with the channel's error once it is closed.
    private func request<T: Sendable>(
        _ body: @escaping @Sendable (RabbitMQCConnection, RequestReply<T>) -> Void
    ) async throws -> T {
        try state.checkOpen()
        return try await core.request(body)
    }

    func acknowledge(
        deliveryTag: UInt64, multiple: Bool, kind: AcknowledgeRequest.Kind, epoch: UInt64? = nil
    ) throws {
        try state.checkOpen()
        try core.commands.enqueue(
            .acknowledge(
                AcknowledgeRequest(
                    channelID: id, deliveryTag: deliveryTag, multiple: multiple, kind: kind, epoch: epoch)))
    }

    /// What gives an unread delivery back to its queue (a nack with requeue) once its consumer is abandoned.
    private static func requeuer(
        core: ConnectionCore, state: ChannelState
    ) -> @Sendable (InboundMessage) -> Void {
        { message in
            guard state.closedError == nil else { return }
            let nack = AcknowledgeRequest(
                channelID: state.id, deliveryTag: message.deliveryTag, multiple: false, kind: .nack(requeue: true),
                epoch: message.epoch)
            try? core.commands.enqueue(.acknowledge(nack))
        }
    }

    // MARK: - Validation

    /// AMQP short strings (names, routing keys, tags) hold at most 255 bytes; rabbitmq-c would refuse them only
    /// after writing part of a frame.
    static func validateName(_ value: String, _ what: String) throws(AMQPError) {
        if value.utf8.count > 255 {
            throw AMQPError(.invalidArgument, "the \(what) is \(value.utf8.count) bytes long; AMQP allows at most 255")
        }
    }

    private static func validateNames(_ values: [(String, String)]) throws(AMQPError) {
        for (value, what) in values { try validateName(value, what) }
    }
}

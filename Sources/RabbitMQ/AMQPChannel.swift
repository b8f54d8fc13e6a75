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
///
/// Besides its own refusals, every method that waits for the broker fails the same ways when the channel or the
/// connection cannot carry it: `channelClosed` once the channel is closed; `connectionLost`, which is retriable, while
/// the connection recovers or when it fails before the answer arrives; and once the connection is over, the error it
/// ended with (`connectionClosed`, `connectionClosedByBroker`, or `connectionLost` when recovery is off or gave up).
/// A task cancelled while it waits gets `CancellationError`, and the method may still reach the broker and take effect.
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
    /// Consumers on the channel end; unacknowledged deliveries go back to their queues. While the connection recovers
    /// there is no broker to tell: the channel is forgotten at once, and the call returns.
    ///
    /// - Throws: `CancellationError` when the task is cancelled before the broker confirms (the close goes on).
    ///   ``AMQPError`` when the connection fails before the confirmation, the channel being closed all the same: the
    ///   error the connection ended with (`connectionClosed`, `connectionClosedByBroker` or `connectionLost`), or
    ///   `channelClosed` when recovery takes over instead.
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
    ///   - isInternal: Whether clients may not publish to it directly, only other exchanges through their bindings
    ///     (the `internal:` argument).
    ///   - passive: Only check that the exchange exists (404 NOT_FOUND otherwise); the other flags are ignored.
    ///   - arguments: Optional arguments, such as `alternate-exchange` or `x-delayed-type`.
    /// - Throws: ``AMQPError``: `invalidArgument` for a name over 255 bytes or arguments AMQP cannot encode (nothing is
    ///   sent); `channelClosedByBroker` when the broker refuses, the channel being closed then: 406 PRECONDITION_FAILED
    ///   when the exchange exists with other flags, 404 NOT_FOUND for a passive check of a missing one, 403
    ///   ACCESS_REFUSED for a reserved `amq.` name or a missing permission; `connectionClosedByBroker` with 503
    ///   COMMAND_INVALID for an unknown type (the broker closes the whole connection: declare delayed-message exchanges
    ///   with ``AMQPDelayedExchange``, which says when the plugin is missing); `channelClosed` on a closed channel;
    ///   `connectionLost` (retriable) while the connection recovers or when it fails before the broker answers; once
    ///   the connection has ended, the error it ended with (`connectionClosed`, `connectionClosedByBroker` or
    ///   `connectionLost`). `CancellationError` when the task is cancelled before the broker answers; the declaration
    ///   may still take effect.
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

    /// Deletes an exchange (`exchange.delete`). Deleting one that does not exist succeeds.
    ///
    /// - Parameters:
    ///   - name: The exchange's name.
    ///   - ifUnused: Only delete it if it has no bindings (406 otherwise).
    /// - Throws: ``AMQPError``: `invalidArgument` for a name over 255 bytes (nothing is sent); `channelClosedByBroker`
    ///   when the broker refuses, the channel being closed then: 406 PRECONDITION_FAILED for `ifUnused` and an exchange
    ///   with bindings, 403 ACCESS_REFUSED for the default exchange, an `amq.` one or a missing permission;
    ///   `channelClosed` on a closed channel; `connectionLost` (retriable) while the connection recovers or when it
    ///   fails before the broker answers; once the connection has ended, the error it ended with (`connectionClosed`,
    ///   `connectionClosedByBroker` or `connectionLost`). `CancellationError` when the task is cancelled before the
    ///   broker answers; the deletion may still take effect.
    public func deleteExchange(_ name: String, ifUnused: Bool = false) async throws {
        try Self.validateName(name, "exchange name")
        try await request { connection, continuation in
            connection.deleteExchange(on: self.id, name: name, ifUnused: ifUnused, continuation: continuation)
        }
    }

    /// Binds an exchange to another (`exchange.bind`): messages routed by `source` also go to `destination`.
    ///
    /// - Parameters:
    ///   - destination: The exchange that receives the messages.
    ///   - source: The exchange whose messages are routed to `destination` too.
    ///   - routingKey: The binding key `source` matches a message's routing key against, as for a queue binding.
    ///   - arguments: Binding arguments, such as `x-match` and the header values for a headers exchange.
    /// - Throws: ``AMQPError``: `invalidArgument` for a name or routing key over 255 bytes, or arguments AMQP cannot
    ///   encode (nothing is sent); `channelClosedByBroker` when the broker refuses, the channel being closed then: 404
    ///   NOT_FOUND when either exchange does not exist, 403 ACCESS_REFUSED for the default exchange or a missing
    ///   permission; `channelClosed` on a closed channel; `connectionLost` (retriable) while the connection recovers or
    ///   when it fails before the broker answers; once the connection has ended, the error it ended with
    ///   (`connectionClosed`, `connectionClosedByBroker` or `connectionLost`). `CancellationError` when the task is
    ///   cancelled before the broker answers; the binding may still be made.
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
    ///
    /// - Parameters:
    ///   - destination: The exchange that received the messages.
    ///   - source: The exchange the binding routes from.
    ///   - routingKey: The binding key the binding was made with.
    ///   - arguments: The arguments the binding was made with.
    /// - Throws: ``AMQPError``: `invalidArgument` for a name or routing key over 255 bytes, or arguments AMQP cannot
    ///   encode (nothing is sent); `channelClosedByBroker` when the broker refuses, the channel being closed then: 404
    ///   NOT_FOUND when an exchange does not exist, 403 ACCESS_REFUSED for the default exchange or a missing
    ///   permission; `channelClosed` on a closed channel; `connectionLost` (retriable) while the connection recovers or
    ///   when it fails before the broker answers; once the connection has ended, the error it ended with
    ///   (`connectionClosed`, `connectionClosedByBroker` or `connectionLost`). `CancellationError` when the task is
    ///   cancelled before the broker answers; the binding may still be removed.
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
    /// - Throws: ``AMQPError``: `invalidArgument` for a name over 255 bytes or arguments AMQP cannot encode (nothing is
    ///   sent); `channelClosedByBroker` when the broker refuses, the channel being closed then: 406 PRECONDITION_FAILED
    ///   when the queue exists with other settings or an argument is invalid, 404 NOT_FOUND for a passive check of a
    ///   missing queue, 405 RESOURCE_LOCKED for another connection's exclusive queue, 403 ACCESS_REFUSED for a reserved
    ///   `amq.` name or a missing permission; `channelClosed` on a closed channel; `connectionLost` (retriable) while
    ///   the connection recovers or when it fails before the broker answers; once the connection has ended, the error
    ///   it ended with (`connectionClosed`, `connectionClosedByBroker` or `connectionLost`). `CancellationError` when
    ///   the task is cancelled before the broker answers; the declaration may still take effect.
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
    ///
    /// - Parameters:
    ///   - queue: The queue that receives the messages.
    ///   - exchange: The exchange whose messages are routed to the queue.
    ///   - routingKey: The binding key the exchange matches a message's routing key against (a pattern for a topic
    ///     exchange; ignored by fanout exchanges).
    ///   - arguments: Binding arguments, such as `x-match` and the header values for a headers exchange.
    /// - Throws: ``AMQPError``: `invalidArgument` for a name or routing key over 255 bytes, or arguments AMQP cannot
    ///   encode (nothing is sent); `channelClosedByBroker` when the broker refuses, the channel being closed then: 404
    ///   NOT_FOUND when the queue or the exchange does not exist, 405 RESOURCE_LOCKED for another connection's
    ///   exclusive queue, 403 ACCESS_REFUSED for the default exchange or a missing permission; `channelClosed` on a
    ///   closed channel; `connectionLost` (retriable) while the connection recovers or when it fails before the broker
    ///   answers; once the connection has ended, the error it ended with (`connectionClosed`,
    ///   `connectionClosedByBroker` or `connectionLost`). `CancellationError` when the task is cancelled before the
    ///   broker answers; the binding may still be made.
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
    ///
    /// - Parameters:
    ///   - queue: The bound queue.
    ///   - exchange: The exchange the binding routes from.
    ///   - routingKey: The binding key the binding was made with.
    ///   - arguments: The arguments the binding was made with.
    /// - Throws: ``AMQPError``: `invalidArgument` for a name or routing key over 255 bytes, or arguments AMQP cannot
    ///   encode (nothing is sent); `channelClosedByBroker` when the broker refuses, the channel being closed then: 404
    ///   NOT_FOUND when the queue or the exchange does not exist, 405 RESOURCE_LOCKED for another connection's
    ///   exclusive queue, 403 ACCESS_REFUSED for the default exchange or a missing permission; `channelClosed` on a
    ///   closed channel; `connectionLost` (retriable) while the connection recovers or when it fails before the broker
    ///   answers; once the connection has ended, the error it ended with (`connectionClosed`,
    ///   `connectionClosedByBroker` or `connectionLost`). `CancellationError` when the task is cancelled before the
    ///   broker answers; the binding may still be removed.
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
    ///
    /// Messages delivered and not yet acknowledged are not ready: they stay.
    ///
    /// - Parameter name: The queue's name.
    /// - Returns: How many messages were removed.
    /// - Throws: ``AMQPError``: `invalidArgument` for a name over 255 bytes (nothing is sent); `channelClosedByBroker`
    ///   when the broker refuses, the channel being closed then: 404 NOT_FOUND for a missing queue, 405 RESOURCE_LOCKED
    ///   for another connection's exclusive queue, 403 ACCESS_REFUSED for a missing permission; `channelClosed` on a
    ///   closed channel; `connectionLost` (retriable) while the connection recovers or when it fails before the broker
    ///   answers; once the connection has ended, the error it ended with (`connectionClosed`,
    ///   `connectionClosedByBroker` or `connectionLost`). `CancellationError` when the task is cancelled before the
    ///   broker answers; the purge may still take effect.
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
    ///   - name: The queue's name.
    ///   - ifUnused: Only delete it if it has no consumers (406 otherwise).
    ///   - ifEmpty: Only delete it if it holds no messages (406 otherwise).
    /// - Returns: How many messages the queue held; 0 for a queue that did not exist, which is not an error.
    /// - Throws: ``AMQPError``: `invalidArgument` for a name over 255 bytes (nothing is sent); `channelClosedByBroker`
    ///   when the broker refuses, the channel being closed then: 406 PRECONDITION_FAILED when `ifUnused` or `ifEmpty`
    ///   does not hold, 405 RESOURCE_LOCKED for another connection's exclusive queue, 403 ACCESS_REFUSED for a missing
    ///   permission; `channelClosed` on a closed channel; `connectionLost` (retriable) while the connection recovers or
    ///   when it fails before the broker answers; once the connection has ended, the error it ended with
    ///   (`connectionClosed`, `connectionClosedByBroker` or `connectionLost`). `CancellationError` when the task is
    ///   cancelled before the broker answers; the deletion may still take effect.
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
    /// - Throws: ``AMQPError``: `channelClosed` on a closed channel; `connectionLost` (retriable) while the connection
    ///   recovers or when it fails before the broker answers; once the connection has ended, the error it ended with
    ///   (`connectionClosed`, `connectionClosedByBroker` or `connectionLost`). `CancellationError` when the task is
    ///   cancelled before the broker answers; the limit may still take effect.
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
    /// - Throws: ``AMQPError``: `invalidArgument` when `maxOutstanding` is below 1 (nothing is sent); `channelClosed`
    ///   on a closed channel; `connectionLost` (retriable) while the connection recovers or when it fails before the
    ///   broker answers; once the connection has ended, the error it ended with (`connectionClosed`,
    ///   `connectionClosedByBroker` or `connectionLost`). `CancellationError` when the task is cancelled before the
    ///   broker answers: the broker may have switched the channel to confirm mode, but publishes on it are not
    ///   confirmed until a call of this method succeeds.
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
    /// Without confirm mode the call returns once the message is queued for the connection's thread: AMQP gives no
    /// answer to a plain publish, errors (such as a missing exchange) arrive later as a channel exception, and a
    /// message the connection could not send because it failed first is lost without an error.
    ///
    /// Either way the call first waits while the broker blocks publishing (``AMQPConnection/blockedReason``), and
    /// for the room ``startPublish(_:exchange:routingKey:properties:mandatory:)`` describes.
    ///
    /// - Parameters:
    ///   - body: The message body; empty bodies and bodies larger than the frame size are fine.
    ///   - exchange: The exchange to publish to; empty for the default exchange, which routes by queue name.
    ///   - routingKey: The routing key.
    ///   - properties: The message properties.
    ///   - mandatory: Ask the broker to return the message (`basic.return`) when no queue takes it.
    /// - Throws: ``AMQPError``: `invalidArgument` for an exchange name or routing key over 255 bytes, or properties
    ///   AMQP cannot encode (nothing is sent); `timeout` when the broker keeps publishing blocked longer than
    ///   ``AMQPConfiguration/blockedPublishTimeout`` (the message is not sent); `connectionLost` (retriable) while the
    ///   connection recovers; `channelClosed` on a closed channel, or the error the connection ended with. In confirm
    ///   mode also what ``AMQPPublishConfirmation/wait()`` throws: `publishNacked` when the broker refused the message,
    ///   `messageReturned` for a `mandatory` message no queue took, `connectionLost` when the connection fails before
    ///   the confirm, or the channel's or connection's error when it closes first (such as `channelClosedByBroker`).
    ///   `CancellationError` when the task is cancelled while it waits, for the broker to unblock, for room or for the
    ///   confirm; a message already handed over may still be published.
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
    /// It waits only for room, so a publisher can keep many messages in flight: while the window of
    /// ``enablePublisherConfirms(maxOutstanding:)`` is full, while the broker blocks publishing (at most
    /// ``AMQPConfiguration/blockedPublishTimeout``), and, without confirm mode, while 4,096 publishes already wait for
    /// the connection's thread.
    ///
    /// - Parameters:
    ///   - body: The message body; empty bodies and bodies larger than the frame size are fine.
    ///   - exchange: The exchange to publish to; empty for the default exchange, which routes by queue name.
    ///   - routingKey: The routing key.
    ///   - properties: The message properties.
    ///   - mandatory: Ask the broker to return the message (`basic.return`) when no queue takes it; in confirm mode
    ///     the confirmation then fails with `messageReturned`.
    /// - Returns: The broker's pending answer, to wait for with ``AMQPPublishConfirmation/wait()``; nil when the
    ///   channel is not in confirm mode, and the message is only queued for sending.
    /// - Throws: ``AMQPError``: `invalidArgument` for an exchange name or routing key over 255 bytes, or properties
    ///   AMQP cannot encode; `timeout` when the broker keeps publishing blocked longer than
    ///   ``AMQPConfiguration/blockedPublishTimeout``; `connectionLost` (retriable) while the connection recovers;
    ///   `channelClosed` on a closed channel, or the error the connection ended with. `CancellationError` when the task
    ///   is cancelled while it waits for room. A call that throws has not handed the message over; once it is handed
    ///   over, what becomes of it is what the confirmation's ``AMQPPublishConfirmation/wait()`` reports.
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
    /// - Returns: The consumer, whose deliveries are its `AsyncSequence`; its ``AMQPConsumer/tag`` is the tag the
    ///   broker confirmed.
    /// - Throws: ``AMQPError``: `invalidArgument` for a queue name or tag over 255 bytes, or arguments AMQP cannot
    ///   encode (nothing is sent); `channelClosedByBroker` when the broker refuses, the channel being closed then: 404
    ///   NOT_FOUND for a missing queue, 403 ACCESS_REFUSED when the queue has an exclusive consumer or `exclusive` is
    ///   asked of a queue that has consumers, 405 RESOURCE_LOCKED for another connection's exclusive queue, 406
    ///   PRECONDITION_FAILED for arguments the queue refuses (a stream consumer without a prefetch, say);
    ///   `connectionClosedByBroker` with 530 NOT_ALLOWED for a `tag` already used on the channel (the broker closes the
    ///   whole connection); `channelClosed` on a closed channel; `connectionLost` (retriable) while the connection
    ///   recovers or when it fails before the broker answers; once the connection has ended, the error it ended with
    ///   (`connectionClosed`, `connectionClosedByBroker` or `connectionLost`). `CancellationError` when the task is
    ///   cancelled before the broker answers: the consumer may still start, and its deliveries then wait unread and
    ///   unacknowledged until the channel closes.
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
    ///
    /// A tag that names no running consumer of this channel (one already cancelled, say) is not an error: nothing is
    /// sent. While the connection recovers the consumer ends at once and is not restarted.
    ///
    /// - Parameter consumerTag: The consumer's tag, as in ``AMQPConsumer/tag``.
    /// - Throws: ``AMQPError``: `channelClosed` on a closed channel, or the error the connection ended with;
    ///   `connectionLost` (retriable) when the connection fails before the broker answers, and recovery then restarts
    ///   the consumer. `CancellationError` when the task is cancelled before the broker answers; the cancellation may
    ///   still take effect.
    public func cancel(consumerTag: String) async throws {
        try await request { connection, continuation in
            connection.cancelConsumer(consumerTag, on: self.id, continuation: continuation)
        }
    }

    /// Fetches one message from a queue (`basic.get`), or nil when the queue is empty.
    ///
    /// - Parameters:
    ///   - queue: The queue's name.
    ///   - noAck: Consider the message acknowledged once sent.
    /// - Returns: The message, or nil when the queue held none.
    /// - Throws: ``AMQPError``: `invalidArgument` for a name over 255 bytes (nothing is sent); `channelClosedByBroker`
    ///   when the broker refuses, the channel being closed then: 404 NOT_FOUND for a missing queue, 405 RESOURCE_LOCKED
    ///   for another connection's exclusive queue, 403 ACCESS_REFUSED for a missing permission; `channelClosed` on a
    ///   closed channel; `connectionLost` (retriable) while the connection recovers or when it fails before the broker
    ///   answers; once the connection has ended, the error it ended with (`connectionClosed`,
    ///   `connectionClosedByBroker` or `connectionLost`). `CancellationError` when the task is cancelled before the
    ///   broker answers; without `noAck`, a message the broker handed out meanwhile stays unacknowledged until the
    ///   channel closes.
    public func get(queue: String, noAck: Bool = false) async throws -> AMQPDelivery? {
        try Self.validateName(queue, "queue name")
        let message = try await request { connection, continuation in
            connection.get(on: self.id, queue: queue, noAck: noAck, continuation: continuation)
        }
        return message.map { AMQPDelivery($0, channel: self) }
    }

    /// Acknowledges a delivery (`basic.ack`).
    ///
    /// The acknowledgement is queued for the connection's thread; the call does not wait for the network. Delivery
    /// tags count per connection: a tag from before a recovery names nothing on the new connection (the broker then
    /// closes the channel with 406 PRECONDITION_FAILED) or another delivery. ``AMQPDelivery/ack(multiple:)`` knows
    /// which connection its delivery came from, and is the safer call.
    ///
    /// - Parameters:
    ///   - deliveryTag: The delivery's tag on this channel.
    ///   - multiple: Also acknowledge every earlier unacknowledged delivery.
    /// - Throws: ``AMQPError`` when the channel can no longer be used, and nothing is sent (the broker redelivers the
    ///   message): `channelClosed`, or the error the connection ended with (`connectionClosed`,
    ///   `connectionClosedByBroker` or `connectionLost`). While the connection recovers, nothing is sent and nothing is
    ///   thrown.
    public func ack(deliveryTag: UInt64, multiple: Bool = false) async throws {
        try acknowledge(deliveryTag: deliveryTag, multiple: multiple, kind: .ack)
    }

    /// Refuses deliveries (`basic.nack`), requeueing them or letting their queue dead-letter or drop them.
    ///
    /// Queued and sent without waiting, with the same caveat about tags across a recovery as
    /// ``ack(deliveryTag:multiple:)``.
    ///
    /// - Parameters:
    ///   - deliveryTag: The delivery's tag on this channel.
    ///   - multiple: Also refuse every earlier unacknowledged delivery.
    ///   - requeue: Put the messages back in their queue (`true`), or dead-letter or drop them (`false`).
    /// - Throws: ``AMQPError`` when the channel can no longer be used, and nothing is sent: `channelClosed`, or the
    ///   error the connection ended with (`connectionClosed`, `connectionClosedByBroker` or `connectionLost`). While
    ///   the connection recovers, nothing is sent and nothing is thrown.
    public func nack(deliveryTag: UInt64, multiple: Bool = false, requeue: Bool = true) async throws {
        try acknowledge(deliveryTag: deliveryTag, multiple: multiple, kind: .nack(requeue: requeue))
    }

    /// Rejects one delivery (`basic.reject`).
    ///
    /// Queued and sent without waiting, with the same caveat about tags across a recovery as
    /// ``ack(deliveryTag:multiple:)``.
    ///
    /// - Parameters:
    ///   - deliveryTag: The delivery's tag on this channel.
    ///   - requeue: Put the message back in its queue (`true`), or dead-letter or drop it (`false`).
    /// - Throws: ``AMQPError`` when the channel can no longer be used, and nothing is sent: `channelClosed`, or the
    ///   error the connection ended with (`connectionClosed`, `connectionClosedByBroker` or `connectionLost`). While
    ///   the connection recovers, nothing is sent and nothing is thrown.
    public func reject(deliveryTag: UInt64, requeue: Bool = true) async throws {
        try acknowledge(deliveryTag: deliveryTag, multiple: false, kind: .reject(requeue: requeue))
    }

    /// Asks the broker to redeliver every unacknowledged message of the channel (`basic.recover`).
    ///
    /// - Parameter requeue: Put the messages back in their queues, where any consumer may get them. RabbitMQ does not
    ///   implement `false` (redeliver to the same consumer): it closes the whole connection with 540 NOT_IMPLEMENTED.
    /// - Throws: ``AMQPError``: `connectionClosedByBroker` with 540 NOT_IMPLEMENTED for `requeue: false`;
    ///   `channelClosed` on a closed channel; `connectionLost` (retriable) while the connection recovers or when it
    ///   fails before the broker answers; once the connection has ended, the error it ended with (`connectionClosed`,
    ///   `connectionClosedByBroker` or `connectionLost`). `CancellationError` when the task is cancelled before the
    ///   broker answers; the messages may still be redelivered.
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

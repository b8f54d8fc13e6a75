import Foundation

/// Prefetch, publisher confirms and publishing.
extension AMQPChannel {
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
        guard core.instruments.isActive else {
            return try await handOver(
                body, exchange: exchange, routingKey: routingKey, properties: properties, mandatory: mandatory,
                onSettle: nil)
        }
        return try await instrumentedPublish(
            body, exchange: exchange, routingKey: routingKey, properties: properties, mandatory: mandatory)
    }

    /// Validates a publish, waits for room and hands it to the connection's thread; `onSettle` hears the confirm.
    func handOver(
        _ body: Data, exchange: String, routingKey: String, properties: AMQPProperties, mandatory: Bool,
        onSettle: (@Sendable (Result<Void, AMQPError>) -> Void)?
    ) async throws -> AMQPPublishConfirmation? {
        // One call each rather than validateNames: no array to allocate on every publish.
        try Self.validateName(exchange, "exchange name")
        try Self.validateName(routingKey, "routing key")
        try properties.validate()
        // Fails while the connection recovers; while the broker blocks the connection (a resource alarm) waits,
        // bounded by a timeout. Acknowledgements never wait, so consumers keep draining queues.
        try await core.admitPublish()
        // Also throws once the channel is closed.
        let confirmed = try await state.acquireConfirmSlot()
        let box = confirmed ? ConfirmationBox(onSettle: onSettle) : nil
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
}

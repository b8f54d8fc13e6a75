import Foundation

/// Consuming, fetching and settling deliveries.
extension AMQPChannel {
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
    ///   cancelled before the broker answers: should the broker start the consumer anyway, it is cancelled at once
    ///   and what it delivered meanwhile goes back to the queue.
    public func consume(
        queue: String, tag: String = "", noAck: Bool = false, exclusive: Bool = false, arguments: AMQPTable = [:]
    ) async throws -> AMQPConsumer {
        try Self.validateNames([(queue, "queue name"), (tag, "consumer tag")])
        let isStream = arguments["x-stream-offset"] != nil
        // Captures the core and the shared state, never this channel: the I/O thread keeps the buffer, and must not
        // keep the application's connection alive through it.
        let buffer = DeliveryBuffer(noAck: noAck, giveBack: isStream ? nil : Self.requeuer(core: core, state: state))
        let consumerTag: String
        do {
            consumerTag = try await request { (connection, continuation: RequestReply<String>) in
                connection.consume(
                    on: self.id, queue: queue, tag: tag, noAck: noAck, exclusive: exclusive, arguments: arguments,
                    sink: buffer, continuation: continuation)
            }
        } catch is CancellationError {
            // The broker may still start the consumer: marking the buffer abandoned makes the I/O thread cancel it
            // at its consume-ok, and give back whatever it delivered meanwhile.
            buffer.terminate()
            throw CancellationError()
        }
        buffer.setOnTermination { [weak self] in
            // Nobody reads the deliveries any more: stop the broker sending them.
            guard let self else { return }
            try? self.core.commands.enqueue(.perform({ connection in
                connection.cancelConsumer(consumerTag, on: self.id, continuation: nil)
            }, onFailure: { _ in }))
        }
        return AMQPConsumer(owner: DeliveryBufferOwner(buffer), tag: consumerTag, channel: self, queue: queue)
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
        guard core.instruments.isActive else { return try await fetch(queue: queue, noAck: noAck) }
        return try await instrumentedGet(queue: queue, noAck: noAck)
    }

    /// `basic.get`, without spans or metrics.
    func fetch(queue: String, noAck: Bool) async throws -> AMQPDelivery? {
        try Self.validateName(queue, "queue name")
        let message = try await request { connection, continuation in
            connection.get(on: self.id, queue: queue, noAck: noAck, continuation: continuation)
        }
        return message.map { AMQPDelivery($0, channel: self, queue: queue) }
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
}

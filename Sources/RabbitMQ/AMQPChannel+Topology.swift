import Foundation

/// Declaring, binding and deleting exchanges and queues.
extension AMQPChannel {
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
}

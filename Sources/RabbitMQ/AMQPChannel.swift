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

    func request<T: Sendable>(
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
    static func requeuer(
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

    static func validateNames(_ values: [(String, String)]) throws(AMQPError) {
        for (value, what) in values { try validateName(value, what) }
    }
}

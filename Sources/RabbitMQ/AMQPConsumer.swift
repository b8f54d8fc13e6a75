/// The deliveries of one consumer, as an `AsyncSequence`.
///
/// Returned by ``AMQPChannel/consume(queue:tag:noAck:exclusive:arguments:)``. Iterate it once: a second iterator
/// throws `invalidArgument` at its first `next()`, rather than taking deliveries from the first. It ends normally when
/// the consumer is cancelled by the application, and throws ``AMQPError`` when the broker cancels the consumer
/// (`consumerCancelledByBroker`) or the channel or connection fails. Cancelling the iterating task, or dropping
/// every copy of the consumer, cancels the consumer; deliveries not read by then go back to the queue.
public struct AMQPConsumer: AsyncSequence, Sendable {
    /// The sequence's element: one delivery.
    public typealias Element = AMQPDelivery

    /// The consumer tag, as the broker knows it.
    public let tag: String
    /// The channel the consumer runs on.
    public let channel: AMQPChannel
    private let owner: DeliveryBufferOwner
    /// The queue the consumer reads.
    let queue: String

    init(owner: DeliveryBufferOwner, tag: String, channel: AMQPChannel, queue: String) {
        self.owner = owner
        self.tag = tag
        self.channel = channel
        self.queue = queue
    }

    /// Cancels the consumer (`basic.cancel`); the sequence delivers what was already on its way, then ends.
    ///
    /// - Throws: ``AMQPError``, as ``AMQPChannel/cancel(consumerTag:)`` does: `channelClosed` on a closed channel, or
    ///   the error the connection ended with; `connectionLost` (retriable) when the connection fails before the broker
    ///   answers, and recovery then restarts the consumer. `CancellationError` when the task is cancelled before the
    ///   broker answers; the cancellation may still take effect.
    public func cancel() async throws {
        try await channel.cancel(consumerTag: tag)
    }

    /// Creates the iterator; only the first one reads deliveries.
    public func makeAsyncIterator() -> Iterator {
        Iterator(owner: owner, isSecond: !owner.buffer.claimIterator(), tag: tag, channel: channel, queue: queue)
    }

    /// Iterates the deliveries.
    public struct Iterator: AsyncIteratorProtocol {
        let owner: DeliveryBufferOwner
        /// Whether another iterator was made first: this one then refuses to read.
        let isSecond: Bool
        let tag: String
        /// The channel deliveries are acknowledged through.
        let channel: AMQPChannel
        /// The queue the consumer reads.
        let queue: String

        /// The next delivery, or nil once the consumer was cancelled.
        ///
        /// Cancelling the iterating task ends the sequence with nil, not with `CancellationError`, and cancels the
        /// consumer.
        ///
        /// - Returns: The next delivery; nil once the consumer was cancelled by the application and the deliveries
        ///   already on their way were read, once the iterating task was cancelled, and after the error that ended
        ///   the sequence was thrown.
        /// - Throws: ``AMQPError``: `invalidArgument` from an iterator made after the first one, or when two tasks call
        ///   `next()` on copies of one iterator at the same time; otherwise, once, the reason the consumer ended
        ///   (`consumerCancelledByBroker`, the channel's or the connection's error).
        public mutating func next() async throws -> AMQPDelivery? {
            guard !isSecond else {
                throw AMQPError(
                    .invalidArgument, "consumer \(tag) is already being iterated; a consumer's deliveries are read once")
            }
            guard let message = try await owner.buffer.next() else { return nil }
            let delivery = AMQPDelivery(message, channel: channel, queue: queue)
            if let metrics = channel.core.instruments.metrics {
                metrics.recordConsumed(operation: "process", destination: delivery.receiveDestination)
            }
            return delivery
        }
    }
}

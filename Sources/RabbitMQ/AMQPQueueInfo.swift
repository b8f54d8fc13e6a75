/// What the broker answered to a queue declaration (`queue.declare-ok`).
public struct AMQPQueueInfo: Sendable, Hashable {
    /// The queue's name; for a server-named queue, the name the broker chose.
    public let name: String
    /// How many messages were ready in the queue (not counting unacknowledged ones).
    public let messageCount: UInt32
    /// How many consumers the queue had.
    public let consumerCount: UInt32
}

import Foundation

/// Work a task hands to a connection's I/O thread.
///
/// Publishes and acknowledgements, the hot paths, are plain values; everything else is a closure that runs on the I/O
/// thread with the C connection and answers through the continuation it captured.
enum ConnectionCommand: Sendable {
    /// Runs `body` on the I/O thread; if the connection is gone first, `onFailure` gets the connection's error.
    case perform(_ body: @Sendable (RabbitMQCConnection) -> Void, onFailure: @Sendable (AMQPError) -> Void)
    /// Sends `basic.publish`.
    case publish(PublishRequest)
    /// Sends `basic.ack`, `basic.nack` or `basic.reject`.
    case acknowledge(AcknowledgeRequest)
    /// Closes the connection gracefully, then settles the waiter.
    case close(OneShotResult<Void>)
    /// Runs a job of a task that prefers the connection's executor (``ConnectionTaskExecutor``).
    case run(UnownedJob)

    /// Tells whoever waits on this command that it will never run.
    func fail(_ error: AMQPError) {
        switch self {
        case .perform(_, let onFailure):
            onFailure(error)
        case .publish(let request):
            request.confirmation?.settle(.failure(error))
        case .acknowledge:
            break
        case .close(let waiter):
            waiter.resume()
        case .run(let job):
            // A job cannot be dropped: its task would never resume.
            ConnectionTaskExecutor.runElsewhere(job)
        }
    }
}

/// One `basic.publish`, as queued for the I/O thread.
///
/// A class, so that the command queue moves one pointer rather than copying the properties along the way.
final class PublishRequest: Sendable {
    let channelID: UInt16
    let exchange: String
    let routingKey: String
    let body: Data
    let properties: AMQPProperties
    let mandatory: Bool
    /// Present when the channel is in confirm mode: the I/O thread settles it when the broker answers.
    let confirmation: ConfirmationBox?

    init(
        channelID: UInt16, exchange: String, routingKey: String, body: Data, properties: AMQPProperties,
        mandatory: Bool, confirmation: ConfirmationBox?
    ) {
        self.channelID = channelID
        self.exchange = exchange
        self.routingKey = routingKey
        self.body = body
        self.properties = properties
        self.mandatory = mandatory
        self.confirmation = confirmation
    }
}

/// One acknowledgement of a delivery, as queued for the I/O thread.
struct AcknowledgeRequest: Sendable {
    enum Kind: Sendable {
        case ack
        case nack(requeue: Bool)
        case reject(requeue: Bool)
    }

    let channelID: UInt16
    let deliveryTag: UInt64
    let multiple: Bool
    let kind: Kind
    /// The channel epoch the delivery came in, when known: an acknowledgement from before a recovery is ignored.
    let epoch: UInt64?
}

internal import CRabbitMQ
import Foundation

/// What the I/O thread keeps for one open channel: the requests waiting for their reply, the confirm window, the
/// consumers, and the message being assembled from its method, header and body frames.
///
/// Lives on the I/O thread only, like the C connection it belongs to.
final class RabbitMQCChannel {
    /// A synchronous AMQP request waiting for its reply. AMQP answers them in order on a channel, so a FIFO suffices.
    struct PendingReply {
        let request: AMQPMethod
        let replies: [amqp_method_number_t]
        let complete: (amqp_method_t) -> Void
        let fail: (AMQPError) -> Void
    }

    /// A synchronous request waiting for the channel's previous request to be answered.
    struct QueuedRequest {
        let fail: (AMQPError) -> Void
        let send: () -> Void
    }

    /// A consumer registered by `basic.consume-ok`, with what recovery needs to start it again.
    struct Consumer {
        let noAck: Bool
        let sink: DeliveryBuffer
        var queue: String
        let exclusive: Bool
        let arguments: AMQPTable
    }

    /// What the content frames being assembled belong to.
    enum ContentOwner {
        case delivery(consumerTag: String, deliveryTag: UInt64, redelivered: Bool, exchange: String, routingKey: String)
        case returned(replyCode: UInt16, replyText: String, exchange: String, routingKey: String)
        case fetched(
            deliveryTag: UInt64, redelivered: Bool, exchange: String, routingKey: String, remaining: UInt32,
            noAck: Bool, reply: RequestReply<InboundMessage?>)
    }

    /// A message between its method frame and its last body frame.
    struct Content {
        let owner: ContentOwner
        var properties = AMQPProperties()
        var expectedSize = 0
        var body = Data()
        var headerSeen = false
    }

    /// An outstanding confirmed publish.
    struct PendingConfirm {
        let box: ConfirmationBox?
        /// For mandatory publishes: what identifies the message if the broker returns it.
        let mandatory: (exchange: String, routingKey: String, body: Data)?
        var returned: AMQPReturnedMessage?
    }

    let id: UInt16
    /// What the caller's side of the channel sees: closed or not, the confirm window, returned messages.
    let shared: ChannelState
    /// The request awaiting its reply (AMQP allows one per channel).
    var pendingReplies: [PendingReply] = []
    /// Requests made while another awaited its reply, in order.
    var queuedRequests: [QueuedRequest] = []
    var consumers: [String: Consumer] = [:]
    var content: Content?
    /// Present once `confirm.select` was sent: every later publish gets the next delivery tag.
    var confirmsEnabled = false
    var nextPublishTag: UInt64 = 1
    var lowestUnsettledTag: UInt64 = 1
    var pendingConfirms: [UInt64: PendingConfirm] = [:]
    /// Which connection the channel's delivery tags belong to: recovery starts a new epoch, and acknowledgements of
    /// deliveries from an earlier one are ignored.
    var epoch: UInt64 = 0
    /// The prefetch the application set (`basic.qos`), for recovery to set again.
    var prefetch: (count: UInt16, global: Bool)?
    /// Deliveries awaiting their acknowledgement, to coalesce acknowledgements safely.
    var unsettled = RabbitMQCUnsettledTags()

    init(shared: ChannelState) {
        self.id = shared.id
        self.shared = shared
    }

    /// Records a publish just sent in confirm mode.
    func recordPublish(_ request: PublishRequest) {
        let tag = nextPublishTag
        nextPublishTag += 1
        let mandatory = request.mandatory ? (request.exchange, request.routingKey, request.body) : nil
        pendingConfirms[tag] = PendingConfirm(box: request.confirmation, mandatory: mandatory)
    }

    /// Settles the confirms `basic.ack` or `basic.nack` names; returns how many publishers were waiting on them.
    func settleConfirms(upTo tag: UInt64, multiple: Bool, acked: Bool) -> Int {
        // Settled as they are found: a multiple ack settles hundreds, and collecting them first cost an array.
        var waiting = 0
        if multiple {
            if lowestUnsettledTag <= tag {
                for current in lowestUnsettledTag...tag {
                    if let entry = pendingConfirms.removeValue(forKey: current) {
                        waiting += Self.settle(entry, acked: acked)
                    }
                }
            }
        } else if let entry = pendingConfirms.removeValue(forKey: tag) {
            waiting += Self.settle(entry, acked: acked)
        }
        while lowestUnsettledTag < nextPublishTag && pendingConfirms[lowestUnsettledTag] == nil {
            lowestUnsettledTag += 1
        }
        return waiting
    }

    /// Tells one publish's waiter the broker's answer; returns 1 when a publisher waited on it, else 0.
    private static func settle(_ entry: PendingConfirm, acked: Bool) -> Int {
        guard let box = entry.box else { return 0 }
        if let returned = entry.returned {
            box.settle(.failure(AMQPError(
                .messageReturned, "the broker could not route the mandatory message",
                replyCode: returned.replyCode, replyText: returned.replyText,
                method: AMQPMethod(classID: 60, methodID: 40))))
        } else if acked {
            box.settle(.success(()))
        } else {
            box.settle(.failure(AMQPError(
                .publishNacked, "the broker refused the message (basic.nack)",
                method: AMQPMethod(classID: 60, methodID: 40))))
        }
        return 1
    }

    /// Attaches a returned message to the oldest outstanding mandatory publish it matches.
    ///
    /// `basic.return` carries no delivery tag. The broker sends it before the `basic.ack` of the same message, so
    /// the returned message is one of the outstanding mandatory publishes; the one with the same exchange, routing
    /// key and body is it (identical messages are interchangeable).
    func attachReturn(_ returned: AMQPReturnedMessage) {
        let candidates = pendingConfirms.filter { _, entry in
            guard entry.returned == nil, let mandatory = entry.mandatory else { return false }
            return mandatory.exchange == returned.exchange && mandatory.routingKey == returned.routingKey
                && mandatory.body == returned.body
        }
        if let tag = candidates.keys.min() {
            pendingConfirms[tag]?.returned = returned
        }
    }

    /// Fails the request awaiting its reply and those queued behind it.
    private func failRequests(with error: AMQPError) {
        let replies = pendingReplies
        pendingReplies = []
        for reply in replies { reply.fail(error) }
        let queued = queuedRequests
        queuedRequests = []
        for request in queued { request.fail(error) }
    }

    /// Fails what was in flight when the connection failed, but keeps the channel, its consumers and its settings
    /// for recovery. Confirms and replies that were pending fail with `error` (retriable).
    func interrupt(with error: AMQPError) {
        failRequests(with: error)
        let confirms = pendingConfirms
        pendingConfirms = [:]
        var released = 0
        for entry in confirms.values {
            guard let box = entry.box else { continue }
            box.settle(.failure(error))
            released += 1
        }
        shared.releaseConfirmSlots(released)
        nextPublishTag = 1
        lowestUnsettledTag = 1
        if case .fetched(_, _, _, _, _, _, let reply) = content?.owner {
            reply.resume(throwing: error)
        }
        content = nil
        epoch += 1
        unsettled.reset()
    }

    /// Fails everything waiting on this channel with `error`; later calls get `closedError`. Consumers end with
    /// `consumerError`, or normally when it is nil.
    func fail(with error: AMQPError, closedError: AMQPError, consumerError: AMQPError?) {
        shared.didClose(closedError)
        failRequests(with: error)
        let confirms = pendingConfirms
        pendingConfirms = [:]
        for entry in confirms.values { entry.box?.settle(.failure(error)) }
        let consumers = self.consumers
        self.consumers = [:]
        for consumer in consumers.values {
            if let consumerError {
                consumer.sink.finish(throwing: consumerError)
            } else {
                consumer.sink.finish()
            }
        }
        if case .fetched(_, _, _, _, _, _, let reply) = content?.owner {
            reply.resume(throwing: error)
        }
        content = nil
    }
}

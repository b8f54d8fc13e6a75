import Foundation
import RabbitMQ

/// Everything the service publishes, on one channel in confirm mode: outcomes, retries and parked messages.
///
/// Every call returns only once the broker confirmed the message, so a handler acknowledges the delivery it
/// handles only after its consequences are safe (see <doc:DelayedRetry#Acknowledge-after-the-confirm>).
struct PaymentPublisher: Sendable {
    let channel: ConfirmedChannel
    let topology: PaymentTopology
    let mode: ResolvedDelayMode

    /// Publishes a payment's outcome to `payment-events`, in the trace of `delivery`, the payment it settles.
    func publish(_ outcome: PaymentOutcome, settling delivery: AMQPDelivery) async throws {
        let body = try JSONEncoder().encode(outcome)
        try await channel.publish(
            body, exchange: topology.eventsExchange, routingKey: outcome.outcome.routingKey,
            properties: AMQPProperties(
                contentType: "application/json", headers: InheritedTraceContext.passedOn(from: delivery),
                deliveryMode: .persistent, messageID: outcome.paymentId, timestamp: Date()),
            mandatory: false)
    }

    /// Publishes a payment again, to come back to `payment-reprocessor` as attempt `attempt` after `delay`.
    func scheduleRetry(of delivery: AMQPDelivery, attempt: Int, delay: Duration) async throws {
        var properties = delivery.properties
        properties.deliveryMode = .persistent
        var headers = properties.headers ?? AMQPTable()
        InheritedTraceContext.dropInherited(from: &headers)
        headers[PaymentTopology.attemptHeader] = .int32(Int32(clamping: attempt))
        switch mode {
        case .plugin, .pluginStandIn:
            headers[AMQPDelayedExchange.delayHeader] = try AMQPDelayedExchange.delayValue(for: delay)
            properties.headers = headers
            // Never mandatory: the plugin makes every delayed message look unroutable at publish time.
            try await channel.publish(
                delivery.body, exchange: topology.delayedExchange, routingKey: topology.retriesQueue,
                properties: properties, mandatory: false)
        case .ttl:
            headers[AMQPDelayedExchange.delayHeader] = nil
            properties.headers = headers
            try await channel.publish(
                delivery.body, routingKey: topology.delayQueue(for: delay), properties: properties)
        }
    }

    /// Moves a message to `payment-parking-lot` with the reason and its source queue in headers.
    func park(_ delivery: AMQPDelivery, reason: String, from queue: String) async throws {
        var properties = delivery.properties
        properties.deliveryMode = .persistent
        var headers = properties.headers ?? AMQPTable()
        InheritedTraceContext.dropInherited(from: &headers)
        headers[PaymentTopology.parkingReasonHeader] = .string(reason)
        headers[PaymentTopology.parkingSourceHeader] = .string(queue)
        headers[AMQPDelayedExchange.delayHeader] = nil
        properties.headers = headers
        do {
            try await channel.publish(
                delivery.body, routingKey: topology.parkingLot, properties: properties)
        } catch let error as AMQPError where error.code == .invalidArgument {
            // The original properties cannot be sent again (a header key this client refuses): park the body with
            // just the reason, rather than not at all.
            let bare = AMQPProperties(
                headers: [
                    PaymentTopology.parkingReasonHeader: .string(reason),
                    PaymentTopology.parkingSourceHeader: .string(queue),
                ], deliveryMode: .persistent)
            try await channel.publish(delivery.body, routingKey: topology.parkingLot, properties: bare)
        }
    }
}

/// The delay mechanism in use once `auto` is resolved.
enum ResolvedDelayMode: String, Sendable {
    /// The delayed-message plugin's exchange.
    case plugin
    /// TTL queues per delay level.
    case ttl
    /// The plugin's path on a stock `direct` exchange that does not delay (tests only).
    case pluginStandIn = "plugin-stand-in"
}

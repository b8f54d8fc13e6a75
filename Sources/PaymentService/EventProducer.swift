import Foundation
import Logging
import RabbitMQ

/// Publishes registrations and payments to their queues with confirms: what `producer` does.
public struct EventProducer: Sendable {
    /// What became of a batch.
    public struct Report: Sendable {
        /// The ids of the messages the broker confirmed, in order.
        public var confirmed: [String] = []
        /// The messages that failed, with why.
        public var failed: [(id: String, error: String)] = []
    }

    let connection: AMQPConfiguration
    let topology: PaymentTopology
    let logger: Logger

    /// Creates a producer for the broker `connection` describes.
    public init(connection: AMQPConfiguration, topology: PaymentTopology = PaymentTopology(), logger: Logger) {
        self.connection = connection
        self.topology = topology
        self.logger = logger
    }

    /// Publishes registrations to `clients-processor`.
    public func send(_ registrations: [ClientRegistration]) async throws -> Report {
        try await send(registrations.map { ($0.clientId, $0) }, to: topology.clientsQueue)
    }

    /// Publishes payments to `payment-processor`.
    public func send(_ payments: [PaymentRequest]) async throws -> Report {
        try await send(payments.map { ($0.paymentId, $0) }, to: topology.paymentsQueue)
    }

    /// Publishes each message persistent, as JSON, mandatory (so a missing queue is an error, not a silent drop),
    /// with up to 1,000 awaiting their confirm.
    private func send<Message: Encodable>(_ messages: [(id: String, message: Message)], to queue: String)
        async throws -> Report
    {
        var configuration = connection
        configuration.connectionName = configuration.connectionName ?? "payment-producer"
        let amqp = try await AMQPConnection.connect(configuration: configuration, logger: logger)
        do {
            let channel = try await amqp.openChannel()
            do {
                _ = try await channel.declareQueue(queue, passive: true)
            } catch let error as AMQPError where error.replyCode == 404 {
                throw PaymentServiceError(
                    "queue \(queue) does not exist: start the consumer first, it declares the topology")
            }
            try await channel.enablePublisherConfirms(maxOutstanding: 1000)
            let encoder = JSONEncoder()
            var pending: [(String, AMQPPublishConfirmation)] = []
            var report = Report()
            for (id, message) in messages {
                let properties = AMQPProperties(
                    contentType: "application/json", deliveryMode: .persistent, messageID: id, timestamp: Date(),
                    appID: "producer")
                do {
                    if let confirmation = try await channel.startPublish(
                        try encoder.encode(message), routingKey: queue, properties: properties, mandatory: true)
                    {
                        pending.append((id, confirmation))
                    }
                } catch {
                    report.failed.append((id, "\(error)"))
                }
            }
            for (id, confirmation) in pending {
                do {
                    try await confirmation.wait()
                    report.confirmed.append(id)
                } catch {
                    report.failed.append((id, "\(error)"))
                }
            }
            try await amqp.close()
            return report
        } catch {
            try? await amqp.close()
            throw error
        }
    }
}

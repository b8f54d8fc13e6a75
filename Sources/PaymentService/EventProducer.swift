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
    ///
    /// Nothing is sent until a `send` call, which opens a connection of its own and closes it before returning.
    ///
    /// - Parameters:
    ///   - connection: The broker and how to reach it; its connection name defaults to `payment-producer`.
    ///   - topology: The queue names to publish to. Default: the service's names, without a prefix.
    ///   - logger: Where the producer and its connection log.
    public init(connection: AMQPConfiguration, topology: PaymentTopology = PaymentTopology(), logger: Logger) {
        self.connection = connection
        self.topology = topology
        self.logger = logger
    }

    /// Publishes registrations to `clients-processor`.
    ///
    /// Each is published persistent, as JSON, `mandatory`, with its client id as message id; a message whose
    /// confirm is lost to a connection failure is published again once the connection has recovered.
    ///
    /// - Parameter registrations: The registrations to publish, in order.
    /// - Returns: The ids the broker confirmed, in order, and the messages that still failed after the retries
    ///   (refused, returned as unroutable, or lost to a connection failure in the last round), each with its error.
    /// - Throws: ``PaymentServiceError`` when the queue does not exist (the consumer declares it); `AMQPError`
    ///   when connecting fails (see `AMQPConnection.connect(configuration:logger:)`) or opening the
    ///   channel, checking the queue or enabling confirms does; `CancellationError` when the task is cancelled while
    ///   it waits for the connection to recover between rounds. A message that fails on its own is reported in
    ///   ``Report/failed``, not thrown.
    public func send(_ registrations: [ClientRegistration]) async throws -> Report {
        try await send(registrations.map { ($0.clientId, $0) }, to: topology.clientsQueue)
    }

    /// Publishes payments to `payment-processor`.
    ///
    /// Each is published persistent, as JSON, `mandatory`, with its payment id as message id; a message whose
    /// confirm is lost to a connection failure is published again once the connection has recovered.
    ///
    /// - Parameter payments: The payments to publish, in order.
    /// - Returns: The ids the broker confirmed, in order, and the messages that still failed after the retries
    ///   (refused, returned as unroutable, or lost to a connection failure in the last round), each with its error.
    /// - Throws: ``PaymentServiceError`` when the queue does not exist (the consumer declares it); `AMQPError`
    ///   when connecting fails (see `AMQPConnection.connect(configuration:logger:)`) or opening the
    ///   channel, checking the queue or enabling confirms does; `CancellationError` when the task is cancelled while
    ///   it waits for the connection to recover between rounds. A message that fails on its own is reported in
    ///   ``Report/failed``, not thrown.
    public func send(_ payments: [PaymentRequest]) async throws -> Report {
        try await send(payments.map { ($0.paymentId, $0) }, to: topology.paymentsQueue)
    }

    /// How many times messages whose confirm was lost to a connection failure are published again.
    static let rounds = 5

    /// Publishes each message persistent, as JSON, mandatory (so a missing queue is an error, not a silent drop),
    /// with up to 1,000 awaiting their confirm.
    ///
    /// A message whose publish failed retriably (the connection failed and recovers, or the broker refused it) is
    /// published again, on a new channel, once the connection is back, up to ``rounds`` times, so that every id ends
    /// up either confirmed or reported as failed, once. A message whose confirm was lost may then reach the queue
    /// twice; the consumer's deduplication by id absorbs that.
    private func send<Message: Encodable>(_ messages: [(id: String, message: Message)], to queue: String)
        async throws -> Report
    {
        var configuration = connection
        configuration.connectionName = configuration.connectionName ?? "payment-producer"
        let amqp = try await AMQPConnection.connect(configuration: configuration, logger: logger)
        do {
            var channel = try await amqp.openChannel()
            do {
                _ = try await channel.declareQueue(queue, passive: true)
            } catch let error as AMQPError where error.replyCode == 404 {
                throw PaymentServiceError(
                    "queue \(queue) does not exist: start the consumer first, it declares the topology")
            }
            try await channel.enablePublisherConfirms(maxOutstanding: 1000)
            let encoder = JSONEncoder()
            var remaining = try messages.map { ($0.id, try encoder.encode($0.message)) }
            var report = Report()
            for round in 1...Self.rounds where !remaining.isEmpty {
                if round > 1 {
                    logger.info(
                        "publishing again the messages whose confirm was lost",
                        metadata: ["count": "\(remaining.count)", "round": "\(round)"])
                    try await waitForRecovery(of: amqp)
                    // Each round on a new channel: RabbitMQ 3.10 can refuse (basic.nack) every later publish of a
                    // channel that published to a quorum queue while the queue had no leader.
                    let stale = channel
                    channel = try await amqp.openChannel()
                    try await channel.enablePublisherConfirms(maxOutstanding: 1000)
                    try? await stale.close()
                }
                var retriable: [(String, Data)] = []
                let lastRound = round == Self.rounds
                func failed(_ id: String, _ body: Data, _ error: any Error) {
                    if let error = error as? AMQPError, error.isRetriable, !lastRound {
                        retriable.append((id, body))
                    } else {
                        report.failed.append((id, "\(error)"))
                    }
                }
                var pending: [(String, Data, AMQPPublishConfirmation)] = []
                for (id, body) in remaining {
                    let properties = AMQPProperties(
                        contentType: "application/json", deliveryMode: .persistent, messageID: id, timestamp: Date(),
                        appID: "producer")
                    do {
                        if let confirmation = try await channel.startPublish(
                            body, routingKey: queue, properties: properties, mandatory: true)
                        {
                            pending.append((id, body, confirmation))
                        }
                    } catch {
                        failed(id, body, error)
                    }
                }
                for (id, body, confirmation) in pending {
                    do {
                        try await confirmation.wait()
                        report.confirmed.append(id)
                    } catch {
                        failed(id, body, error)
                    }
                }
                remaining = retriable
            }
            try await amqp.close()
            return report
        } catch {
            try? await amqp.close()
            throw error
        }
    }

    /// Waits until the connection has recovered from a failure (at most a minute).
    private func waitForRecovery(of connection: AMQPConnection) async throws {
        let deadline = ContinuousClock.now + .seconds(60)
        // A failure is seen a moment after the publishes that it failed, so give it a moment to show.
        try await Task.sleep(for: .milliseconds(100))
        while connection.isRecovering && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
    }
}

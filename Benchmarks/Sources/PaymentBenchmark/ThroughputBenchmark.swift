import Foundation
import Logging
import PaymentService
import RabbitMQ

/// Measure 2: payments per second when the client is already known, so no payment is retried.
///
/// - End to end: the consumer runs and knows the client (registered through `clients-processor`); the payments are
///   published as fast as the confirm window allows; measured from the first publish to the last outcome.
/// - Consumer only: the payments wait in `payment-processor` before a fresh consumer starts; measured from the
///   consumer's start (connecting and declaring included) to the last outcome.
struct ThroughputBenchmark {
    let configuration: AMQPConfiguration
    let topology: PaymentTopology
    let payments: Int
    /// How many times the consumer-only pass and the reference run, alternately: the machine's noise moves single
    /// runs by tens of percent, so the ratio reported is the median round's.
    let rounds: Int
    let logger: Logger
    let policy = RetryPolicy()
    let client = "tput-client"

    struct Pass {
        /// Payments with an outcome, out of those published.
        let outcomes: Int
        /// Outcomes other than processed at the first attempt.
        let anomalies: Int
        /// From the start of the measure to the last outcome.
        let duration: Duration
        /// From the start of the measure to the first outcome.
        let firstOutcome: Duration
        /// How long publishing took, with every confirm in.
        let publishing: Duration
        /// The service's counters once it stopped.
        var service: PaymentMetrics.Snapshot?

        /// Outcomes per second.
        var rate: Double {
            Double(outcomes) / duration.seconds
        }
    }

    struct Result {
        let endToEnd: Pass
        /// The consumer-only pass of the median round.
        let consumerOnly: Pass
        /// The same work without the service (see ``ReferencePipeline``), the outcome path: the median round's.
        let reference: ReferencePipeline.Result
        /// Consumer-only rate over reference rate, per round, in the order they ran.
        let ratios: [Double]
        /// The same, with each message published to a durable queue instead: the retry path.
        let referenceDurable: ReferencePipeline.Result
    }

    /// The queues the benchmark adds under the prefix, for the cleanup.
    static let extraQueues = [ReferencePipeline.inputName, ReferencePipeline.outputName, ReferencePipeline.durableName]

    func run() async throws -> Result {
        let first = makeService()
        var consumer: RunningConsumer? = RunningConsumer.start(first, logger: logger)
        var observer: OutcomeObserver?
        var publisher: BenchPublisher?
        do {
            observer = try await OutcomeObserver.start(
                configuration: configuration, topology: topology, logger: logger,
                abort: { [consumer] in consumer?.failure })
            publisher = try await BenchPublisher.connect(
                configuration: configuration, topology: topology, logger: logger)
            guard let observer, let publisher, let running = consumer else { throw BenchmarkError("unreachable") }
            try await observer.waitForConsumers(of: topology, abort: { running.failure })

            var endToEnd = try await measureEndToEnd(
                consumer: running, publisher: publisher, observer: observer)
            try await running.stop()
            endToEnd.service = first.metrics.snapshot
            consumer = nil

            var measured: [(pass: Pass, reference: ReferencePipeline.Result)] = []
            for round in 0..<rounds {
                var consumerOnly = try await measureConsumerOnly(
                    round: round, publisher: publisher, observer: observer, started: { consumer = $0 })
                if let running = consumer {
                    try await running.stop()
                    consumerOnly.service = running.service.metrics.snapshot
                }
                consumer = nil
                let reference = try await ReferencePipeline(
                    configuration: configuration, topology: topology, messages: payments, durableOutput: false,
                    logger: logger
                ).run(publisher: publisher)
                measured.append((consumerOnly, reference))
            }
            await observer.stop()
            let ratios = measured.map { $0.pass.rate / $0.reference.rate }
            let median = measured.sorted { $0.pass.rate / $0.reference.rate < $1.pass.rate / $1.reference.rate }[
                measured.count / 2]

            let referenceDurable = try await ReferencePipeline(
                configuration: configuration, topology: topology, messages: payments, durableOutput: true,
                logger: logger
            ).run(publisher: publisher)
            await publisher.close()
            return Result(
                endToEnd: endToEnd, consumerOnly: median.pass, reference: median.reference, ratios: ratios,
                referenceDurable: referenceDurable)
        } catch {
            await publisher?.close()
            await observer?.stop()
            try? await consumer?.stop()
            throw error
        }
    }

    private func makeService() -> PaymentConsumerService {
        PaymentConsumerService(
            configuration: PaymentConsumerConfiguration(
                connection: configuration, policy: policy, delayMode: .ttl, topology: topology,
                summaryInterval: .zero),
            logger: logger)
    }

    private func measureEndToEnd(
        consumer: RunningConsumer, publisher: BenchPublisher, observer: OutcomeObserver
    ) async throws -> Pass {
        let abort: @Sendable () -> String? = { consumer.failure }
        let encoder = JSONEncoder()
        try await publisher.startRegistration(registrationBody(client: client, encoder: encoder), id: client).wait()
        let deadline = clock.now + .seconds(10)
        while !consumer.service.registry.contains(client) {
            if let failure = abort() { throw BenchmarkError(failure) }
            guard clock.now < deadline else { throw BenchmarkError("the registration of \(client) was not handled") }
            try await Task.sleep(for: .milliseconds(1))
        }

        let bodies = try (0..<payments).map { try paymentBody(id: "e-\($0)", client: client, encoder: encoder) }
        let start = clock.now
        let publishing = try await publishAll(bodies, prefix: "e-", publisher: publisher)
        return try await finish(
            "throughput end-to-end", start: start, publishing: publishing, observer: observer, abort: abort)
    }

    /// Pre-publishes the payments of one round (ids of their own: the service would skip a round's payments as
    /// duplicates of the last one's), then starts a fresh service and times it until every outcome is in.
    private func measureConsumerOnly(
        round: Int, publisher: BenchPublisher, observer: OutcomeObserver, started: (RunningConsumer) -> Void
    ) async throws -> Pass {
        observer.recorder.reset()
        let encoder = JSONEncoder()
        let prefix = "o\(round)-"
        let bodies = try (0..<payments).map { try paymentBody(id: "\(prefix)\($0)", client: client, encoder: encoder) }
        let publishStart = clock.now
        let publishing = try await publishAll(bodies, prefix: prefix, publisher: publisher)
        let waiting = try await publisher.payments.declareQueue(topology.paymentsQueue, passive: true).messageCount
        print(
            "  throughput consumer-only: \(waiting) payments waiting in \(topology.paymentsQueue) "
                + "(published in \(fixed((clock.now - publishStart).milliseconds, 0)) ms)")

        let service = makeService()
        service.registry.register(client)
        let start = clock.now
        let consumer = RunningConsumer.start(service, logger: logger)
        started(consumer)
        return try await finish(
            "throughput consumer-only", start: start, publishing: publishing, observer: observer,
            abort: { consumer.failure })
    }

    /// Publishes every body with at most the channel's confirm window in flight; returns how long it took until
    /// the last confirm.
    private func publishAll(_ bodies: [Data], prefix: String, publisher: BenchPublisher) async throws -> Duration {
        let start = clock.now
        var confirms: [AMQPPublishConfirmation] = []
        confirms.reserveCapacity(bodies.count)
        for (index, body) in bodies.enumerated() {
            confirms.append(try await publisher.startPayment(body, id: "\(prefix)\(index)"))
        }
        for confirmation in confirms { try await confirmation.wait() }
        return clock.now - start
    }

    private func finish(
        _ label: String, start: ContinuousClock.Instant, publishing: Duration, observer: OutcomeObserver,
        abort: @escaping @Sendable () -> String?
    ) async throws -> Pass {
        let complete = try await observer.waitForOutcomes(
            payments, stallTimeout: .seconds(30), label: label, abort: abort)
        let entries = observer.recorder.entries.values
        if !complete { print("  \(label): gave up waiting, \(entries.count)/\(payments) outcomes") }
        guard let last = entries.map(\.receivedAt).max(), let first = entries.map(\.receivedAt).min() else {
            throw BenchmarkError("\(label): no outcome arrived")
        }
        let anomalies = entries.filter { $0.outcome.outcome != .processed || $0.outcome.attempts != 1 }.count
        return Pass(
            outcomes: entries.count, anomalies: anomalies, duration: last - start, firstOutcome: first - start,
            publishing: publishing)
    }
}

/// What the broker and the client library allow for the service's work, without the service: consume a queue of
/// payments (prefetch 100, 32 handled at once: the service's defaults before it held payments; it now has prefetch
/// 1,000 and no other bound), publish one persistent message per delivery with a confirm to a topic exchange routing
/// it to a non-durable queue (as an outcome reaches the observer's queue), then acknowledge the delivery. No JSON, no ledger, no registry, no metrics, no logging.
///
/// Messages are pre-published, so this compares with the consumer-only rate. With `durableOutput` each message goes
/// instead, mandatory through the default exchange, to a durable queue, as a retry goes to a TTL delay queue: the
/// work of a payment whose client is unknown.
struct ReferencePipeline {
    static let inputName = "bench-reference-in"
    static let outputName = "bench-reference-out"
    static let durableName = "bench-reference-durable"

    let configuration: AMQPConfiguration
    let topology: PaymentTopology
    let messages: Int
    let durableOutput: Bool
    let logger: Logger
    let prefetch: UInt16 = 100
    let concurrency = 32

    struct Result {
        let handled: Int
        let duration: Duration

        var rate: Double { Double(handled) / duration.seconds }
    }

    func run(publisher: BenchPublisher) async throws -> Result {
        let input = topology.prefix + Self.inputName
        let output = topology.prefix + Self.outputName
        let setup = try await publisher.connection.openChannel()
        _ = try await setup.declareQueue(input, durable: true)
        let exchange: String
        let routingKey: String
        if durableOutput {
            exchange = ""
            routingKey = topology.prefix + Self.durableName
            _ = try await setup.declareQueue(routingKey, durable: true)
        } else {
            exchange = topology.eventsExchange
            routingKey = "reference.out"
            _ = try await setup.declareQueue(output)
            try await setup.declareExchange(exchange, type: .topic, durable: true)
            try await setup.bindQueue(output, to: exchange, routingKey: "reference.#")
        }
        try await setup.close()
        let mandatory = durableOutput

        let encoder = JSONEncoder()
        var confirms: [AMQPPublishConfirmation] = []
        confirms.reserveCapacity(messages)
        for index in 0..<messages {
            let body = try paymentBody(id: "r-\(index)", client: "tput-client", encoder: encoder)
            let properties = AMQPProperties(contentType: "application/json", deliveryMode: .persistent)
            guard
                let confirmation = try await publisher.payments.startPublish(
                    body, routingKey: input, properties: properties, mandatory: true)
            else { throw BenchmarkError("the publisher is not in confirm mode") }
            confirms.append(confirmation)
        }
        for confirmation in confirms { try await confirmation.wait() }

        var consuming = configuration
        consuming.connectionName = "payment-bench-reference"
        var publishing = configuration
        publishing.connectionName = "payment-bench-reference-publisher"
        let start = clock.now
        let consumeConnection = try await AMQPConnection.connect(configuration: consuming, logger: logger)
        let publishConnection = try await AMQPConnection.connect(configuration: publishing, logger: logger)
        do {
            let outChannel = try await publishConnection.openChannel()
            try await outChannel.enablePublisherConfirms(maxOutstanding: 1000)
            let inChannel = try await consumeConnection.openChannel()
            try await inChannel.setPrefetch(prefetch)
            let consumer = try await inChannel.consume(queue: input)
            var handled = 0
            try await withThrowingTaskGroup(of: Void.self) { group in
                var running = 0
                for try await delivery in consumer {
                    if running >= concurrency {
                        try await group.next()
                        running -= 1
                    }
                    group.addTask {
                        try await outChannel.publish(
                            delivery.body, exchange: exchange, routingKey: routingKey,
                            properties: AMQPProperties(contentType: "application/json", deliveryMode: .persistent),
                            mandatory: mandatory)
                        try await delivery.ack()
                    }
                    running += 1
                    handled += 1
                    if handled == messages { break }
                }
                try await group.waitForAll()
            }
            let duration = clock.now - start
            try await consumeConnection.close()
            try await publishConnection.close()
            return Result(handled: handled, duration: duration)
        } catch {
            try? await consumeConnection.close()
            try? await publishConnection.close()
            throw error
        }
    }
}

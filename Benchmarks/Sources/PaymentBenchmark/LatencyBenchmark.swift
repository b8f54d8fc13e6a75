import Foundation
import Logging
import PaymentService
import RabbitMQ

/// Measure 1: payments whose registration arrives a random lag after them, one client per payment.
///
/// All payments are published at once; the registration of client i is published at the moment its payment was
/// published plus a lag drawn uniformly from [0, maxLag] with a seeded generator, so every mode and every run with the
/// same seed sees the same lags. Reported: registration publish → `payment.processed` received, payment publish →
/// `payment.processed` received, and retries per payment (`attempts − 1`), next to what the retry schedule alone
/// predicts for the same lags. Holding is off, so every payment of an unknown client takes the delayed-retry path
/// the prediction describes (the scale-out measure covers hold and wake).
struct LatencyBenchmark {
    /// The queues the benchmark adds under the prefix, for the cleanup.
    static let extraQueues = [TTLHopReference.delayQueueName, TTLHopReference.outputName]

    let configuration: AMQPConfiguration
    let topology: PaymentTopology
    let mode: DelayMode
    let payments: Int
    let maxLag: Duration
    let seed: UInt64
    let logger: Logger
    let policy = RetryPolicy()

    struct Result {
        let processed: Int
        let parked: Int
        let missing: Int
        let duplicates: Int
        /// Registration publish → processed outcome, ms.
        let afterRegistration: Summary?
        /// Payment publish → processed outcome, ms.
        let endToEnd: Summary?
        /// Retries per processed payment.
        let retries: Summary?
        /// What the schedule alone predicts for the same lags: wait after the registration, ms, and retries.
        let predictedWait: Summary?
        let predictedRetries: Summary?
        /// Measured minus predicted wait after the registration, per payment, ms.
        let excess: Summary?
        /// Realised lag (registration publish − payment publish), ms.
        let lag: Summary?
        /// The same two, with the schedule started at each payment's estimated first attempt instead of its publish.
        let predictedFromFirstSight: Summary?
        let excessFromFirstSight: Summary?
        /// From the first payment publish until the first attempt of every payment had started; nil when unknown.
        let firstPass: Duration?
        /// Payments that took more retries than the schedule from their estimated first attempt predicts: their
        /// registration was published just before a retry came back, but not handled yet when it did.
        let extraRetries: Int
        /// How late each processed payment came back, by retries: its outcome minus (estimated first attempt + T_n)
        /// for its n retries, in ms. The broker's and the service's time for n hops plus the final processing.
        let lateness: [(retries: Int, summary: Summary)]
        let publishDuration: Duration
        /// One CSV line per payment, header first, instants in ms since the first publish.
        let rows: [String]
        /// TTL mode: the lateness of one TTL hop through the broker alone (``TTLHopReference``), ms.
        var hopReference: Summary?
        /// The service's counters once it stopped.
        var service: PaymentMetrics.Snapshot?
    }

    func run() async throws -> Result {
        let service = PaymentConsumerService(
            configuration: PaymentConsumerConfiguration(
                connection: configuration, policy: policy, delayMode: mode, topology: topology, hold: .off,
                summaryInterval: .zero),
            logger: logger)
        let consumer = RunningConsumer.start(service, logger: logger)
        let abort: @Sendable () -> String? = { consumer.failure }
        var observer: OutcomeObserver?
        var publisher: BenchPublisher?
        do {
            observer = try await OutcomeObserver.start(
                configuration: configuration, topology: topology, logger: logger, abort: abort)
            publisher = try await BenchPublisher.connect(
                configuration: configuration, topology: topology, logger: logger)
            guard let observer, let publisher else { throw BenchmarkError("unreachable") }
            try await observer.waitForConsumers(of: topology, abort: abort)
            var result = try await measure(
                publisher: publisher, observer: observer, service: service, abort: abort)
            await publisher.close()
            await observer.stop()
            try await consumer.stop()
            result.service = service.metrics.snapshot
            if mode == .ttl {
                result.hopReference = try await TTLHopReference(
                    configuration: configuration, topology: topology, messages: payments,
                    delay: policy.delay(forRetry: 1), logger: logger
                ).run()
            }
            return result
        } catch {
            await publisher?.close()
            await observer?.stop()
            try? await consumer.stop()
            throw error
        }
    }

    private func measure(
        publisher: BenchPublisher, observer: OutcomeObserver, service: PaymentConsumerService,
        abort: @escaping @Sendable () -> String?
    ) async throws -> Result {
        let race = try RaceInput(payments: payments, maxLag: maxLag, seed: seed)
        let (lags, paymentBodies, registrationBodies) = (race.lags, race.paymentBodies, race.registrationBodies)

        // The service's counters, sampled to time its first pass over the burst of payments.
        let sampler = Task { [payments] in
            await FirstPass.sample(service.metrics, payments: payments)
        }

        // Every payment first, as fast as the confirm window allows.
        var paymentPublished: [ContinuousClock.Instant] = []
        paymentPublished.reserveCapacity(payments)
        var paymentConfirms: [AMQPPublishConfirmation] = []
        paymentConfirms.reserveCapacity(payments)
        let start = clock.now
        for index in 0..<payments {
            paymentPublished.append(clock.now)
            paymentConfirms.append(try await publisher.startPayment(paymentBodies[index], id: "p-\(index)"))
        }
        let publishDuration = clock.now - start
        let pendingPayments = paymentConfirms
        let confirmed = Task {
            for confirmation in pendingPayments { try await confirmation.wait() }
        }

        // Then each registration at its payment's publish instant plus its lag.
        let schedule = (0..<payments).sorted { paymentPublished[$0] + lags[$0] < paymentPublished[$1] + lags[$1] }
        var registered = [ContinuousClock.Instant](repeating: start, count: payments)
        var registrationConfirms: [AMQPPublishConfirmation] = []
        registrationConfirms.reserveCapacity(payments)
        for index in schedule {
            let due = paymentPublished[index] + lags[index]
            if due > clock.now { try await clock.sleep(until: due, tolerance: .zero) }
            if let failure = abort() { throw BenchmarkError(failure) }
            registered[index] = clock.now
            registrationConfirms.append(
                try await publisher.startRegistration(registrationBodies[index], id: "c-\(index)"))
        }
        try await confirmed.value
        for confirmation in registrationConfirms { try await confirmation.wait() }

        let complete = try await observer.waitForOutcomes(
            payments, stallTimeout: policy.maxDelay * 2 + .seconds(5), label: "latency \(mode.rawValue)",
            abort: abort)
        if !complete {
            print("  latency \(mode.rawValue): gave up waiting, \(observer.recorder.count)/\(payments) outcomes")
        }
        let entries = observer.recorder.entries
        sampler.cancel()
        let firstPass = await sampler.value

        var afterRegistration: [Double] = []
        var endToEnd: [Double] = []
        var retries: [Double] = []
        var predictedWait: [Double] = []
        var predictedRetries: [Double] = []
        var excess: [Double] = []
        var realisedLags: [Double] = []
        var predictedFromFirstSight: [Double] = []
        var excessFromFirstSight: [Double] = []
        var lateness: [Int: [Double]] = [:]
        var extraRetries = 0
        var rows = [
            "payment,payment_published_ms,first_attempt_ms,registration_published_ms,outcome_ms,outcome,attempts"
        ]
        func offset(_ instant: ContinuousClock.Instant?) -> String {
            instant.map { fixed(($0 - start).milliseconds, 3) } ?? ""
        }
        var processed = 0
        var parked = 0
        for index in 0..<payments {
            let lag = registered[index] - paymentPublished[index]
            realisedLags.append(lag.milliseconds)
            let prediction = SchedulePrediction(lag: lag, policy: policy)
            if let wait = prediction.waitAfterRegistration, let count = prediction.retries {
                predictedWait.append(wait)
                predictedRetries.append(Double(count))
            }
            let firstSeen = firstPass.estimatedFirstSight(ofPaymentAt: index)
            let firstSightPrediction = firstSeen.map {
                SchedulePrediction(lag: registered[index] - $0, policy: policy)
            }
            let fromFirstSight = firstSightPrediction?.waitAfterRegistration
            if let fromFirstSight { predictedFromFirstSight.append(fromFirstSight) }
            let entry = entries["p-\(index)"]
            rows.append(
                "p-\(index),\(offset(paymentPublished[index])),\(offset(firstSeen)),\(offset(registered[index])),"
                    + "\(offset(entry?.receivedAt)),\(entry?.outcome.outcome.rawValue ?? ""),"
                    + "\(entry.map { "\($0.outcome.attempts)" } ?? "")")
            guard let entry else { continue }
            switch entry.outcome.outcome {
            case .parked:
                parked += 1
            case .processed:
                processed += 1
                let wait = (entry.receivedAt - registered[index]).milliseconds
                afterRegistration.append(wait)
                endToEnd.append((entry.receivedAt - paymentPublished[index]).milliseconds)
                retries.append(Double(entry.outcome.attempts - 1))
                if let predicted = prediction.waitAfterRegistration { excess.append(wait - predicted) }
                if let predicted = firstSightPrediction?.retries, entry.outcome.attempts - 1 > predicted {
                    extraRetries += 1
                }
                if let fromFirstSight {
                    excessFromFirstSight.append(wait - fromFirstSight)
                }
                if let firstSeen {
                    let retried = entry.outcome.attempts - 1
                    let due = firstSeen + (0..<retried).reduce(Duration.zero) { $0 + policy.delay(forRetry: $1 + 1) }
                    lateness[retried, default: []].append((entry.receivedAt - due).milliseconds)
                }
            }
        }
        return Result(
            processed: processed, parked: parked, missing: payments - entries.count,
            duplicates: observer.recorder.duplicates, afterRegistration: Summary(afterRegistration),
            endToEnd: Summary(endToEnd), retries: Summary(retries), predictedWait: Summary(predictedWait),
            predictedRetries: Summary(predictedRetries), excess: Summary(excess), lag: Summary(realisedLags),
            predictedFromFirstSight: Summary(predictedFromFirstSight),
            excessFromFirstSight: Summary(excessFromFirstSight),
            firstPass: firstPass.duration(since: start), extraRetries: extraRetries,
            lateness: lateness.sorted { $0.key < $1.key }.compactMap { retries, values in
                Summary(values).map { (retries, $0) }
            },
            publishDuration: publishDuration, rows: rows)
    }
}

/// When the first attempt of each payment of the burst started, read from the service's counters.
///
/// The service counts `received` as a handler starts, for payments and registrations alike, and `registered` right
/// after for each new client; until the first retry comes back (one retry step after the first attempt),
/// `received − registered` therefore counts the payments whose first attempt has started. The queue is FIFO and the
/// consumer starts its handlers in delivery order, so the k-th first attempt is payment k.
struct FirstPass: Sendable {
    /// (instant, first attempts started), at each change.
    let samples: [(at: ContinuousClock.Instant, handled: Int)]
    let payments: Int
    /// Whether every first attempt started before the first retry could come back, which makes the count exact.
    let isExact: Bool

    /// Samples until every first attempt has started, for at most 10 s, or until cancelled.
    static func sample(_ metrics: PaymentMetrics, payments: Int, step: Duration = .seconds(1)) async -> FirstPass {
        var samples: [(at: ContinuousClock.Instant, handled: Int)] = []
        var last = -1
        let began = clock.now
        while !Task.isCancelled, clock.now - began < .seconds(10) {
            let snapshot = metrics.snapshot
            let handled = snapshot.received - snapshot.registered - snapshot.unreadable
            if handled != last {
                samples.append((clock.now, handled))
                last = handled
            }
            if handled >= payments { break }
            try? await Task.sleep(for: .milliseconds(1))
        }
        let exact = samples.first { $0.handled >= payments }.map { $0.at - began < step } ?? false
        return FirstPass(samples: samples, payments: payments, isExact: exact)
    }

    /// How long after `start` every first attempt had started; nil when that was not observed exactly.
    func duration(since start: ContinuousClock.Instant) -> Duration? {
        guard isExact, let done = samples.first(where: { $0.handled >= payments }) else { return nil }
        return done.at - start
    }

    /// The estimated instant of payment `index`'s first attempt; nil when the count was not exact.
    func estimatedFirstSight(ofPaymentAt index: Int) -> ContinuousClock.Instant? {
        guard isExact else { return nil }
        return samples.first { $0.handled > index }?.at
    }
}

/// The broker's part of one TTL retry hop, without the service: a burst of persistent messages published with
/// confirms to a durable queue whose `x-message-ttl` dead-letters them into a durable queue, consumed at once.
/// Lateness = receive − (publish + TTL): what a hop costs before the service's handlers come in.
struct TTLHopReference {
    static let delayQueueName = "bench-hop-delay"
    static let outputName = "bench-hop-out"

    let configuration: AMQPConfiguration
    let topology: PaymentTopology
    let messages: Int
    let delay: Duration
    let logger: Logger

    func run() async throws -> Summary? {
        let delayQueue = topology.prefix + Self.delayQueueName
        let output = topology.prefix + Self.outputName
        var configuration = configuration
        configuration.connectionName = "payment-bench-hop"
        let connection = try await AMQPConnection.connect(configuration: configuration, logger: logger)
        do {
            let channel = try await connection.openChannel()
            _ = try await channel.declareQueue(output, durable: true)
            _ = try await channel.declareQueue(
                delayQueue, durable: true,
                arguments: [
                    "x-message-ttl": .int64(Int64(delay.milliseconds.rounded())),
                    "x-dead-letter-exchange": "",
                    "x-dead-letter-routing-key": .string(output),
                ])
            let consumer = try await channel.consume(queue: output, noAck: true)
            let received = Task { () -> [String: ContinuousClock.Instant] in
                var instants: [String: ContinuousClock.Instant] = [:]
                do {
                    for try await delivery in consumer {
                        instants[delivery.properties.messageID ?? ""] = clock.now
                        if instants.count == messages { break }
                    }
                } catch {}
                return instants
            }

            let publisher = try await connection.openChannel()
            try await publisher.enablePublisherConfirms(maxOutstanding: 1000)
            var published: [ContinuousClock.Instant] = []
            var confirms: [AMQPPublishConfirmation] = []
            for index in 0..<messages {
                published.append(clock.now)
                let properties = AMQPProperties(
                    contentType: "application/json", deliveryMode: .persistent, messageID: "\(index)")
                if let confirmation = try await publisher.startPublish(
                    Data(#"{"hop":\#(index)}"#.utf8), routingKey: delayQueue, properties: properties, mandatory: true)
                {
                    confirms.append(confirmation)
                }
            }
            for confirmation in confirms { try await confirmation.wait() }

            // Every message is back well within the TTL plus 10 s; past that, stop the consumer and count what came.
            let timeout = Task {
                try await Task.sleep(until: clock.now + delay + .seconds(10), clock: clock)
                try await consumer.cancel()
            }
            let instants = await received.value
            timeout.cancel()
            try await connection.close()
            let lateness = published.indices.compactMap { index in
                instants["\(index)"].map { ($0 - published[index] - delay).milliseconds }
            }
            return Summary(lateness)
        } catch {
            try? await connection.close()
            throw error
        }
    }
}

import Foundation
import Logging
import PaymentService
import RabbitMQ
import Synchronization

/// Measure 3: several instances of the service on one prefix, with holding on or off.
///
/// `instances` `PaymentConsumerService`s run in this process, each with its own connections, registry and ledger:
/// they compete for the three queues exactly as separate processes would, and learn registrations and outcomes
/// through the shared streams. Payments of distinct clients are published at a steady rate, and each client's
/// registration a lag after its payment, drawn uniformly from [0, maxLag] with a seeded generator. Reported:
/// registration publish → `payment.processed` received, retries per payment (`attempts − 1`), and whether every
/// payment got exactly one outcome and none was parked.
///
/// To tell where the time goes, the benchmark also follows the clients stream on a connection of its own: the
/// instant it reads a registration there splits the wait into "registration path" (queue, handler, stream append
/// with confirm, stream delivery) and "wake and outcome" (the held handler resumes, publishes the outcome with a
/// confirm, the outcome reaches the observer).
struct ScaleOutBenchmark {
    let configuration: AMQPConfiguration
    let topology: PaymentTopology
    let instances: Int
    let hold: HoldPolicy
    let payments: Int
    let paymentsPerSecond: Double
    let maxLag: Duration
    let seed: UInt64
    let logger: Logger
    let policy = RetryPolicy()

    struct Result {
        let processed: Int
        let parked: Int
        let missing: Int
        let duplicates: Int
        let unreadable: Int
        /// Registration publish → processed outcome received, ms.
        let afterRegistration: Summary?
        /// Retries per processed payment (`attempts − 1`).
        let retries: Summary?
        /// Payment publish → processed outcome received, ms.
        let endToEnd: Summary?
        /// Realised lag (registration publish − payment publish), ms.
        let lag: Summary?
        /// Registration publish → read from the clients stream by the benchmark's own follower, ms.
        let registrationToStream: Summary?
        /// Read from the clients stream → processed outcome received, ms (negative: the outcome came first).
        let streamToProcessed: Summary?
        /// The same two for the payments processed without a retry only.
        let registrationToStreamNoRetry: Summary?
        let streamToProcessedNoRetry: Summary?
        /// Registrations the benchmark's follower never read.
        let unseenRegistrations: Int
        /// How late the benchmark published against its schedule, ms: a stalled publisher shows here.
        let publishLateness: Summary?
        /// The benchmark's own publish → confirm, ms, for payments and registrations (persistent, durable classic
        /// queues): the broker's latency alone, with no service in the path.
        let paymentConfirm: Summary?
        let registrationConfirm: Summary?
        /// The longest pause between two iterations of a 1 ms sampling loop in this process, and when it ended (ms
        /// after the first publish): a process that gets no CPU (or a starved task pool) shows here.
        let longestSamplerGap: Duration
        let longestSamplerGapAt: Duration
        /// How long the broker blocked the benchmark's publishing connection (`connection.blocked`: a memory or
        /// disk alarm, which blocks the service's publishers too), sampled every ms.
        let brokerBlocked: Duration
        /// Registrations slower than 50 ms from publish to processed: how many, and the first and last of their
        /// publish instants (ms after the first publish).
        let slow: (count: Int, first: Double, last: Double)?
        /// The most payments each instance held at once, and the most all held together (sampled every ms).
        let peakHeld: [Int]
        let peakHeldTotal: Int
        /// Each instance's counters once it stopped.
        var services: [PaymentMetrics.Snapshot] = []
        /// Ready messages left in the work, delay and parking queues once every outcome was in.
        let leftover: [(queue: String, messages: UInt32)]
        /// From the first publish to the last one.
        let publishDuration: Duration
        /// From the first publish to the last outcome.
        let runDuration: Duration
        /// Payments processed, by retries.
        let byRetries: [(retries: Int, count: Int)]
        /// One CSV line per payment, header first, instants in ms since the first publish.
        let rows: [String]

        /// What is wrong with the outcomes, if anything: every payment needs exactly one, processed.
        var problems: [String] {
            var problems: [String] = []
            if missing > 0 { problems.append("\(missing) payments without an outcome") }
            if duplicates > 0 { problems.append("\(duplicates) duplicate outcomes") }
            if parked > 0 { problems.append("\(parked) payments parked") }
            if unreadable > 0 { problems.append("\(unreadable) unreadable outcome messages") }
            let parkingLot = leftover.filter { $0.queue.hasSuffix("payment-parking-lot") }.map(\.messages).reduce(0, +)
            if parkingLot > 0 { problems.append("\(parkingLot) messages in the parking lot") }
            return problems
        }
    }

    func run() async throws -> Result {
        let services = (0..<instances).map { _ in
            PaymentConsumerService(
                configuration: PaymentConsumerConfiguration(
                    connection: configuration, policy: policy, delayMode: .ttl, topology: topology, hold: hold,
                    summaryInterval: .zero),
                logger: logger)
        }
        let running = services.map { RunningConsumer.start($0, logger: logger) }
        let abort: @Sendable () -> String? = {
            for (index, consumer) in running.enumerated() {
                if let failure = consumer.failure { return "instance \(index + 1): \(failure)" }
            }
            return nil
        }
        var observer: OutcomeObserver?
        var publisher: BenchPublisher?
        var follower: StreamFollower?
        do {
            observer = try await OutcomeObserver.start(
                configuration: configuration, topology: topology, logger: logger, abort: abort)
            publisher = try await BenchPublisher.connect(
                configuration: configuration, topology: topology, logger: logger)
            guard let observer, let publisher else { throw BenchmarkError("unreachable") }
            try await observer.waitForConsumers(of: topology, instances: instances, abort: abort)
            // Every instance has declared the streams by now: they consume only once they replayed them.
            follower = try await StreamFollower.start(
                configuration: configuration, stream: topology.clientsLog, logger: logger)
            guard let follower else { throw BenchmarkError("unreachable") }
            var result = try await measure(
                publisher: publisher, observer: observer, follower: follower, services: services, abort: abort)
            await follower.stop()
            await publisher.close()
            await observer.stop()
            try await stopAll(running)
            result.services = services.map(\.metrics.snapshot)
            return result
        } catch {
            await follower?.stop()
            await publisher?.close()
            await observer?.stop()
            try? await stopAll(running)
            throw error
        }
    }

    /// When the broker confirmed one of the benchmark's publishes.
    private typealias Confirmed = (index: Int, isPayment: Bool, at: ContinuousClock.Instant)

    /// What the 1 ms sampling loop saw: the most payments held per instance and in all, its longest pause, and how
    /// long the broker blocked publishing.
    private struct SamplerResult: Sendable {
        let perInstance: [Int]
        let total: Int
        let gap: Duration
        let gapEnded: ContinuousClock.Instant
        let blocked: Duration
    }

    private func stopAll(_ running: [RunningConsumer]) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for consumer in running { group.addTask { try await consumer.stop() } }
            try await group.waitForAll()
        }
    }

    private func measure(
        publisher: BenchPublisher, observer: OutcomeObserver, follower: StreamFollower,
        services: [PaymentConsumerService], abort: @escaping @Sendable () -> String?
    ) async throws -> Result {
        let race = try RaceInput(payments: payments, maxLag: maxLag, seed: seed)
        let (lags, paymentBodies, registrationBodies) = (race.lags, race.paymentBodies, race.registrationBodies)

        // Payment i is due at i / rate; its registration at that plus its lag. On a tie the payment goes first.
        let start = clock.now + .milliseconds(20)
        let interval = 1 / paymentsPerSecond
        var schedule: [(due: ContinuousClock.Instant, isPayment: Bool, index: Int)] = []
        schedule.reserveCapacity(2 * payments)
        for index in 0..<payments {
            let paid = start + .nanoseconds(Int64((Double(index) * interval * 1e9).rounded()))
            schedule.append((paid, true, index))
            schedule.append((paid + lags[index], false, index))
        }
        schedule.sort { $0.due < $1.due || ($0.due == $1.due && $0.isPayment && !$1.isPayment) }

        let publishing = publisher.connection
        let sampler = Task { () -> SamplerResult in
            var peaks = [Int](repeating: 0, count: services.count)
            var total = 0
            var previous = clock.now
            var gap = Duration.zero
            var gapEnded = previous
            var blocked = Duration.zero
            while !Task.isCancelled {
                let now = clock.now
                if now - previous > gap {
                    gap = now - previous
                    gapEnded = now
                }
                if publishing.blockedReason != nil { blocked += now - previous }
                previous = now
                var sum = 0
                for (index, service) in services.enumerated() {
                    let held = service.registry.waitingCount
                    peaks[index] = max(peaks[index], held)
                    sum += held
                }
                total = max(total, sum)
                try? await Task.sleep(for: .milliseconds(1))
            }
            return SamplerResult(perInstance: peaks, total: total, gap: gap, gapEnded: gapEnded, blocked: blocked)
        }
        defer { sampler.cancel() }

        // Each confirm of the benchmark's own publishes, timed as it comes, by a task of its own.
        let (pending, pendingSink) = AsyncStream.makeStream(
            of: (index: Int, isPayment: Bool, confirmation: AMQPPublishConfirmation).self)
        let confirmTimer = Task { () -> Swift.Result<[Confirmed], any Error> in
            do {
                return .success(
                    try await withThrowingTaskGroup(of: Confirmed.self) { group in
                        for await item in pending {
                            group.addTask {
                                try await item.confirmation.wait()
                                return (item.index, item.isPayment, clock.now)
                            }
                        }
                        var confirmed: [Confirmed] = []
                        for try await item in group { confirmed.append(item) }
                        return confirmed
                    })
            } catch {
                return .failure(error)
            }
        }
        defer { pendingSink.finish() }

        var paymentPublished = [ContinuousClock.Instant](repeating: start, count: payments)
        var registered = [ContinuousClock.Instant](repeating: start, count: payments)
        var lateness: [Double] = []
        lateness.reserveCapacity(2 * payments)
        var firstPublish: ContinuousClock.Instant?
        for event in schedule {
            if event.due > clock.now { try await clock.sleep(until: event.due, tolerance: .zero) }
            if let failure = abort() { throw BenchmarkError(failure) }
            let now = clock.now
            if firstPublish == nil { firstPublish = now }
            let confirmation: AMQPPublishConfirmation
            if event.isPayment {
                paymentPublished[event.index] = now
                confirmation = try await publisher.startPayment(paymentBodies[event.index], id: "p-\(event.index)")
            } else {
                registered[event.index] = now
                confirmation = try await publisher.startRegistration(
                    registrationBodies[event.index], id: "c-\(event.index)")
            }
            lateness.append((now - event.due).milliseconds)
            pendingSink.yield((event.index, event.isPayment, confirmation))
        }
        let published = clock.now
        pendingSink.finish()
        let confirmedAt: [Confirmed]
        switch await confirmTimer.value {
        case .success(let value): confirmedAt = value
        case .failure(let error): throw error
        }
        var paymentConfirm: [Double] = []
        var registrationConfirm: [Double] = []
        var registrationConfirmed = [ContinuousClock.Instant?](repeating: nil, count: payments)
        for item in confirmedAt {
            if item.isPayment {
                paymentConfirm.append((item.at - paymentPublished[item.index]).milliseconds)
            } else {
                registrationConfirm.append((item.at - registered[item.index]).milliseconds)
                registrationConfirmed[item.index] = item.at
            }
        }

        let label = "scaleout instances=\(instances) hold=\(hold == .off ? "off" : "on")"
        let complete = try await observer.waitForOutcomes(
            payments, stallTimeout: policy.maxDelay * 2 + .seconds(5), label: label, abort: abort)
        let lastOutcome = observer.recorder.entries.values.map(\.receivedAt).max() ?? clock.now
        if !complete {
            print("  \(label): gave up waiting, \(observer.recorder.count)/\(payments) outcomes")
        }
        // A second outcome of a payment (a copy handled by two instances) would come within moments.
        try await Task.sleep(for: .seconds(2))
        sampler.cancel()
        let sampled = await sampler.value

        var leftover: [(queue: String, messages: UInt32)] = []
        let channel = try await publisher.connection.openChannel()
        for queue in [topology.paymentsQueue, topology.retriesQueue, topology.parkingLot]
            + policy.delayLevels.map({ topology.delayQueue(for: $0) })
        {
            leftover.append((queue, try await channel.declareQueue(queue, passive: true).messageCount))
        }
        try await channel.close()

        let entries = observer.recorder.entries
        let sightings = follower.sightings
        let origin = firstPublish ?? start
        func offset(_ instant: ContinuousClock.Instant?) -> String {
            instant.map { fixed(($0 - origin).milliseconds, 3) } ?? ""
        }
        var afterRegistration: [Double] = []
        var retries: [Double] = []
        var endToEnd: [Double] = []
        var realisedLags: [Double] = []
        var toStream: [Double] = []
        var streamToProcessed: [Double] = []
        var toStreamNoRetry: [Double] = []
        var streamToProcessedNoRetry: [Double] = []
        var byRetries: [Int: Int] = [:]
        var processed = 0
        var parked = 0
        var unseen = 0
        var slowPublishes: [Double] = []
        var rows = [
            "payment,payment_published_ms,registration_published_ms,registration_confirmed_ms,"
                + "registration_in_stream_ms,outcome_ms,outcome,attempts"
        ]
        for index in 0..<payments {
            realisedLags.append((registered[index] - paymentPublished[index]).milliseconds)
            let seen = sightings["c-\(index)"]
            if let seen { toStream.append((seen - registered[index]).milliseconds) } else { unseen += 1 }
            let entry = entries["p-\(index)"]
            rows.append(
                "p-\(index),\(offset(paymentPublished[index])),\(offset(registered[index])),"
                    + "\(offset(registrationConfirmed[index])),\(offset(seen)),\(offset(entry?.receivedAt)),"
                    + "\(entry?.outcome.outcome.rawValue ?? ""),"
                    + "\(entry.map { "\($0.outcome.attempts)" } ?? "")")
            guard let entry else { continue }
            switch entry.outcome.outcome {
            case .parked:
                parked += 1
            case .processed:
                processed += 1
                let retried = entry.outcome.attempts - 1
                let wait = (entry.receivedAt - registered[index]).milliseconds
                afterRegistration.append(wait)
                if wait > 50 { slowPublishes.append((registered[index] - origin).milliseconds) }
                endToEnd.append((entry.receivedAt - paymentPublished[index]).milliseconds)
                retries.append(Double(retried))
                byRetries[retried, default: 0] += 1
                if let seen {
                    streamToProcessed.append((entry.receivedAt - seen).milliseconds)
                    if retried == 0 {
                        toStreamNoRetry.append((seen - registered[index]).milliseconds)
                        streamToProcessedNoRetry.append((entry.receivedAt - seen).milliseconds)
                    }
                }
            }
        }
        return Result(
            processed: processed, parked: parked, missing: payments - entries.count,
            duplicates: observer.recorder.duplicates, unreadable: observer.recorder.unreadable,
            afterRegistration: Summary(afterRegistration), retries: Summary(retries), endToEnd: Summary(endToEnd),
            lag: Summary(realisedLags), registrationToStream: Summary(toStream),
            streamToProcessed: Summary(streamToProcessed), registrationToStreamNoRetry: Summary(toStreamNoRetry),
            streamToProcessedNoRetry: Summary(streamToProcessedNoRetry), unseenRegistrations: unseen,
            publishLateness: Summary(lateness), paymentConfirm: Summary(paymentConfirm),
            registrationConfirm: Summary(registrationConfirm), longestSamplerGap: sampled.gap,
            longestSamplerGapAt: sampled.gapEnded - origin, brokerBlocked: sampled.blocked,
            slow: slowPublishes.isEmpty
                ? nil : (slowPublishes.count, slowPublishes.min() ?? 0, slowPublishes.max() ?? 0),
            peakHeld: sampled.perInstance, peakHeldTotal: sampled.total, leftover: leftover,
            publishDuration: published - origin, runDuration: lastOutcome - origin,
            byRetries: byRetries.sorted { $0.key < $1.key }.map { (retries: $0.key, count: $0.value) }, rows: rows)
    }
}

/// Follows a stream of registrations from its first entry on a connection of its own, and notes when each client
/// was first read: what every instance's follower sees, give or take its own scheduling.
struct StreamFollower: Sendable {
    private final class Sightings: Sendable {
        private let seen = Mutex<[String: ContinuousClock.Instant]>([:])

        func note(_ client: String, at instant: ContinuousClock.Instant) {
            seen.withLock { seen in
                if seen[client] == nil { seen[client] = instant }
            }
        }

        var all: [String: ContinuousClock.Instant] { seen.withLock { $0 } }
    }

    let connection: AMQPConnection
    private let seen: Sightings
    private let task: Task<Void, Never>

    static func start(configuration: AMQPConfiguration, stream: String, logger: Logger) async throws
        -> StreamFollower
    {
        var configuration = configuration
        configuration.connectionName = "payment-bench-stream-follower"
        let connection = try await AMQPConnection.connect(configuration: configuration, logger: logger)
        do {
            let channel = try await connection.openChannel()
            // As the service's followers: a prefetch and manual acks, which only grant the stream credit.
            try await channel.setPrefetch(1000)
            let consumer = try await channel.consume(queue: stream, arguments: ["x-stream-offset": "first"])
            let seen = Sightings()
            let task = Task {
                let decoder = JSONDecoder()
                do {
                    for try await delivery in consumer {
                        let now = clock.now
                        // Sync markers have an empty body and no client: skipped.
                        if let registration = try? decoder.decode(ClientRegistration.self, from: delivery.body) {
                            seen.note(registration.clientId, at: now)
                        }
                        try await delivery.ack()
                    }
                } catch {}
            }
            return StreamFollower(connection: connection, seen: seen, task: task)
        } catch {
            try? await connection.close()
            throw error
        }
    }

    /// When each client was first read from the stream.
    var sightings: [String: ContinuousClock.Instant] { seen.all }

    func stop() async {
        try? await connection.close()
        await task.value
    }
}

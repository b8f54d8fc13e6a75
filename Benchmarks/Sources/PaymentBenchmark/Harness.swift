import Foundation
import Logging
import PaymentService
import RabbitMQ
import ServiceLifecycle
import Synchronization

/// The one clock every timestamp of the benchmark is read from.
let clock = ContinuousClock()

/// An error of the benchmark itself.
struct BenchmarkError: Error, CustomStringConvertible {
    let description: String

    init(_ description: String) {
        self.description = description
    }
}

// MARK: - The consumer under test

/// A `PaymentConsumerService` running in this process, in a `ServiceGroup` of its own.
struct RunningConsumer: Sendable {
    /// How the service's run ended, once it has.
    private final class Ending: Sendable {
        private let state = Mutex<(ended: Bool, error: String?)>((false, nil))

        func finish(_ error: (any Error)?) {
            state.withLock { $0 = (true, error.map { "\($0)" }) }
        }

        var ended: (ended: Bool, error: String?) {
            state.withLock { $0 }
        }
    }

    let service: PaymentConsumerService
    private let group: ServiceGroup
    private let task: Task<Void, Never>
    private let ending: Ending

    /// Starts the service; it connects and declares its topology in the background.
    static func start(_ service: PaymentConsumerService, logger: Logger) -> RunningConsumer {
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [.init(service: service, successTerminationBehavior: .gracefullyShutdownGroup)],
                logger: logger))
        let ending = Ending()
        let task = Task {
            do {
                try await group.run()
                ending.finish(nil)
            } catch {
                ending.finish(error)
            }
        }
        return RunningConsumer(service: service, group: group, task: task, ending: ending)
    }

    /// Why the service stopped on its own, if it did; nil while it runs.
    var failure: String? {
        let (ended, error) = ending.ended
        guard ended else { return nil }
        return "the payment consumer stopped: \(error ?? "it returned without a shutdown")"
    }

    /// Shuts the service down gracefully and waits until it has closed its connections.
    func stop() async throws {
        await group.triggerGracefulShutdown()
        await task.value
        if let error = ending.ended.error {
            throw BenchmarkError("the payment consumer failed: \(error)")
        }
    }
}

// MARK: - Outcomes

/// Every `payment-events` message received, by payment, with the instant it arrived.
final class OutcomeRecorder: Sendable {
    struct Entry: Sendable {
        let outcome: PaymentOutcome
        let receivedAt: ContinuousClock.Instant
    }

    private struct State {
        var entries: [String: Entry] = [:]
        var duplicates = 0
        var unreadable = 0
        var failure: String?
    }

    private let state = Mutex(State())

    func record(_ outcome: PaymentOutcome, at instant: ContinuousClock.Instant) {
        state.withLock { state in
            if state.entries[outcome.paymentId] == nil {
                state.entries[outcome.paymentId] = Entry(outcome: outcome, receivedAt: instant)
            } else {
                state.duplicates += 1
            }
        }
    }

    func recordUnreadable() {
        state.withLock { $0.unreadable += 1 }
    }

    func fail(_ error: any Error) {
        state.withLock { $0.failure = "\(error)" }
    }

    /// Forgets every outcome, between two measures on the same queue.
    func reset() {
        state.withLock { $0 = State() }
    }

    var count: Int { state.withLock { $0.entries.count } }
    var entries: [String: Entry] { state.withLock { $0.entries } }
    var duplicates: Int { state.withLock { $0.duplicates } }
    var unreadable: Int { state.withLock { $0.unreadable } }
    var failure: String? { state.withLock { $0.failure } }
}

/// An exclusive queue bound to `<prefix>payment-events` with `payment.#`, consumed into an ``OutcomeRecorder``.
struct OutcomeObserver: Sendable {
    /// The observer's queue, after the prefix.
    static let queueName = "bench-outcomes"

    let connection: AMQPConnection
    let recorder: OutcomeRecorder
    private let task: Task<Void, Never>

    /// Connects, waits until the events exchange exists (the consumer declares it as it starts), binds a queue of its
    /// own and starts consuming it.
    static func start(
        configuration: AMQPConfiguration, topology: PaymentTopology, logger: Logger,
        abort: @Sendable () -> String?
    ) async throws -> OutcomeObserver {
        var configuration = configuration
        configuration.connectionName = "payment-bench-observer"
        let connection = try await AMQPConnection.connect(configuration: configuration, logger: logger)
        do {
            let channel = try await waitForExchange(topology.eventsExchange, on: connection, abort: abort)
            let queue = topology.prefix + queueName
            _ = try await channel.declareQueue(queue, exclusive: true)
            try await channel.bindQueue(queue, to: topology.eventsExchange, routingKey: "payment.#")
            let consumer = try await channel.consume(queue: queue, noAck: true)
            let recorder = OutcomeRecorder()
            let task = Task {
                let decoder = JSONDecoder()
                do {
                    for try await delivery in consumer {
                        let receivedAt = clock.now
                        if let outcome = try? decoder.decode(PaymentOutcome.self, from: delivery.body) {
                            recorder.record(outcome, at: receivedAt)
                        } else {
                            recorder.recordUnreadable()
                        }
                    }
                } catch {
                    recorder.fail(error)
                }
            }
            return OutcomeObserver(connection: connection, recorder: recorder, task: task)
        } catch {
            try? await connection.close()
            throw error
        }
    }

    /// Waits until `instances` consumers consume each of the three queues (one per running instance), so that
    /// nothing published afterwards waits for one to start. An instance consumes only once it has replayed the shared
    /// streams, so it then knows every client registered before.
    func waitForConsumers(
        of topology: PaymentTopology, instances: Int = 1, abort: @Sendable () -> String?
    ) async throws {
        let deadline = clock.now + .seconds(30)
        let channel = try await connection.openChannel()
        do {
            for queue in [topology.clientsQueue, topology.paymentsQueue, topology.retriesQueue] {
                while try await channel.declareQueue(queue, passive: true).consumerCount < instances {
                    if let failure = abort() { throw BenchmarkError(failure) }
                    guard clock.now < deadline else {
                        throw BenchmarkError("fewer than \(instances) consumers on \(queue) after 30 s")
                    }
                    try await Task.sleep(for: .milliseconds(5))
                }
            }
        } catch {
            try? await channel.close()
            throw error
        }
        try await channel.close()
    }

    /// Closes the connection, which deletes the exclusive queue.
    func stop() async {
        try? await connection.close()
        await task.value
    }

    /// Waits until `count` payments have an outcome. Returns false when no new outcome arrived for `stallTimeout`.
    func waitForOutcomes(
        _ count: Int, stallTimeout: Duration, label: String, abort: @Sendable () -> String?
    ) async throws -> Bool {
        var seen = -1
        var lastProgress = clock.now
        var lastReport = clock.now
        while true {
            let now = clock.now
            let received = recorder.count
            if received >= count { return true }
            if let failure = abort() { throw BenchmarkError(failure) }
            if let failure = recorder.failure { throw BenchmarkError("the outcome consumer failed: \(failure)") }
            if received != seen {
                seen = received
                lastProgress = now
            } else if now - lastProgress > stallTimeout {
                return false
            }
            if now - lastReport >= .seconds(2) {
                print("  \(label): \(received)/\(count) outcomes")
                lastReport = now
            }
            try await Task.sleep(for: .milliseconds(2))
        }
    }
}

/// Opens channels until a passive declaration of `exchange` succeeds (a failed one closes its channel), and returns
/// the channel that saw it.
func waitForExchange(
    _ exchange: String, on connection: AMQPConnection, timeout: Duration = .seconds(30),
    abort: @Sendable () -> String?
) async throws -> AMQPChannel {
    let deadline = clock.now + timeout
    while true {
        let channel = try await connection.openChannel()
        do {
            try await channel.declareExchange(exchange, type: .topic, passive: true)
            return channel
        } catch let error as AMQPError where error.replyCode == 404 {
            if let failure = abort() { throw BenchmarkError(failure) }
            guard clock.now < deadline else {
                throw BenchmarkError("exchange \(exchange) did not appear within \(timeout)")
            }
            try await Task.sleep(for: .milliseconds(10))
        }
    }
}

// MARK: - Publishing

/// The benchmark's own publisher: one connection, a channel in confirm mode for payments and another for
/// registrations, so that a burst of payments awaiting confirms never delays a registration due now.
struct BenchPublisher: Sendable {
    let connection: AMQPConnection
    let payments: AMQPChannel
    let registrations: AMQPChannel
    let topology: PaymentTopology

    static func connect(configuration: AMQPConfiguration, topology: PaymentTopology, logger: Logger) async throws
        -> BenchPublisher
    {
        var configuration = configuration
        configuration.connectionName = "payment-bench-publisher"
        let connection = try await AMQPConnection.connect(configuration: configuration, logger: logger)
        do {
            let payments = try await connection.openChannel()
            try await payments.enablePublisherConfirms(maxOutstanding: 1000)
            let registrations = try await connection.openChannel()
            try await registrations.enablePublisherConfirms(maxOutstanding: 1000)
            return BenchPublisher(
                connection: connection, payments: payments, registrations: registrations, topology: topology)
        } catch {
            try? await connection.close()
            throw error
        }
    }

    /// Publishes an encoded payment to `payment-processor` and returns its pending confirm.
    func startPayment(_ body: Data, id: String) async throws -> AMQPPublishConfirmation {
        try await start(body, id: id, to: topology.paymentsQueue, on: payments)
    }

    /// Publishes an encoded registration to `clients-processor` and returns its pending confirm.
    func startRegistration(_ body: Data, id: String) async throws -> AMQPPublishConfirmation {
        try await start(body, id: id, to: topology.clientsQueue, on: registrations)
    }

    /// Publishes like `producer` does: persistent JSON, mandatory, through the default exchange.
    private func start(_ body: Data, id: String, to queue: String, on channel: AMQPChannel) async throws
        -> AMQPPublishConfirmation
    {
        let properties = AMQPProperties(
            contentType: "application/json", deliveryMode: .persistent, messageID: id, appID: "payment-bench")
        guard
            let confirmation = try await channel.startPublish(
                body, routingKey: queue, properties: properties, mandatory: true)
        else {
            throw BenchmarkError("channel \(channel.id) is not in confirm mode")
        }
        return confirmation
    }

    func close() async {
        try? await connection.close()
    }
}

/// A payment body, as the contract describes it.
/// The inputs of a race between payments and their registrations: payment i belongs to client i, whose
/// registration follows it after `lags[i]`, drawn uniformly from 0 to the maximum lag with a seeded generator so
/// that runs (and delay modes, and instance counts) see the same lags.
struct RaceInput {
    let lags: [Duration]
    let paymentBodies: [Data]
    let registrationBodies: [Data]

    init(payments: Int, maxLag: Duration, seed: UInt64) throws {
        var generator = SplitMix64(seed: seed)
        let lagSeconds = maxLag.seconds
        lags = (0..<payments).map { _ in
            Duration.nanoseconds(Int64((Double.random(in: 0...lagSeconds, using: &generator) * 1e9).rounded()))
        }
        let encoder = JSONEncoder()
        paymentBodies = try (0..<payments).map { try paymentBody(id: "p-\($0)", client: "c-\($0)", encoder: encoder) }
        registrationBodies = try (0..<payments).map { try registrationBody(client: "c-\($0)", encoder: encoder) }
    }
}

func paymentBody(id: String, client: String, encoder: JSONEncoder) throws -> Data {
    try encoder.encode(PaymentRequest(paymentId: id, clientId: client, amount: "10.50", currency: "EUR"))
}

/// A registration body.
func registrationBody(client: String, encoder: JSONEncoder) throws -> Data {
    try encoder.encode(ClientRegistration(clientId: client, name: "Benchmark client \(client)"))
}

// MARK: - The broker

/// Whether the broker knows the `x-delayed-message` exchange type. Probed on a connection of its own, because a
/// broker without the plugin closes the whole connection.
func brokerHasDelayedMessagePlugin(configuration: AMQPConfiguration, name: String, logger: Logger) async throws
    -> Bool
{
    var configuration = configuration
    configuration.connectionName = "payment-bench-probe"
    let connection = try await AMQPConnection.connect(configuration: configuration, logger: logger)
    do {
        let channel = try await connection.openChannel()
        try await channel.declareExchange(
            name, type: .delayedMessage, autoDelete: true, arguments: ["x-delayed-type": "direct"])
        try await channel.deleteExchange(name)
        try await connection.close()
        return true
    } catch let error as AMQPError where error.code == .delayedMessagePluginMissing {
        try? await connection.close()
        return false
    } catch {
        try? await connection.close()
        throw error
    }
}

/// Deletes every queue and exchange the consumer and the benchmark declared under `topology`'s prefix.
///
/// Returns the names it could not delete, with why.
func deleteTopology(
    _ topology: PaymentTopology, policy: RetryPolicy, extraQueues: [String] = [], configuration: AMQPConfiguration,
    logger: Logger
) async -> [String] {
    var configuration = configuration
    configuration.connectionName = "payment-bench-cleanup"
    let connection: AMQPConnection
    do {
        connection = try await AMQPConnection.connect(configuration: configuration, logger: logger)
    } catch {
        return ["every \(topology.prefix)* queue and exchange: \(error)"]
    }
    var problems: [String] = []
    var channel: AMQPChannel?
    func attempt(_ name: String, _ operation: (AMQPChannel) async throws -> Void) async {
        do {
            if channel == nil || channel?.isOpen != true { channel = try await connection.openChannel() }
            if let channel { try await operation(channel) }
        } catch {
            problems.append("\(name): \(error)")
        }
    }
    let queues =
        [topology.clientsQueue, topology.paymentsQueue, topology.retriesQueue, topology.parkingLot]
        + policy.delayLevels.map { topology.delayQueue(for: $0) }
        + ([OutcomeObserver.queueName] + extraQueues).map { topology.prefix + $0 }
    for queue in queues {
        await attempt(queue) { _ = try await $0.deleteQueue(queue) }
    }
    // The shared streams too: they outlive every consumer, and a stream keeps its segments on disk until deleted.
    for stream in [topology.clientsLog, topology.outcomesLog, topology.claimsLog] {
        await attempt(stream) { _ = try await $0.deleteQueue(stream) }
    }
    for exchange in [topology.eventsExchange, topology.delayedExchange] {
        await attempt(exchange) { try await $0.deleteExchange(exchange) }
    }
    try? await connection.close()
    return problems
}

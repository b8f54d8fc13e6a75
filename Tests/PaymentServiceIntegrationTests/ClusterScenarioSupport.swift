import Foundation
import Logging
import PaymentService
import RabbitMQ
import RabbitMQTestSupport
import Synchronization

/// What the cluster service test needs besides the scenario itself: connections through every node, a race of
/// payments and registrations that keeps publishing through node losses, the outcomes stream read back, and the
/// consumers' JSON logs turned into processing times.
enum ClusterScenario {
    /// Connects to the test cluster with every node's URL, `first` tried first, so the connection survives a node.
    static func connect(name: String, first: Int = 1) async throws -> AMQPConnection {
        var configuration = try AMQPConfiguration(urls: urls(first: first))
        configuration.connectionName = name
        return try await AMQPConnection.connect(configuration: configuration, logger: PaymentTestBroker.logger)
    }

    /// The three nodes' URLs starting with `first`, then the others in rotation: instance i lists node i first,
    /// so the instances spread over the nodes and each still knows every node.
    static func urls(first: Int) -> [String] {
        let nodes = TestCluster.nodes
        let start = nodes.firstIndex(of: first) ?? 0
        return (0..<nodes.count).map { TestCluster.url(node: nodes[(start + $0) % nodes.count]) }
    }

    /// The race's result: the payment ids, and when each client's registration was confirmed by the broker.
    struct Race: Sendable {
        let paymentIDs: [String]
        let registeredAt: [String: Date]
        /// Publishes that got no answer within 5 s and were published again.
        let unanswered: Int
    }

    /// A new channel in confirm mode.
    private static func confirmingChannel(on connection: AMQPConnection) async throws -> AMQPChannel {
        let channel = try await connection.openChannel()
        try await channel.enablePublisherConfirms()
        return channel
    }

    /// Publishes one payment per client and each registration after a random lag of 0 to `maxLag` seconds, with a
    /// confirm each, as FaultTests' race does; a publish whose connection is lost is published again on the next
    /// node, so a payment may reach the service twice (the service must cope).
    ///
    /// With a `gate`, the last `heldBack` of the messages (a fraction) wait until it opens, and keep their pace
    /// after it.
    static func publishRace(
        topology: PaymentTopology, payments: Int, perSecond: Double, maxLag: Int, seed: UInt64,
        gate: RaceGate? = nil, heldBack: Double = 0.2
    ) async throws -> Race {
        let connection = try await connect(name: "cluster-test-producer")
        var channel = try await confirmingChannel(on: connection)
        let race = try PaymentRaceSchedule(
            name: "cluster", topology: topology, payments: payments, perSecond: perSecond, maxLag: maxLag, seed: seed)
        var registeredAt: [String: Date] = [:]
        var unanswered = 0
        let gateIndex = gate == nil ? race.messages.count : Int(Double(race.messages.count) * (1 - heldBack))
        var delayedBy = Duration.zero
        for (index, item) in race.messages.enumerated() {
            if index == gateIndex, let gate {
                let waitedFrom = ContinuousClock.now
                await gate.wait()
                delayedBy = max(.zero, ContinuousClock.now - waitedFrom)
            }
            let due = item.due + delayedBy
            if due > .now { try await Task.sleep(until: due) }
            let properties = AMQPProperties(contentType: "application/json", deliveryMode: .persistent, messageID: item.id)
            let givingUp = ContinuousClock.now + .seconds(60)
            while true {
                let body = item.body
                let queue = item.queue
                let publishing = channel
                let result = await within(.seconds(5)) {
                    try await publishing.publish(body, routingKey: queue, properties: properties, mandatory: true)
                }
                switch result {
                case .success: break
                case .failure(let error as AMQPError) where error.isRetriable:
                    // The node went away (the connection recovers on another one), or the broker refused it: try
                    // again once it has, on a new channel, since RabbitMQ 3.10 may refuse every later publish of a
                    // channel that published to a quorum queue without a leader.
                    guard ContinuousClock.now < givingUp else { throw error }
                    try await Task.sleep(for: .milliseconds(200))
                    channel = (try? await confirmingChannel(on: connection)) ?? channel
                    continue
                case .failure(let error): throw error
                case nil:
                    // No answer (seen once for 9 minutes after a node loss): publish again on a new channel, as a
                    // producer would.
                    unanswered += 1
                    guard ContinuousClock.now < givingUp else {
                        throw TestClusterError("no confirm for \(item.id) in 60 s, through every retry")
                    }
                    channel = (try? await confirmingChannel(on: connection)) ?? channel
                    continue
                }
                break
            }
            if !item.isPayment { registeredAt[item.id] = Date() }
        }
        try? await connection.close()
        return Race(paymentIDs: race.paymentIDs, registeredAt: registeredAt, unanswered: unanswered)
    }

    /// Runs `operation` in a task of its own and returns its result, or nil when it has not finished within
    /// `limit`; the task is then left to finish (or not) on its own.
    static func within(
        _ limit: Duration, _ operation: @escaping @Sendable () async throws -> Void
    ) async -> Result<Void, any Error>? {
        let answer = FirstAnswer()
        return await withCheckedContinuation { continuation in
            answer.wait(with: continuation)
            Task {
                do {
                    try await operation()
                    answer.give(.success(()))
                } catch {
                    answer.give(.failure(error))
                }
            }
            Task {
                try? await Task.sleep(for: limit)
                answer.give(nil)
            }
        }
    }

    /// Resumes its continuation with the first answer given, and ignores the later ones.
    private final class FirstAnswer: Sendable {
        private let continuation = Mutex<CheckedContinuation<Result<Void, any Error>?, Never>?>(nil)

        func wait(with continuation: CheckedContinuation<Result<Void, any Error>?, Never>) {
            self.continuation.withLock { $0 = continuation }
        }

        func give(_ answer: Result<Void, any Error>?) {
            continuation.withLock { $0.take() }?.resume(returning: answer)
        }
    }

    /// Reads the outcomes stream from its start until every expected payment has an outcome (or `seconds` pass),
    /// then 3 s more for late duplicates. Entries are told apart by their stream offset, so a reader that recovers
    /// on another node and reads again from the start counts nothing twice.
    static func readOutcomes(
        of topology: PaymentTopology, expecting ids: Set<String>, seconds: Double, first: Int
    ) async throws -> [PaymentOutcome] {
        let connection = try await connect(name: "cluster-test-outcomes", first: first)
        let channel = try await connection.openChannel()
        try await channel.setPrefetch(1000)
        let consumer = try await channel.consume(queue: topology.outcomesLog, arguments: ["x-stream-offset": "first"])
        let collected = Mutex<[Int: PaymentOutcome]>([:])
        let reader = Task {
            for try await delivery in consumer {
                try await delivery.ack()
                guard let offset = delivery.properties.headers?["x-stream-offset"]?.intValue,
                    let outcome = try? JSONDecoder().decode(PaymentOutcome.self, from: delivery.body)
                else { continue }
                collected.withLock { $0[offset] = outcome }
            }
        }
        defer { reader.cancel() }
        do {
            try await eventually(seconds, "an outcome for every payment", every: .milliseconds(200)) { () -> Void? in
                let seen = Set(collected.withLock { $0.values.map(\.paymentId) })
                return ids.isSubset(of: seen) ? () : nil
            }
        } catch is TestTimeout {
            // The caller reports what is missing.
        }
        try await Task.sleep(for: .seconds(3))
        try? await consumer.cancel()
        try? await connection.close()
        return collected.withLock { Array($0.values) }
    }

    /// Every client id in the clients stream, read from its start until nothing came for 2 s: for a failure
    /// message, to tell a registration the stream lost from one an instance did not read.
    static func clientsInLog(of topology: PaymentTopology, first: Int) async throws -> Set<String> {
        let connection = try await connect(name: "cluster-test-clients", first: first)
        defer { Task { try? await connection.close() } }
        let channel = try await connection.openChannel()
        try await channel.setPrefetch(100)
        let consumer = try await channel.consume(queue: topology.clientsLog, arguments: ["x-stream-offset": "first"])
        let state = Mutex((clients: Set<String>(), last: ContinuousClock.now))
        let reader = Task {
            for try await delivery in consumer {
                try await delivery.ack()
                let ids = (try? RegistrationBatchCodec.clientIDs(in: delivery)) ?? []
                state.withLock { $0.clients.formUnion(ids); $0.last = .now }
            }
        }
        defer { reader.cancel() }
        try await eventually(60, "the clients stream to be read", every: .milliseconds(200)) { () -> Void? in
            ContinuousClock.now - state.withLock(\.last) > .seconds(2) ? () : nil
        }
        return state.withLock(\.clients)
    }

    /// When each payment was processed, from the consumers' JSON logs (millisecond timestamps): its
    /// `payment processed` line, or, when the instance that processed it lost its connection before the outcome's
    /// confirm arrived (the outcome is out, the line never written), the line of the copy that found the outcome and
    /// settled it (`duplicate payment skipped` with outcome `processed`). The earliest line wins.
    static func processedTimes(in logs: [String]) -> [String: Date] {
        // JSONLogHandler writes ISO 8601 in UTC with milliseconds and no zone designator.
        let parser = DateFormatter()
        parser.locale = Locale(identifier: "en_US_POSIX")
        parser.timeZone = TimeZone(identifier: "UTC")
        parser.dateFormat = "yyyy-MM-dd'T'HH:mm:ss.SSS"
        var times: [String: Date] = [:]
        for log in logs {
            for line in log.split(whereSeparator: \.isNewline)
            where line.contains("\"payment processed\"") || line.contains("\"duplicate payment skipped\"") {
                guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                    let id = object["payment.id"] as? String, let stamp = object["timestamp"] as? String,
                    let date = parser.date(from: stamp)
                else { continue }
                if object["message"] as? String != "payment processed", object["outcome"] as? String != "processed" {
                    continue
                }
                times[id] = min(times[id] ?? date, date)
            }
        }
        return times
    }

    /// The `q`-quantile (0…1) of `values`, nearest rank; nil when there are none.
    static func quantile(_ q: Double, of values: [Double]) -> Double? {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        let rank = Int((q * Double(sorted.count)).rounded(.up))
        return sorted[min(max(rank, 1), sorted.count) - 1]
    }

    /// The longest stretch without a processed payment that starts in `[from, from + within]` (the first one starts
    /// at `from`), with its start: how long processing stood still after a fault while payments kept coming.
    static func longestPause(in times: [Date], from: Date, within: TimeInterval) -> (start: Date, seconds: Double)? {
        var previous = from
        var longest: (start: Date, seconds: Double)?
        for time in times.sorted() where time > from {
            let gap = time.timeIntervalSince(previous)
            if previous <= from.addingTimeInterval(within), gap > (longest?.seconds ?? 0) {
                longest = (previous, gap)
            }
            previous = time
        }
        return longest
    }

    /// Where messages of the test's queues are: `name type messages members online` of every queue of the prefix,
    /// as a live node lists them; for the failure message when payments are missing.
    static func queueListing(prefix: String, liveNode: Int) -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/rabbitmqctl")
        process.arguments = [
            "-n", TestCluster.name(node: liveNode), "-q", "list_queues", "name", "type", "messages",
            "messages_unacknowledged", "leader", "members", "online", "--no-table-headers",
        ]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        guard (try? process.run()) != nil else { return "(rabbitmqctl did not run)" }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self).split(separator: "\n").filter { $0.hasPrefix(prefix) }
            .joined(separator: "\n")
    }
}

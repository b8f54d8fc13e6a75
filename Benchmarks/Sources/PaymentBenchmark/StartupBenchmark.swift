import ArgumentParser
import Foundation
import Logging
import PaymentService
import RabbitMQ
import Synchronization

/// Measure 4: how soon a fresh `consumer` process consumes, and how much memory it holds then, once the shared
/// streams carry `entries` registered clients and `entries` payments settled inside the dedupe window.
///
/// The consumer runs as a process of its own (the executable built next to `payment-bench`): resident memory is a
/// property of a process, and measured in this one it would include the benchmark. Its JSON log on stderr is read
/// line by line, so each milestone is timed as it is written. A payment of a seeded client then shows the registry
/// was filled, and a copy of a seeded settled payment that the claims window was.
struct StartupBenchmark {
    /// The benchmark's own connections: seeding, the payments it sends, the outcome observer.
    let configuration: AMQPConfiguration
    /// The broker's URL, handed to the consumer as `--url`.
    let url: String
    /// A prefix of this measure alone, so that the consumer replays nothing but what was seeded here.
    let topology: PaymentTopology
    /// How many clients are registered, and how many payments settled, before the consumer starts.
    let entries: Int
    let logger: Logger

    /// Client ids, or claim records, per stream entry.
    static let batch = 2000
    /// The issue's target: consuming within this after the start, with at most `targetMegabytes` resident (MiB).
    static let targetTime = Duration.seconds(5)
    static let targetMegabytes = 250.0
    /// How long a start may take before the measure gives up: far beyond the target, so a slow start is still timed.
    static let startTimeout = Duration.seconds(180)

    /// What one start showed.
    struct Result {
        /// How many clients, and settled payments, were seeded.
        let entries: Int
        /// Publishing both streams' entries, confirms included.
        let seeding: Duration
        /// What the consumer's log showed until it stopped, and when the consumer was spawned.
        var seen: ConsumerProcess.Seen
        let started: ContinuousClock.Instant
        /// Publish → `payment.processed` of a new payment of a seeded client.
        let oldClientPayment: Duration?
        var problems: [String]
    }

    /// The parsed `--startup-sizes`.
    static func sizes(_ text: String) throws -> [Int] {
        try text.split(separator: ",").map { part in
            guard let size = Int(part.trimmingCharacters(in: .whitespaces)), size >= 1, size <= 9_999_999 else {
                throw ValidationError("--startup-sizes takes numbers from 1 to 9999999, not \"\(part)\"")
            }
            return size
        }
    }

    /// A seeded id, zero-padded to a realistic length: the streams and the consumer's tables hold these strings.
    static func id(_ kind: String, _ index: Int) -> String {
        "bench-\(kind)-" + String(format: "%07d", index)
    }

    /// Runs the measure, prints what it saw and returns the machine lines (a FAIL line too on a problem) and
    /// whether it failed; the caller deletes the topology.
    func measure() async -> (lines: [String], failed: Bool) {
        let name = "startup entries=\(entries)"
        print(
            "\(name): a fresh consumer process after \(entries) registered clients and \(entries) payments settled "
                + "inside the dedupe window, \(Self.batch) per stream entry; delay mode ttl, default dedupe window")
        do {
            let result = try await run()
            let line = result.report()
            guard !result.problems.isEmpty else { return ([line], false) }
            let failure = "FAIL \(name): " + result.problems.joined(separator: ", ")
            result.seen.printTail()
            print(failure)
            return ([line, failure], true)
        } catch {
            print("FAIL \(name): \(error)")
            return (["\(name) failed", "FAIL \(name): \(error)"], true)
        }
    }

    /// Declares and seeds the topology, starts the consumer, measures it and stops it.
    func run() async throws -> Result {
        let publisher = try await BenchPublisher.connect(
            configuration: configuration, topology: topology, logger: logger)
        var observer: OutcomeObserver?
        var consumer: ConsumerProcess?
        do {
            try await topology.declareCommon(on: publisher.payments)
            let seeding = try await seed(on: publisher.connection)
            // Bound before the consumer exists, so that no outcome can slip past it.
            observer = try await OutcomeObserver.start(
                configuration: configuration, topology: topology, logger: logger, abort: { nil })
            consumer = try ConsumerProcess(arguments: [
                "--url", url, "--name-prefix", topology.prefix, "--delay-mode", "ttl", "--summary-interval", "0s",
                "--log-level", "info", "--log-format", "json",
            ])
            guard let observer, let consumer else { throw BenchmarkError("unreachable") }
            var result = try await measure(consumer, observer: observer, publisher: publisher, seeding: seeding)
            if let problem = await consumer.stop() { result.problems.append(problem) }
            result.seen = consumer.seen
            await observer.stop()
            await publisher.close()
            return result
        } catch {
            _ = await consumer?.stop()
            consumer?.seen.printTail()
            await observer?.stop()
            await publisher.close()
            throw error
        }
    }

    /// Publishes the clients and claims entries, pipelined on a channel of their own whose small confirm window
    /// keeps a few megabytes in flight rather than a thousand entries; returns how long that took.
    private func seed(on connection: AMQPConnection) async throws -> Duration {
        let channel = try await connection.openChannel()
        try await channel.enablePublisherConfirms(maxOutstanding: 32)
        let began = clock.now
        // Settled just now: well inside the window the consumer reads, which starts over an hour back.
        let now = Int64((Date().timeIntervalSince1970 * 1000).rounded())
        var pending: [AMQPPublishConfirmation?] = []
        /// Publishes one entry to `stream` and keeps its pending confirm.
        func publish(_ entry: (body: Data, properties: AMQPProperties), to stream: String) async throws {
            pending.append(
                try await channel.startPublish(
                    entry.body, routingKey: stream, properties: entry.properties, mandatory: true))
        }
        for first in stride(from: 0, to: entries, by: Self.batch) {
            let ids = (first..<min(first + Self.batch, entries)).map { Self.id("client", $0) }
            try await publish(RegistrationBatchCodec.entry(ids), to: topology.clientsLog)
        }
        // Two records per settled payment: the claim that won it, then the settlement.
        for first in stride(from: 0, to: entries, by: Self.batch / 2) {
            let records = (first..<min(first + Self.batch / 2, entries)).flatMap { index -> [ClaimRecord] in
                let (payment, claim) = (Self.id("payment", index), "seed0000-\(index)")
                return [
                    .claim(paymentID: payment, claimID: claim, at: now),
                    .settle(paymentID: payment, claimID: claim, outcome: .processed, at: now),
                ]
            }
            try await publish(ClaimRecordCodec.entry(records), to: topology.claimsLog)
        }
        // Each is nil only on a channel without confirm mode, which this one is not.
        for confirmation in pending { try await confirmation?.wait() }
        let took = clock.now - began
        try await channel.close()
        return took
    }

    /// Waits for the consumer to consume, then checks what it learnt with a payment of a seeded client and a copy of
    /// a seeded settled payment.
    private func measure(
        _ consumer: ConsumerProcess, observer: OutcomeObserver, publisher: BenchPublisher, seeding: Duration
    ) async throws -> Result {
        let startDeadline = clock.now + Self.startTimeout
        _ = try await consumer.wait(for: "payment consumer running", until: startDeadline) { $0.running }
        let seen = consumer.seen
        var problems: [String] = []
        for (label, count) in [("clients", seen.clients), ("settled_in_window", seen.settled)] where count != entries {
            problems.append("the consumer logged \(label)=\(count.map(String.init) ?? "nothing"), not \(entries)")
        }
        if seen.memory == nil { problems.append("could not read /proc/\(consumer.process.processIdentifier)/status") }

        // A new payment of a client registered long ago: processed at once only if the replay filled the registry.
        let encoder = JSONEncoder()
        let (fresh, client) = ("bench-startup-fresh-payment", Self.id("client", entries / 2))
        let published = clock.now
        try await publisher.startPayment(try paymentBody(id: fresh, client: client, encoder: encoder), id: fresh).wait()
        var oldClientPayment: Duration?
        let abort = { @Sendable in consumer.exitReason }
        if try await observer.waitForOutcomes(1, stallTimeout: .seconds(30), label: "startup", abort: abort),
            let outcome = observer.recorder.entries[fresh]
        {
            oldClientPayment = outcome.receivedAt - published
            if outcome.outcome.outcome != .processed {
                problems.append("the payment of seeded client \(client) was \(outcome.outcome.outcome.rawValue)")
            }
        } else {
            problems.append("no outcome of the payment of seeded client \(client) within 30 s")
        }

        // A copy of a payment settled inside the window: skipped without an outcome only if the claims were replayed.
        let settled = Self.id("payment", entries - 1)
        let copy = try paymentBody(id: settled, client: Self.id("client", entries - 1), encoder: encoder)
        try await publisher.startPayment(copy, id: settled).wait()
        do {
            _ = try await consumer.wait(for: "duplicate payment skipped", until: clock.now + .seconds(30)) {
                $0.skipped.contains(settled) ? true : nil
            }
        } catch {
            problems.append("the copy of settled payment \(settled) was not skipped as a duplicate: \(error)")
        }
        if observer.recorder.entries[settled] != nil { problems.append("settled payment \(settled) got an outcome") }
        return Result(
            entries: entries, seeding: seeding, seen: consumer.seen, started: consumer.started,
            oldClientPayment: oldClientPayment, problems: problems)
    }
}

extension StartupBenchmark.Result {
    /// Prints the human lines and returns the machine line. The memory target is judged on the peak: a process that
    /// went over 250 MB while starting needs that much, whatever it holds once it consumes.
    func report() -> String {
        let toConsuming = ((seen.running ?? started) - started).milliseconds
        let caughtUp = ((seen.caughtUp ?? started) - started).milliseconds
        let (batch, payments) = (StartupBenchmark.batch, StartupBenchmark.batch / 2)
        print(
            "  seeded \(entries) clients (\((entries + batch - 1) / batch) entries) and \(entries) settled payments "
                + "(\((entries + payments - 1) / payments) entries) in \(fixed(seeding.milliseconds, 0)) ms")
        print(
            "  spawn → caught up with the shared streams \(fixed(caughtUp, 0)) ms (the replay alone, as logged: "
                + "\(seen.elapsed ?? "-")); spawn → consuming \(fixed(toConsuming, 0)) ms; it knew "
                + "clients=\(seen.clients ?? -1) settled_in_window=\(seen.settled ?? -1)")
        let resident = seen.memory.map { fixed($0.resident) } ?? "-"
        let peak = seen.memory.map { fixed($0.peak) } ?? "-"
        let payment = oldClientPayment.map { fixed($0.milliseconds) } ?? "-"
        print(
            "  as it started consuming: \(resident) MiB resident (VmRSS), peak \(peak) MiB (VmHWM); "
                + "a new payment of a seeded client: publish → payment.processed \(payment) ms")
        let fast = toConsuming < StartupBenchmark.targetTime.milliseconds ? "met" : "missed"
        let small = (seen.memory?.peak ?? .infinity) < StartupBenchmark.targetMegabytes ? "met" : "missed"
        return "startup entries=\(entries) to_consuming_ms=\(fixed(toConsuming, 0)) caught_up_ms=\(fixed(caughtUp, 0)) "
            + "rss_mb=\(resident) peak_rss_mb=\(peak) old_client_payment_ms=\(payment) target_under_5s=\(fast) "
            + "target_under_250mb=\(small)"
    }
}

/// A `consumer` process whose JSON log lines are read from its stderr as they come, with the instant each arrived.
final class ConsumerProcess: Sendable {
    /// What the log showed so far.
    struct Seen: Sendable {
        var caughtUp: ContinuousClock.Instant?
        var running: ContinuousClock.Instant?
        /// The `clients`, `settled_in_window` and `elapsed` of the caught-up line.
        var clients: Int?
        var settled: Int?
        var elapsed: String?
        /// VmRSS and VmHWM (peak) in MiB, read as the running line arrived.
        var memory: (resident: Double, peak: Double)?
        /// Payments logged as `duplicate payment skipped`.
        var skipped: Set<String> = []
        /// The last lines, to tell why a wait failed, and the start of a line not complete yet.
        var tail: [String] = []
        var partial = Data()

        /// Prints the last lines the consumer logged: what tells why a wait failed, kept out of the one-line FAIL.
        func printTail() {
            print("  the consumer's last log lines:")
            for line in tail { print("    \(line)") }
        }
    }

    let process = Process()
    /// Just before the spawn: where the start-up times count from.
    let started: ContinuousClock.Instant
    private let state = Mutex(Seen())

    /// Starts the `consumer` executable that sits next to this one, with `arguments`.
    init(arguments: [String]) throws {
        let executable = (Bundle.main.executableURL ?? URL(fileURLWithPath: CommandLine.arguments[0]))
            .deletingLastPathComponent().appendingPathComponent("consumer")
        guard FileManager.default.isExecutableFile(atPath: executable.path) else {
            throw BenchmarkError("no consumer executable at \(executable.path): build the consumer product too")
        }
        let pipe = Pipe()
        process.executableURL = executable
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = pipe
        started = clock.now
        // Weak, so that the handler does not keep this object alive through the pipe.
        pipe.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            if data.isEmpty { handle.readabilityHandler = nil } else { self?.read(data, at: clock.now) }
        }
        try process.run()
    }

    /// What the log showed so far.
    var seen: Seen { state.withLock { $0 } }

    /// Why nothing more can be waited for, once the process exited; nil while it runs.
    var exitReason: String? {
        process.isRunning ? nil : "the consumer exited with status \(process.terminationStatus)"
    }


    /// Splits what arrived into lines and notes the milestones among them.
    private func read(_ data: Data, at instant: ContinuousClock.Instant) {
        let lines = state.withLock { seen -> [Data] in
            seen.partial.append(data)
            var parts = seen.partial.split(separator: 0x0A, omittingEmptySubsequences: false)
            seen.partial = Data(parts.removeLast())
            return parts.map { Data($0) }
        }
        for line in lines {
            let fields = (try? JSONSerialization.jsonObject(with: line)) as? [String: Any] ?? [:]
            let message = fields["message"] as? String
            // Read at once, before the process allocates more: what it holds as it starts consuming.
            let memory = message == "payment consumer running" ? memoryInUse() : nil
            state.withLock { seen in
                seen.tail = Array((seen.tail + [String(decoding: line, as: UTF8.self)]).suffix(15))
                switch message {
                case "caught up with the shared streams":
                    seen.caughtUp = instant
                    seen.clients = (fields["clients"] as? String).flatMap { Int($0) }
                    seen.settled = (fields["settled_in_window"] as? String).flatMap { Int($0) }
                    seen.elapsed = fields["elapsed"] as? String
                case "payment consumer running":
                    (seen.running, seen.memory) = (instant, memory)
                case "duplicate payment skipped":
                    if let payment = fields["payment.id"] as? String { seen.skipped.insert(payment) }
                default:
                    break
                }
            }
        }
    }

    /// The process's VmRSS and VmHWM in MiB, from `/proc/<pid>/status`.
    private func memoryInUse() -> (resident: Double, peak: Double)? {
        let path = "/proc/\(process.processIdentifier)/status"
        guard let status = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        /// The value of a `Key:   1234 kB` line, in kB.
        func kilobytes(_ key: String) -> Double? {
            status.split(separator: "\n").first { $0.hasPrefix(key + ":") }
                .flatMap { $0.split(separator: " ").dropFirst().first }.flatMap { Double($0) }
        }
        guard let resident = kilobytes("VmRSS"), let peak = kilobytes("VmHWM") else { return nil }
        return (resident / 1024, peak / 1024)
    }

    /// Waits until `found` picks something out of the log; throws when the process exits or the deadline passes.
    func wait<T>(for label: String, until deadline: ContinuousClock.Instant, _ found: (Seen) -> T?) async throws -> T {
        while true {
            let seen = self.seen
            if let value = found(seen) { return value }
            if let reason = exitReason { throw BenchmarkError("waiting for \"\(label)\": \(reason)") }
            guard clock.now < deadline else { throw BenchmarkError("no \"\(label)\" in the consumer's log in time") }
            try await Task.sleep(for: .milliseconds(2))
        }
    }

    /// Sends SIGTERM, as a service manager would, and waits up to 15 s for a clean exit, else kills the process.
    /// Returns what went wrong, if anything.
    func stop() async -> String? {
        let pid = process.processIdentifier
        if process.isRunning { kill(pid, SIGTERM) }
        let deadline = clock.now + .seconds(15)
        while process.isRunning, clock.now < deadline { try? await Task.sleep(for: .milliseconds(10)) }
        guard !process.isRunning else {
            kill(pid, SIGKILL)
            return "the consumer did not exit within 15 s of SIGTERM (killed)"
        }
        guard process.terminationReason == .exit, process.terminationStatus == 0 else {
            return "the consumer ended with status \(process.terminationStatus) after SIGTERM"
        }
        return nil
    }
}

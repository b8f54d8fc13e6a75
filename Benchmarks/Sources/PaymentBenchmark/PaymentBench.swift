import ArgumentParser
import Foundation
import Logging
import PaymentService
import RabbitMQ

/// `payment-bench`: runs the payment consumer in this process against the broker and measures it.
struct PaymentBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "payment-bench",
        abstract:
            "Measures the payment service: latency after a late registration, throughput, several instances, start.",
        discussion: """
            Runs PaymentConsumerService in this process under a random name prefix (bench-<id>-), publishes payments \
            and registrations on its own connection with confirms, and times the payment.processed outcomes on an \
            exclusive queue bound to the prefixed payment-events exchange. Every prefixed queue and exchange is \
            deleted afterwards. The last lines are one measure each, for scripts to compare:
              registration_to_processed <mode> p50_ms=… p99_ms=… max_ms=… retries_mean=… retries_max=…
              throughput known-clients end_to_end_per_s=… consumer_only_per_s=… reference_per_s=… \
            ratio=… ratios=…,…,… target_0.7=<met|missed>
              scaleout instances=<n> hold=<on|off> p50_ms=… p99_ms=… max_ms=… retries_mean=… retries_max=… \
            payments=… duplicates=… parked=… missing=…
              scaleout_target instances=<n> hold=on p99_under_50ms=<met|missed> retries_under_0.05=<met|missed>
              scaleout_note instances=<n> hold=<on|off> broker_blocked_ms=… (only when a resource alarm hit the run)
              startup entries=<n> to_consuming_ms=… caught_up_ms=… rss_mb=… peak_rss_mb=… old_client_payment_ms=… \
            target_under_5s=<met|missed> target_under_250mb=<met|missed>
            The latency measure runs with holding off: it measures the delayed-retry path against its schedule. \
            The scale-out measure runs 1 and 3 instances (--scaleout-instances) with holding on (HoldPolicy() \
            defaults) and off, delay mode ttl; a payment without exactly one processed outcome prints a FAIL line \
            and the command exits non-zero. The start-up measure seeds the prefixed clients and claims streams with \
            <n> clients and <n> payments settled inside the dedupe window (--startup-sizes), starts the consumer \
            executable built next to payment-bench as a process, and times it from the spawn to its log lines; \
            rss_mb is its VmRSS as it starts consuming, and the memory target is judged on peak_rss_mb (VmHWM). A \
            wrong count, a missing outcome or a copy not skipped prints a FAIL line. --only picks measures: \
            --only scaleout runs that one alone.
            """)

    /// The measures, for `--only`.
    enum Measure: String, CaseIterable {
        case latency, throughput, scaleout, startup
    }

    @Option(help: "Run only these measures (latency, throughput, scaleout, startup; repeat or separate with commas).")
    var only: [String] = []

    @Option(help: "Payments of the latency measure, one client each (0 skips it).")
    var payments = 1000

    @Option(help: "Registrations arrive 0 to this many seconds after their payment, uniformly at random.")
    var maxLagSeconds = 5.0

    @Option(help: "Payments of the throughput measures, all of one known client (0 skips them).")
    var throughputPayments = 20000

    @Option(help: "Throughput: how many rounds of consumer-only pass and reference, alternately; the median ratio is reported.")
    var throughputRounds = 3

    @Option(help: "Payments of the scale-out measure, one client each (0 skips it).")
    var scaleoutPayments = 1000

    @Option(help: "Payments per second of the scale-out measure.")
    var scaleoutRate = 200.0

    @Option(help: "Scale-out: registrations arrive 0 to this many seconds after their payment, uniformly at random.")
    var scaleoutMaxLagSeconds = 3.0

    @Option(help: "Scale-out: the numbers of instances to run, each with holding on and off (comma-separated).")
    var scaleoutInstances = "1,3"

    @Option(help: "Start-up: clients registered, and payments settled, before each start (comma-separated).")
    var startupSizes = "100000,1000000"

    @Option(help: "The broker's URL.")
    var url = "amqp://guest:guest@127.0.0.1:5672/"

    @Option(help: "Seed of the registration lags: equal seeds draw equal lags.")
    var seed: UInt64 = 1

    @Option(help: "A directory to write latency-<mode>.csv to: one line per payment with its instants.")
    var csvDirectory: String?

    @Option(help: "The lowest level logged to stderr (the consumer logs every payment at info).")
    var logLevel: Logger.Level = .warning

    /// The measures `--only` picks; every one without it.
    var measures: Set<Measure> {
        get throws {
            let names = only.flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces) }
            guard !names.isEmpty else { return Set(Measure.allCases) }
            return Set(try names.map { name in
                guard let measure = Measure(rawValue: name) else {
                    throw ValidationError(
                        "unknown measure \"\(name)\" in --only; the measures are "
                            + Measure.allCases.map(\.rawValue).joined(separator: ", "))
                }
                return measure
            })
        }
    }

    /// The instance counts of `--scaleout-instances`.
    var instanceCounts: [Int] {
        get throws {
            try scaleoutInstances.split(separator: ",").map { text in
                guard let count = Int(text.trimmingCharacters(in: .whitespaces)), (1...16).contains(count) else {
                    throw ValidationError("--scaleout-instances takes numbers from 1 to 16, not \"\(text)\"")
                }
                return count
            }
        }
    }

    func validate() throws {
        _ = try measures
        _ = try instanceCounts
        _ = try StartupBenchmark.sizes(startupSizes)
        guard scaleoutPayments >= 0 else { throw ValidationError("--scaleout-payments cannot be negative") }
        guard scaleoutRate.isFinite, scaleoutRate > 0, scaleoutRate <= 100_000 else {
            throw ValidationError("--scaleout-rate must be above 0 and at most 100000")
        }
        guard scaleoutMaxLagSeconds.isFinite, scaleoutMaxLagSeconds >= 0, scaleoutMaxLagSeconds <= 3600 else {
            throw ValidationError("--scaleout-max-lag-seconds must be between 0 and 3600")
        }
        guard payments >= 0 else { throw ValidationError("--payments cannot be negative") }
        guard throughputPayments >= 0 else { throw ValidationError("--throughput-payments cannot be negative") }
        guard (1...15).contains(throughputRounds) else { throw ValidationError("--throughput-rounds takes 1 to 15") }
        guard maxLagSeconds.isFinite, maxLagSeconds >= 0, maxLagSeconds <= 3600 else {
            throw ValidationError("--max-lag-seconds must be between 0 and 3600")
        }
    }

    func run() async throws {
        let level = logLevel
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        var logger = Logger(label: "payment-bench")
        logger.logLevel = level
        let configuration: AMQPConfiguration
        do {
            configuration = try AMQPConfiguration(url: url)
        } catch let error as AMQPError {
            throw ValidationError("invalid --url: \(error.message)")
        }

        let began = clock.now
        let runID = String(UInt32.random(in: .min ... .max), radix: 16)
        let base = "bench-\(runID)-"
        let version = try await brokerVersion(configuration: configuration, logger: logger)
        print(
            "payment-bench: \(version) at \(configuration.host):\(configuration.port), prefix \(base)*, seed \(seed)")

        var lines: [String] = []
        var failed = false
        let measures = try self.measures

        if payments > 0, measures.contains(.latency) {
            for mode in [DelayMode.ttl, .plugin] {
                let measure = "registration_to_processed \(mode.rawValue)"
                if mode == .plugin {
                    let hasPlugin = try await brokerHasDelayedMessagePlugin(
                        configuration: configuration, name: base + "plugin-probe", logger: logger)
                    guard hasPlugin else {
                        print(
                            "latency plugin: skipped, the broker lacks the rabbitmq_delayed_message_exchange plugin "
                                + "(x-delayed-message is an unknown exchange type)")
                        lines.append("\(measure) skipped reason=plugin-missing")
                        continue
                    }
                }
                let topology = PaymentTopology(prefix: base + mode.rawValue + "-")
                let benchmark = LatencyBenchmark(
                    configuration: configuration, topology: topology, mode: mode, payments: payments,
                    maxLag: .nanoseconds(Int64((maxLagSeconds * 1e9).rounded())), seed: seed, logger: logger)
                print(
                    "latency \(mode.rawValue): \(payments) payments, one client each, registration lag uniform in "
                        + "[0, \(fixed(maxLagSeconds, 1))] s; RetryPolicy() step 1 s, cap 10 s, 10 retries; "
                        + "holding off")
                do {
                    let result = try await benchmark.run()
                    lines += report(result, mode: mode)
                    if let csvDirectory { write(result.rows, to: csvDirectory, name: "latency-\(mode.rawValue).csv") }
                } catch {
                    failed = true
                    print("latency \(mode.rawValue): failed: \(error)")
                    lines.append("\(measure) failed")
                }
                await cleanUp(
                    topology, extraQueues: LatencyBenchmark.extraQueues, configuration: configuration, logger: logger)
            }
        }

        if throughputPayments > 0, measures.contains(.throughput) {
            let topology = PaymentTopology(prefix: base + "tput-")
            let benchmark = ThroughputBenchmark(
                configuration: configuration, topology: topology, payments: throughputPayments,
                rounds: throughputRounds, logger: logger)
            print("throughput: \(throughputPayments) payments of one known client, delay mode ttl (no retries)")
            do {
                let result = try await benchmark.run()
                lines += report(result)
            } catch {
                failed = true
                print("throughput: failed: \(error)")
                lines.append("throughput known-clients failed")
            }
            await cleanUp(
                topology, extraQueues: ThroughputBenchmark.extraQueues, configuration: configuration, logger: logger)
        }

        if scaleoutPayments > 0, measures.contains(.scaleout) {
            for instances in try instanceCounts {
                for hold in [HoldPolicy(), HoldPolicy.off] {
                    let holdName = hold == .off ? "off" : "on"
                    let name = "scaleout instances=\(instances) hold=\(holdName)"
                    let topology = PaymentTopology(prefix: base + "scale\(instances)-hold-\(holdName)-")
                    let benchmark = ScaleOutBenchmark(
                        configuration: configuration, topology: topology, instances: instances, hold: hold,
                        payments: scaleoutPayments, paymentsPerSecond: scaleoutRate,
                        maxLag: .nanoseconds(Int64((scaleoutMaxLagSeconds * 1e9).rounded())), seed: seed,
                        logger: logger)
                    print(
                        "\(name): \(scaleoutPayments) payments at \(fixed(scaleoutRate, 0))/s, one client each, "
                            + "registration lag uniform in [0, \(fixed(scaleoutMaxLagSeconds, 1))] s; delay mode ttl, "
                            + "RetryPolicy() step 1 s; "
                            + (hold == .off
                                ? "holding off"
                                : "holding up to \(hold.maxHeld) payments for \(hold.time) per instance")
                            + ", prefetch \(PaymentConsumerConfiguration(connection: configuration).prefetch)")
                    let measureBegan = clock.now
                    do {
                        let result = try await benchmark.run()
                        lines += report(result, name: name, instances: instances, hold: hold)
                        if !result.problems.isEmpty {
                            failed = true
                            let failure = "FAIL \(name): " + result.problems.joined(separator: ", ")
                            print(failure)
                            lines.append(failure)
                        }
                        if let csvDirectory {
                            write(result.rows, to: csvDirectory, name: "scaleout-\(instances)-hold-\(holdName).csv")
                        }
                    } catch {
                        failed = true
                        print("FAIL \(name): \(error)")
                        lines.append("\(name) failed")
                        lines.append("FAIL \(name): \(error)")
                    }
                    print("  \(name) took \(fixed((clock.now - measureBegan).seconds, 1)) s")
                    await cleanUp(topology, configuration: configuration, logger: logger)
                }
            }
        }

        if measures.contains(.startup) {
            for entries in try StartupBenchmark.sizes(startupSizes) {
                let topology = PaymentTopology(prefix: base + "startup\(entries)-")
                let measured = await StartupBenchmark(
                    configuration: configuration, url: url, topology: topology, entries: entries, logger: logger
                ).measure()
                lines += measured.lines
                failed = failed || measured.failed
                await cleanUp(topology, configuration: configuration, logger: logger)
            }
        }

        print("run took \(fixed((clock.now - began).seconds, 1)) s")
        print("== results: seed=\(seed) payments=\(payments) max_lag_s=\(fixed(maxLagSeconds, 1)) "
            + "throughput_payments=\(throughputPayments) ==")
        for line in lines { print(line) }
        if failed { throw ExitCode.failure }
    }

    private func write(_ rows: [String], to directory: String, name: String) {
        let path = URL(fileURLWithPath: directory).appendingPathComponent(name)
        do {
            try Data((rows.joined(separator: "\n") + "\n").utf8).write(to: path)
            print("  wrote \(path.path)")
        } catch {
            print("  could not write \(path.path): \(error)")
        }
    }

    private func brokerVersion(configuration: AMQPConfiguration, logger: Logger) async throws -> String {
        var configuration = configuration
        configuration.connectionName = "payment-bench-version"
        let connection = try await AMQPConnection.connect(configuration: configuration, logger: logger)
        let product = connection.serverProperties["product"]?.stringValue ?? "broker"
        let version = connection.serverProperties["version"]?.stringValue ?? "(version unknown)"
        try? await connection.close()
        return "\(product) \(version)"
    }

    private func cleanUp(
        _ topology: PaymentTopology, extraQueues: [String] = [], configuration: AMQPConfiguration, logger: Logger
    ) async {
        let problems = await deleteTopology(
            topology, policy: RetryPolicy(), extraQueues: extraQueues, configuration: configuration, logger: logger)
        if problems.isEmpty {
            print("  deleted \(topology.prefix)* queues and exchanges")
        } else {
            for problem in problems { print("  cleanup: could not delete \(problem)") }
        }
    }
}

/// `--log-level`. The one thing payment-bench took from the root package's PaymentCommandLine (which declares the same
/// conformance for consumer and producer): declared here, so that module need not become a product of the library.
extension Logger.Level: @retroactive ExpressibleByArgument {}

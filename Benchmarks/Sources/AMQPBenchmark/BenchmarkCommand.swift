import Foundation
import Logging
import RabbitMQ
import Tracing

/// The `amqp-bench` command: parses the options, runs every measure on both sides, prints the summary.
///
/// Progress goes to stdout as it happens; the output ends with the summary, one line per measure, and nothing
/// after it. Errors go to stderr, and make the command exit with 1.
enum BenchmarkCommand {
    /// Runs the command and returns the process's exit status.
    static func main(arguments: [String]) async -> Int32 {
        let options: BenchmarkOptions
        do throws(BenchmarkOptions.Stop) {
            options = try BenchmarkOptions.parse(arguments, environment: ProcessInfo.processInfo.environment)
        } catch {
            switch error {
            case .help:
                Console.out(BenchmarkOptions.usage)
                return 0
            case .invalid(let message):
                Console.error("amqp-bench: \(message)\n\n\(BenchmarkOptions.usage)")
                return 1
            }
        }
        do {
            let summary = try await run(options)
            for line in summary.formattedLines {
                Console.out(line)
            }
            return 0
        } catch {
            Console.error("amqp-bench: error: \(error)")
            return 1
        }
    }

    /// Every repetition of every measure, C then Swift each time (C, Swift, C, Swift...), so that both sides of a
    /// measure run back to back under the same machine and broker conditions, and a drift over the run hits both.
    private static func run(_ options: BenchmarkOptions) async throws -> BenchmarkSummary {
        let configuration = try AMQPConfiguration(url: options.url)
        // The C programs open plain TCP connections and log in with PLAIN; anything else would compare unlike work.
        guard configuration.tls == nil else {
            throw BenchmarkError("the C programs cannot use TLS: give an amqp:// URL, not amqps://")
        }
        guard configuration.authentication == .plain else {
            throw BenchmarkError("the C programs log in with PLAIN only: drop auth_mechanism from the URL")
        }
        // Before any connection: a connection looks its tracer up once, when it is made.
        let tracer = options.tracing ? CountingTracer() : nil
        if let tracer { InstrumentationSystem.bootstrap(tracer) }
        var logger = Logger(label: "amqp-bench", factory: { StreamLogHandler.standardError(label: $0) })
        logger.logLevel = options.logLevel
        let workers = Workers(
            swift: SwiftBenchmarks(
                configuration: configuration, logger: logger, onConnectionExecutor: options.onConnectionExecutor),
            c: CBenchmarks(
                host: configuration.host, port: configuration.port, user: configuration.username,
                password: configuration.password, virtualHost: configuration.virtualHost),
            options: options)

        Console.out("amqp-bench: broker \(configuration)")
        Console.out(
            "amqp-bench: \(options.repetitions) repetition(s); publish \(options.publishMessages), "
                + "publish-confirmed \(options.confirmedMessages) (window \(options.confirmWindow)), "
                + "consume and consume-multiple-ack \(options.consumeMessages) (prefetch \(options.prefetch), "
                + "multiple ack every \(Measure.multipleAckEvery)), "
                + "latency \(options.latencyMessages) at \(String(format: "%g", options.latencyRate))/s; "
                + "\(options.messageSize)-byte bodies")

        var adminConfiguration = configuration
        adminConfiguration.connectionName = "bench-adm"
        let admin = try await AMQPConnection.connect(configuration: adminConfiguration, logger: logger)
        let queues: BenchmarkQueues
        do {
            queues = BenchmarkQueues(channel: try await admin.openChannel())
        } catch {
            try? await admin.close()
            throw error
        }

        var summary = BenchmarkSummary(measures: options.measures)
        do {
            for repetition in 1...options.repetitions {
                for measure in options.measures {
                    for side in [Side.c, Side.swift] {
                        let (sample, cpu, note) = try await workers.run(
                            measure, side, repetition: repetition, queues: queues)
                        summary.record(sample, cpuMicrosecondsPerMessage: cpu, of: measure, by: side)
                        let label = measure.rawValue.padding(toLength: 20, withPad: " ", startingAt: 0)
                        let sideLabel = side.rawValue.padding(toLength: 5, withPad: " ", startingAt: 0)
                        Console.out(
                            "[\(repetition)/\(options.repetitions)] \(label) \(sideLabel) \(sample.description)"
                                + " (\(note))")
                    }
                }
            }
        } catch {
            let left = await queues.deleteRemaining()
            if !left.isEmpty {
                Console.error("amqp-bench: could not delete queue(s) \(left.joined(separator: ", "))")
            }
            try? await admin.close()
            throw error
        }
        let left = await queues.deleteRemaining()
        try await admin.close()
        guard left.isEmpty else {
            throw BenchmarkError("could not delete queue(s) \(left.joined(separator: ", "))")
        }
        if let tracer { Console.out("amqp-bench: counting tracer: \(tracer.endedSpans) spans ended") }
        return summary
    }
}

/// Runs one side of one measure on a fresh queue, and checks afterwards that the broker saw all the work.
private struct Workers {
    let swift: SwiftBenchmarks
    let c: CBenchmarks
    let options: BenchmarkOptions

    /// Returns the measurement, its CPU time per message in µs, and a note that helps reading it.
    func run(
        _ measure: Measure, _ side: Side, repetition: Int, queues: BenchmarkQueues
    ) async throws -> (Sample, cpuMicrosecondsPerMessage: Double, note: String) {
        let queue = try await queues.fresh(measure, side, repetition: repetition)
        let size = options.messageSize
        let what = "\(side.rawValue) \(measure.rawValue)"
        var measurement: Measurement
        var note = ""
        let count: Int
        switch measure {
        case .publish:
            count = options.publishMessages
            measurement = try await withTimeLimit(throughputLimit(count), what) {
                switch side {
                case .c: try await c.publish(queue: queue, count: count, size: size)
                case .swift: try await swift.publish(queue: queue, count: count, size: size)
                }
            }
            // The one rule for both sides: the clock stops when the broker holds every message, seen from another
            // connection once the side closed its own. Polled every millisecond: well under 1 % of the measure.
            // The CPU figure ends at the close, so this polling (the same for both) is not in it.
            guard case .throughput(_, let closedAfter) = measurement.sample else { preconditionFailure() }
            try await queues.waitForMessageCount(queue, count, every: .milliseconds(1))
            let held = MonotonicClock.seconds(from: measurement.startNanoseconds, to: MonotonicClock.nanoseconds())
            measurement.sample = .throughput(messages: count, seconds: held)
            note = String(format: "closed after %.3f s, broker held all after %.3f s", closedAfter, held)

        case .publishConfirmed:
            count = options.confirmedMessages
            let window = options.confirmWindow
            measurement = try await withTimeLimit(throughputLimit(count), what) {
                switch side {
                case .c: try await c.publishConfirmed(queue: queue, count: count, size: size, window: window)
                case .swift: try await swift.publishConfirmed(queue: queue, count: count, size: size, window: window)
                }
            }

        case .consume, .consumeMultipleAck:
            count = options.consumeMessages
            let prefetch = options.prefetch
            let ackEvery = measure.ackEvery
            // Filled by C, outside the measure, whichever side consumes; the count settling means the broker is
            // done taking them, so the consumer does not compete with the fill for the broker.
            try await c.fill(queue: queue, count: count, size: size)
            try await queues.waitForMessageCount(queue, count)
            measurement = try await withTimeLimit(throughputLimit(count), what) {
                switch side {
                case .c:
                    try await c.consume(queue: queue, count: count, prefetch: prefetch, ackEvery: ackEvery)
                case .swift:
                    try await swift.consume(queue: queue, count: count, prefetch: prefetch, ackEvery: ackEvery)
                }
            }

        case .latency:
            count = options.latencyMessages
            let rate = options.latencyRate
            measurement = try await withTimeLimit(.seconds(Double(count) / rate + 60), what) {
                switch side {
                case .c: try await c.latency(queue: queue, count: count, size: size, rate: rate)
                case .swift: try await swift.latency(queue: queue, count: count, size: size, rate: rate)
                }
            }
        }
        let cpuPerMessage = measurement.cpuSeconds * 1e6 / Double(count)
        note = String(format: "CPU %.2f µs/msg", cpuPerMessage) + (note.isEmpty ? "" : "; " + note)

        // Outside the measured time, the broker shows that the work was really done: every published message is in
        // the queue, and after consuming nothing is left (once the consumer's connection closed, an unacked message
        // would be ready again).
        switch measure {
        case .publish, .publishConfirmed:
            try await queues.waitForMessageCount(queue, count)
        case .consume, .consumeMultipleAck, .latency:
            try await queues.waitForMessageCount(queue, 0)
        }
        try await queues.remove(queue)
        return (measurement.sample, cpuPerMessage, note)
    }

    /// A generous limit for a throughput measure: a minute plus a millisecond per message, so only a stall trips it.
    private func throughputLimit(_ count: Int) -> Duration {
        .seconds(60) + .milliseconds(count)
    }
}

import Foundation
import Logging

/// What one run measures, from the command line.
///
/// Parsed by hand: swift-argument-parser is not a dependency of this target, and the handful of options does not
/// need it.
struct BenchmarkOptions {
    /// The broker; `--url`, else the `AMQP_URL` environment variable, else the local default.
    var url: String
    /// How many times every measure runs on each side; with more than one, the summary shows medians.
    var repetitions = 1
    /// Messages published by `publish`.
    var publishMessages = 200_000
    /// Messages published by `publish-confirmed`.
    var confirmedMessages = 100_000
    /// Messages consumed by `consume` and by `consume-multiple-ack`.
    var consumeMessages = 200_000
    /// Messages sent by the latency measure.
    var latencyMessages = 5_000
    /// The latency measure's publish rate, in messages per second: one per millisecond.
    var latencyRate = 1_000.0
    /// The body size of every message, in bytes (at least 8: the latency measure stamps its send time there).
    var messageSize = 100
    /// The most unconfirmed publishes of `publish-confirmed`.
    var confirmWindow = 1_000
    /// The prefetch (`basic.qos`) of `consume` and `consume-multiple-ack`.
    var prefetch: UInt16 = 1_000
    /// The measures to run, in this order.
    var measures = Measure.allCases
    /// The level the library logs at (to stderr).
    var logLevel = Logger.Level.warning
    /// Whether the Swift side runs with ``CountingTracer`` bootstrapped, to measure what tracing costs.
    var tracing = false
    /// Whether the Swift side runs its publishing and consuming tasks on the connection's I/O thread
    /// (``AMQPConnection/taskExecutor``) rather than on the global concurrent executor.
    var onConnectionExecutor = false

    static let defaultURL = "amqp://guest:guest@127.0.0.1:5672/"

    static let usage = """
        usage: amqp-bench [options]

        Measures the RabbitMQ Swift library against plain rabbitmq-c C programs doing the same work, alternating
        C and Swift for every measure, and ends with one line per measure, then one CPU line per measure:
          <measure> swift=<value> c=<value> ratio=<swift/c>
          <measure>-cpu swift=<µs/msg> c=<µs/msg> ratio=<swift/c>
        (msgs/s for publish, publish-confirmed, consume and consume-multiple-ack; microseconds for latency-p50 and
        latency-p99; the process's CPU time per message over each side's measured part for the -cpu lines).
        publish is timed until the broker holds every message.

        options:
          --url URL               broker URL (default: $AMQP_URL, else \(defaultURL))
          --repeat N              run every measure N times per side and report medians (default 1)
          --messages N            messages per throughput measure: publish, publish-confirmed and both consumes
                                  (default 200000, 100000 and 200000)
          --latency-messages N    messages of the latency measure (default 5000)
          --rate R                publish rate of the latency measure, messages per second (default 1000)
          --scale F               multiply every message count by F, e.g. 0.1 for a quick run (default 1)
          --measures LIST         comma-separated subset of: \(Measure.allCases.map(\.rawValue).joined(separator: ","))
                                  (default: all)
          --log-level LEVEL       library log level on stderr: trace, debug, info, notice, warning, error,
                                  critical (default warning)
          --tracer KIND           none (default: no tracer, tracing costs a nil check) or counting (a tracer that
                                  makes, propagates and ends every span as a real one would, without exporting)
          --executor KIND         where the Swift side's publishing and consuming tasks run: global (default: the
                                  global concurrent executor, as most applications run) or connection (each
                                  connection's I/O thread, AMQPConnection.taskExecutor)
          -h, --help              show this help
        """

    /// Why parsing stopped without options to run with.
    enum Stop: Error {
        /// `--help`: print the usage and succeed.
        case help
        /// Bad input: print the message and the usage, and fail.
        case invalid(String)
    }

    /// Parses the arguments (without the program name). Options take their value as the next argument or after `=`.
    static func parse(_ arguments: [String], environment: [String: String]) throws(Stop) -> BenchmarkOptions {
        var options = BenchmarkOptions(url: environment["AMQP_URL"].flatMap { $0.isEmpty ? nil : $0 } ?? defaultURL)
        var scale = 1.0
        var messages: Int?
        var remaining = arguments[...]
        while let argument = remaining.popFirst() {
            if argument == "-h" || argument == "--help" { throw .help }
            guard argument.hasPrefix("--") else { throw .invalid("unexpected argument '\(argument)'") }
            let name: String
            var value: String?
            if let equals = argument.firstIndex(of: "=") {
                name = String(argument[..<equals])
                value = String(argument[argument.index(after: equals)...])
            } else {
                name = argument
            }
            func takeValue() throws(Stop) -> String {
                if let value { return value }
                guard let next = remaining.popFirst() else { throw .invalid("\(name) needs a value") }
                return next
            }
            switch name {
            case "--url":
                options.url = try takeValue()
            case "--repeat":
                options.repetitions = try positiveInteger(takeValue(), name)
            case "--messages":
                messages = try positiveInteger(takeValue(), name)
            case "--latency-messages":
                options.latencyMessages = try positiveInteger(takeValue(), name)
            case "--rate":
                options.latencyRate = try positiveNumber(takeValue(), name)
                guard options.latencyRate <= 1_000_000 else { throw .invalid("--rate must be at most 1000000") }
            case "--scale":
                scale = try positiveNumber(takeValue(), name)
            case "--measures":
                options.measures = try measureList(takeValue())
            case "--log-level":
                let text = try takeValue()
                guard let level = Logger.Level(rawValue: text.lowercased()) else {
                    throw .invalid("unknown log level '\(text)'")
                }
                options.logLevel = level
            case "--tracer":
                switch try takeValue() {
                case "none": options.tracing = false
                case "counting": options.tracing = true
                case let other: throw .invalid("--tracer takes none or counting, not '\(other)'")
                }
            case "--executor":
                switch try takeValue() {
                case "global": options.onConnectionExecutor = false
                case "connection": options.onConnectionExecutor = true
                case let other: throw .invalid("--executor takes global or connection, not '\(other)'")
                }
            default:
                throw .invalid("unknown option '\(name)'")
            }
        }
        if let messages {
            options.publishMessages = messages
            options.confirmedMessages = messages
            options.consumeMessages = messages
        }
        // Scaled last, so `--messages 50000 --scale 0.1` means 5000; every measure keeps at least one message.
        func scaled(_ count: Int) -> Int { max(1, Int((Double(count) * scale).rounded())) }
        options.publishMessages = scaled(options.publishMessages)
        options.confirmedMessages = scaled(options.confirmedMessages)
        options.consumeMessages = scaled(options.consumeMessages)
        options.latencyMessages = scaled(options.latencyMessages)
        return options
    }

    private static func positiveInteger(_ text: String, _ name: String) throws(Stop) -> Int {
        guard let value = Int(text), value > 0 else {
            throw .invalid("\(name) needs a positive integer, not '\(text)'")
        }
        return value
    }

    private static func positiveNumber(_ text: String, _ name: String) throws(Stop) -> Double {
        guard let value = Double(text), value.isFinite, value > 0 else {
            throw .invalid("\(name) needs a positive number, not '\(text)'")
        }
        return value
    }

    private static func measureList(_ text: String) throws(Stop) -> [Measure] {
        var chosen = Set<Measure>()
        for name in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard let measure = Measure(rawValue: String(name)) else {
                throw .invalid("unknown measure '\(name)' in --measures")
            }
            chosen.insert(measure)
        }
        // Always in the canonical order, whatever order the list gave, so summaries of different runs line up.
        return Measure.allCases.filter(chosen.contains)
    }
}

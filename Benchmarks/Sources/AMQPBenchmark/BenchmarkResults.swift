import Foundation

/// One kind of work both sides do: the five workloads of issue 12 (W1, W2, W3a, W3m, W4).
enum Measure: String, CaseIterable, Hashable {
    /// W1: publishing without confirms, timed until the broker holds every message.
    case publish
    /// W2: publishing with confirms over a window of outstanding messages, timed until every confirm arrived.
    case publishConfirmed = "publish-confirmed"
    /// W3a: consuming a full queue with a prefetch and one ack per message, timed until the last ack.
    case consume
    /// W3m: the same with one `multiple` ack every ``multipleAckEvery`` messages and one after the last.
    case consumeMultipleAck = "consume-multiple-ack"
    /// W4: publish-to-delivery time at a low, fixed rate; reported as two summary lines, p50 and p99.
    case latency

    /// How many deliveries one `multiple` ack of ``consumeMultipleAck`` covers.
    static let multipleAckEvery = 100

    /// Deliveries per ack: 1 for one ack per message.
    var ackEvery: Int { self == .consumeMultipleAck ? Self.multipleAckEvery : 1 }
}

/// What one side's call measured, as it came out of the call.
struct Measurement: Sendable {
    var sample: Sample
    /// The whole process's CPU time over the measured part. Only one side works at a time, so it is that side's.
    var cpuSeconds: Double
    /// `CLOCK_MONOTONIC` (``MonotonicClock``) when the measured part began, for a measure whose end the runner
    /// times itself (`publish`: when the broker holds every message).
    var startNanoseconds: Int64
}

/// Who does the work: the Swift library or the plain rabbitmq-c program.
enum Side: String {
    case c
    case swift
}

/// What one side measured in one run of one measure.
enum Sample: Sendable, CustomStringConvertible {
    /// `messages` done in `seconds`.
    case throughput(messages: Int, seconds: Double)
    /// Every message's publish-to-delivery time in microseconds, sorted ascending.
    case latency(sortedMicroseconds: [Double])

    /// The sample as one human-readable line.
    var description: String {
        switch self {
        case .throughput(let messages, let seconds):
            return "\(messages) msgs in " + String(format: "%.3f s = %.0f msgs/s", seconds, Double(messages) / seconds)
        case .latency(let sorted):
            return "\(sorted.count) msgs: "
                + String(
                    format: "p50 %.1f µs, p99 %.1f µs, max %.1f µs", Statistics.percentile(50, ofSorted: sorted),
                    Statistics.percentile(99, ofSorted: sorted), sorted.last ?? .nan)
        }
    }
}

/// Collects every sample and turns them into the final summary lines.
struct BenchmarkSummary {
    /// One summary line: its values per side over the repetitions.
    private struct Line {
        let name: String
        /// The value's unit, which sets how it is printed.
        let unit: Unit
        var swift: [Double] = []
        var c: [Double] = []
    }

    private enum Unit {
        case messagesPerSecond
        case microseconds
        /// CPU microseconds per message, finer than a latency: a client spends a few per message.
        case cpuMicroseconds
    }

    private var lines: [Line] = []

    /// The lines in the order they print: every measure's own, then every measure's CPU line, so the one-line-per-
    /// measure block reads as before and the CPU block follows it.
    init(measures: [Measure]) {
        for measure in measures {
            switch measure {
            case .latency:
                lines.append(Line(name: "latency-p50", unit: .microseconds))
                lines.append(Line(name: "latency-p99", unit: .microseconds))
            case .publish, .publishConfirmed, .consume, .consumeMultipleAck:
                lines.append(Line(name: measure.rawValue, unit: .messagesPerSecond))
            }
        }
        for measure in measures {
            lines.append(Line(name: "\(measure.rawValue)-cpu", unit: .cpuMicroseconds))
        }
    }

    /// Records one side's sample and its CPU time per message, in microseconds.
    mutating func record(_ sample: Sample, cpuMicrosecondsPerMessage: Double, of measure: Measure, by side: Side) {
        append(cpuMicrosecondsPerMessage, to: "\(measure.rawValue)-cpu", by: side)
        switch sample {
        case .throughput(let messages, let seconds):
            append(Double(messages) / seconds, to: measure.rawValue, by: side)
        case .latency(let sorted):
            append(Statistics.percentile(50, ofSorted: sorted), to: "latency-p50", by: side)
            append(Statistics.percentile(99, ofSorted: sorted), to: "latency-p99", by: side)
        }
    }

    private mutating func append(_ value: Double, to name: String, by side: Side) {
        guard let index = lines.firstIndex(where: { $0.name == name }) else { return }
        switch side {
        case .swift: lines[index].swift.append(value)
        case .c: lines[index].c.append(value)
        }
    }

    /// `<name> swift=<median> c=<median> ratio=<swift/c>`, one per line, in measure order. The ratio is Swift over C
    /// for throughput, latency and CPU alike: above 1 is better for throughput, worse for latency and CPU.
    var formattedLines: [String] {
        lines.map { line in
            let swift = Statistics.median(line.swift)
            let c = Statistics.median(line.c)
            let format =
                switch line.unit {
                case .messagesPerSecond: "%.0f"
                case .microseconds: "%.1f"
                case .cpuMicroseconds: "%.2f"
                }
            return "\(line.name) swift=\(String(format: format, swift)) c=\(String(format: format, c)) "
                + "ratio=\(String(format: "%.3f", swift / c))"
        }
    }
}

import Foundation

/// One kind of work both sides do.
enum Measure: String, CaseIterable, Hashable {
    /// Publishing without confirms, timed until the last publish call returned.
    case publish
    /// Publishing with confirms over a window of outstanding messages, timed until every confirm arrived.
    case publishConfirmed = "publish-confirmed"
    /// Consuming a full queue with a prefetch and one ack per message, timed until the last ack.
    case consume
    /// Publish-to-delivery time at a low, fixed rate; reported as two summary lines, p50 and p99.
    case latency
}

/// Who does the work: the Swift library or the plain rabbitmq-c program.
enum Side: String {
    case c
    case swift
}

/// What one side measured in one run of one measure.
enum Sample: CustomStringConvertible {
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
        /// Whether the value is a latency in microseconds (else a throughput in messages per second).
        let isLatency: Bool
        var swift: [Double] = []
        var c: [Double] = []
    }

    private var lines: [Line] = []

    init(measures: [Measure]) {
        for measure in measures {
            switch measure {
            case .latency:
                lines.append(Line(name: "latency-p50", isLatency: true))
                lines.append(Line(name: "latency-p99", isLatency: true))
            case .publish, .publishConfirmed, .consume:
                lines.append(Line(name: measure.rawValue, isLatency: false))
            }
        }
    }

    mutating func record(_ sample: Sample, of measure: Measure, by side: Side) {
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
    /// for throughput and latency alike: above 1 is better for throughput, worse for latency.
    var formattedLines: [String] {
        lines.map { line in
            let swift = Statistics.median(line.swift)
            let c = Statistics.median(line.c)
            let format = line.isLatency ? "%.1f" : "%.0f"
            return "\(line.name) swift=\(String(format: format, swift)) c=\(String(format: format, c)) "
                + "ratio=\(String(format: "%.3f", swift / c))"
        }
    }
}

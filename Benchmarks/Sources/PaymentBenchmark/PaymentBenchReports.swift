import Foundation
import PaymentService

/// How `payment-bench` prints each measure's result: human-readable lines as it goes, and the machine lines it
/// returns for the summary at the end.
extension PaymentBench {
    /// Prints the latency measure of one delay mode; returns its machine lines.
    func report(_ result: LatencyBenchmark.Result, mode: DelayMode) -> [String] {
        let name = mode.rawValue
        print(
            "latency \(name): processed=\(result.processed) parked=\(result.parked) missing=\(result.missing) "
                + "duplicate_outcomes=\(result.duplicates); payments published in "
                + "\(fixed(result.publishDuration.milliseconds, 0)) ms")
        print("  service counters: \(result.service.map { "\($0)" } ?? "-")")
        printSummary("realised lag (registration − payment publish)", result.lag)
        printSummary("registration publish → processed", result.afterRegistration)
        printSummary("payment publish → processed", result.endToEnd)
        printSummary("schedule alone, wait after registration", result.predictedWait)
        printSummary("measured − schedule, per payment", result.excess)
        if let firstPass = result.firstPass {
            print(
                "  first pass: every payment's first attempt started \(fixed(firstPass.milliseconds, 0)) ms after "
                    + "the first publish (\(fixed(Double(payments) / firstPass.seconds, 0)) first attempts/s)")
            printSummary(
                "schedule from estimated first attempt, wait after registration", result.predictedFromFirstSight)
            printSummary("measured − schedule from estimated first attempt", result.excessFromFirstSight)
            print("  lateness: outcome − (estimated first attempt + T_n) for n retries, ms:")
            for (retries, summary) in result.lateness {
                print(
                    "    \(retries) retries (\(summary.count) payments): p50 \(fixed(summary.p50)) "
                        + "p99 \(fixed(summary.p99)) max \(fixed(summary.max))")
            }
            print("    payments with more retries than that schedule predicts: \(result.extraRetries)")
            if let hop = result.hopReference {
                print(
                    "  reference, broker alone: \(hop.count) persistent messages in a burst through a 1 s TTL queue "
                        + "into a consumed durable queue arrive late by p50 \(fixed(hop.p50)) p99 \(fixed(hop.p99)) "
                        + "max \(fixed(hop.max)) ms")
            }
        } else {
            print("  first pass: not timed (it overlapped the first retries)")
        }
        if let retries = result.retries, let predicted = result.predictedRetries {
            print(
                "  retries per payment: mean \(fixed(retries.mean, 2)) max \(fixed(retries.max, 0)); "
                    + "schedule alone: mean \(fixed(predicted.mean, 2)) max \(fixed(predicted.max, 0))")
        }
        var lines: [String] = []
        lines.append(line("registration_to_processed", name, result.afterRegistration, retries: result.retries))
        lines.append(line("payment_to_processed", name, result.endToEnd, retries: result.retries))
        lines.append(line("schedule_prediction", name, result.predictedWait, retries: result.predictedRetries))
        return lines
    }

    /// Prints one scale-out run; returns its machine lines (and a target line when holding is on).
    func report(
        _ result: ScaleOutBenchmark.Result, name: String, instances: Int, hold: HoldPolicy
    ) -> [String] {
        print(
            "\(name): processed=\(result.processed) parked=\(result.parked) missing=\(result.missing) "
                + "duplicate_outcomes=\(result.duplicates) unreadable=\(result.unreadable); published in "
                + "\(fixed(result.publishDuration.milliseconds, 0)) ms, last outcome "
                + "\(fixed(result.runDuration.milliseconds, 0)) ms after the first publish")
        for (index, snapshot) in result.services.enumerated() {
            print("  instance \(index + 1) counters: \(snapshot)")
        }
        let held = result.peakHeld.map(String.init).joined(separator: ", ")
        print("  peak held (sampled every ms): per instance [\(held)], all together \(result.peakHeldTotal)")
        printSummary("realised lag (registration − payment publish)", result.lag)
        printSummary("registration publish → processed", result.afterRegistration)
        printSummary("payment publish → processed", result.endToEnd)
        printSummary("registration publish → read from the clients stream", result.registrationToStream)
        printSummary("read from the clients stream → processed", result.streamToProcessed)
        if result.byRetries.contains(where: { $0.retries > 0 }) {
            printSummary(
                "  no retry only: registration publish → read from the stream", result.registrationToStreamNoRetry)
            printSummary("  no retry only: read from the stream → processed", result.streamToProcessedNoRetry)
        }
        printSummary("benchmark's publish lateness against its schedule", result.publishLateness)
        printSummary("benchmark's payment publish → confirm (broker alone)", result.paymentConfirm)
        printSummary("benchmark's registration publish → confirm (broker alone)", result.registrationConfirm)
        print(
            "  longest pause of a 1 ms sampling loop in this process: "
                + "\(fixed(result.longestSamplerGap.milliseconds)) ms, ending "
                + "\(fixed(result.longestSamplerGapAt.milliseconds, 0)) ms after the first publish")
        if result.brokerBlocked > .zero {
            print(
                "  the broker blocked publishing (a resource alarm) for "
                    + "\(fixed(result.brokerBlocked.milliseconds, 0)) ms during the run")
        }
        if let slow = result.slow {
            print(
                "  registrations over 50 ms to processed: \(slow.count), published between "
                    + "\(fixed(slow.first, 0)) and \(fixed(slow.last, 0)) ms after the first publish")
        }
        if result.unseenRegistrations > 0 {
            print("  registrations the benchmark never read from the stream: \(result.unseenRegistrations)")
        }
        print(
            "  processed by retries: "
                + result.byRetries.map { "\($0.retries)→\($0.count)" }.joined(separator: " "))
        let left = result.leftover.filter { $0.messages > 0 }
        print(
            "  ready messages left once every outcome was in: "
                + (left.isEmpty ? "none" : left.map { "\($0.queue)=\($0.messages)" }.joined(separator: " ")))
        if let retries = result.retries {
            print("  retries per payment: mean \(fixed(retries.mean, 3)) max \(fixed(retries.max, 0))")
        }

        var lines: [String] = []
        let holdName = hold == .off ? "off" : "on"
        if let summary = result.afterRegistration, let retries = result.retries {
            lines.append(
                "scaleout instances=\(instances) hold=\(holdName) p50_ms=\(fixed(summary.p50)) "
                    + "p99_ms=\(fixed(summary.p99)) max_ms=\(fixed(summary.max)) "
                    + "retries_mean=\(fixed(retries.mean, 3)) retries_max=\(fixed(retries.max, 0)) "
                    + "payments=\(scaleoutPayments) duplicates=\(result.duplicates) parked=\(result.parked) "
                    + "missing=\(result.missing)")
            if result.brokerBlocked > .zero {
                lines.append(
                    "scaleout_note instances=\(instances) hold=\(holdName) broker_blocked_ms="
                        + "\(fixed(result.brokerBlocked.milliseconds, 0)) (a memory or disk alarm: not the service)")
            }
            if hold != .off {
                let latency = summary.p99 < 50 ? "met" : "missed"
                let retried = retries.mean < 0.05 ? "met" : "missed"
                lines.append(
                    "scaleout_target instances=\(instances) hold=on p99_under_50ms=\(latency) "
                        + "(\(fixed(summary.p99))) retries_under_0.05=\(retried) (\(fixed(retries.mean, 3)))")
            }
        } else {
            lines.append(
                "scaleout instances=\(instances) hold=\(holdName) no-sample payments=\(scaleoutPayments) "
                    + "duplicates=\(result.duplicates) parked=\(result.parked) missing=\(result.missing)")
        }
        return lines
    }

    /// Prints the throughput passes and the reference; returns the machine line with the median round's ratio.
    func report(_ result: ThroughputBenchmark.Result) -> [String] {
        let ratio = result.consumerOnly.rate / result.reference.rate
        for (label, pass) in [("end-to-end", result.endToEnd), ("consumer-only", result.consumerOnly)] {
            print(
                "throughput \(label): \(pass.outcomes)/\(throughputPayments) outcomes in "
                    + "\(fixed(pass.duration.milliseconds, 0)) ms = \(fixed(pass.rate, 0)) payments/s; "
                    + "first outcome after \(fixed(pass.firstOutcome.milliseconds, 1)) ms; "
                    + "publishing with confirms took \(fixed(pass.publishing.milliseconds, 0)) ms "
                    + "(\(fixed(Double(throughputPayments) / pass.publishing.seconds, 0)) /s); "
                    + "not processed at attempt 1: \(pass.anomalies)")
            print("  service counters: \(pass.service.map { "\($0)" } ?? "-")")
        }
        print(
            "throughput reference (no service: consume → publish with confirm → ack, prefetch 100, 32 at once, "
                + "pre-published): \(result.reference.handled) messages in "
                + "\(fixed(result.reference.duration.milliseconds, 0)) ms = \(fixed(result.reference.rate, 0)) /s; "
                + "consumer-only reaches \(fixed(100 * ratio, 0))% of it (the median of \(result.ratios.count) "
                + "alternating rounds: \(result.ratios.map { "\(fixed(100 * $0, 0))%" }.joined(separator: ", ")))")
        print(
            "throughput reference, retry path (the same, publishing to a durable queue as a retry does): "
                + "\(result.referenceDurable.handled) messages in "
                + "\(fixed(result.referenceDurable.duration.milliseconds, 0)) ms = "
                + "\(fixed(result.referenceDurable.rate, 0)) /s")
        return [
            "throughput known-clients end_to_end_per_s=\(fixed(result.endToEnd.rate, 0)) "
                + "consumer_only_per_s=\(fixed(result.consumerOnly.rate, 0)) "
                + "reference_per_s=\(fixed(result.reference.rate, 0)) ratio=\(fixed(ratio, 2)) "
                + "ratios=\(result.ratios.map { fixed($0, 2) }.joined(separator: ",")) "
                + "target_0.7=\(ratio >= 0.7 ? "met" : "missed")"
        ]
    }

    /// One line of percentiles, or "no sample".
    func printSummary(_ label: String, _ summary: Summary?) {
        guard let summary else {
            print("  \(label): no sample")
            return
        }
        print(
            "  \(label) ms: p50 \(fixed(summary.p50)) p95 \(fixed(summary.p95)) p99 \(fixed(summary.p99)) "
                + "max \(fixed(summary.max)) mean \(fixed(summary.mean))")
    }

    /// The machine line of a latency measure.
    func line(_ measure: String, _ mode: String, _ summary: Summary?, retries: Summary?) -> String {
        guard let summary, let retries else { return "\(measure) \(mode) no-sample" }
        return "\(measure) \(mode) p50_ms=\(fixed(summary.p50)) p99_ms=\(fixed(summary.p99)) "
            + "max_ms=\(fixed(summary.max)) retries_mean=\(fixed(retries.mean, 2)) retries_max=\(fixed(retries.max, 0))"
    }
}

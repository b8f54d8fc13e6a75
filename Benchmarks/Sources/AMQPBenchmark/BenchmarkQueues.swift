import Foundation
import RabbitMQ

/// The queues of one run, managed over a connection of their own that stays out of every measurement.
///
/// The Swift side declares every queue, because the C programs expect theirs to exist. Every queue is fresh
/// (uniquely named, non-durable) and deleted once its measure is done; whatever an error leaves behind goes in
/// ``deleteRemaining()``, and the broker drops any queue still left ten minutes after it was last used.
final class BenchmarkQueues {
    private let channel: AMQPChannel
    private let runID: String
    private var declared: [String] = []

    /// How long the broker keeps a queue nobody uses (`x-expires`): far longer than any measure takes, so it only
    /// matters for a run that was killed before it could delete its queues.
    private static let expiryMilliseconds: Int32 = 600_000
    /// How long the broker may take to make a queue's message count what it should be.
    private static let settleLimit = Duration.seconds(60)

    init(channel: AMQPChannel) {
        self.channel = channel
        // The pid and a random suffix keep parallel or repeated runs on one broker apart.
        runID = "\(ProcessInfo.processInfo.processIdentifier)-\(UInt32.random(in: 0...UInt32.max))"
    }

    /// Declares a new, empty queue for one side of one repetition of a measure and returns its name.
    func fresh(_ measure: Measure, _ side: Side, repetition: Int) async throws -> String {
        let name = "amqp-bench-\(runID)-\(measure.rawValue)-\(repetition)-\(side.rawValue)"
        _ = try await channel.declareQueue(
            name, durable: false, exclusive: false, autoDelete: false,
            arguments: ["x-expires": .int32(Self.expiryMilliseconds)])
        declared.append(name)
        return name
    }

    /// Waits until the queue's ready-message count is exactly `expected`, polling with passive declares `every` so
    /// often (finer when the wait is part of a measure).
    ///
    /// Publishing returns before the broker has enqueued every message, and acks of a closed consumer settle shortly
    /// after it closed; this is how the run makes sure each side really did all its work.
    func waitForMessageCount(_ queue: String, _ expected: Int, every interval: Duration = .milliseconds(10))
        async throws
    {
        let clock = ContinuousClock()
        let deadline = clock.now + Self.settleLimit
        var count = -1
        while clock.now < deadline {
            count = Int(try await channel.declareQueue(queue, passive: true).messageCount)
            if count == expected { return }
            try await Task.sleep(for: interval)
        }
        throw BenchmarkError(
            "queue \(queue) holds \(count) messages instead of \(expected) after \(Self.settleLimit)")
    }

    /// Empties and deletes a queue whose measure is done.
    func remove(_ queue: String) async throws {
        try await channel.purgeQueue(queue)
        try await channel.deleteQueue(queue)
        declared.removeAll { $0 == queue }
    }

    /// Deletes every queue this run declared and has not removed yet; returns the ones that could not be deleted.
    func deleteRemaining() async -> [String] {
        var failed: [String] = []
        for queue in declared {
            do {
                try await channel.deleteQueue(queue)
            } catch {
                failed.append(queue)
            }
        }
        declared = failed
        return failed
    }
}

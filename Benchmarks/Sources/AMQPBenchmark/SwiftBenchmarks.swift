import Foundation
import Logging
import RabbitMQ

/// The Swift library doing the work of the C programs, the way an application would write it.
///
/// Like the C functions, every measure opens its own connection(s) and channel, sets them up outside the measured
/// time, and closes them afterwards; the clocks (wall and process CPU) run only around the work itself, with the
/// same start and end points as the C side.
struct SwiftBenchmarks: Sendable {
    let configuration: AMQPConfiguration
    let logger: Logger
    /// Whether the publishing and consuming tasks run on their connection's I/O thread (`--executor connection`).
    let onConnectionExecutor: Bool

    /// Publishes `count` messages without confirms; measured until `close()` returned, like the C side.
    ///
    /// A returning `publish` does not mean the broker has the message (the library has only queued it for its I/O
    /// thread, up to 4,096 publishes ahead; `amqp_basic_publish` in C has written it to the socket), so the two sides
    /// cannot stop their clocks there: the runner times until the broker holds every message, from the returned start.
    func publish(queue: String, count: Int, size: Int) async throws -> Measurement {
        let connection = try await connect(named: "bench-pub")
        let body = Data(repeating: UInt8(ascii: "x"), count: size)
        let cpuStart: Int64
        let start: Int64
        do {
            let channel = try await connection.openChannel()
            cpuStart = ProcessCPUClock.nanoseconds()
            start = MonotonicClock.nanoseconds()
            try await withTaskExecutorPreference(executor(of: connection)) {
                for _ in 0..<count {
                    try await channel.publish(body, routingKey: queue)
                }
            }
        } catch {
            try? await connection.close()
            throw error
        }
        try await connection.close()
        return Measurement(
            sample: .throughput(
                messages: count, seconds: MonotonicClock.seconds(from: start, to: MonotonicClock.nanoseconds())),
            cpuSeconds: Self.cpuSeconds(since: cpuStart), startNanoseconds: start)
    }

    /// Publishes `count` messages in confirm mode with at most `window` unconfirmed; timed until every confirm
    /// arrived.
    ///
    /// The confirmations wait in a ring of `window` slots, oldest first: before a publish reuses a slot, the confirm
    /// in it is awaited. With in-order confirms that wait is already settled when the window has room, so it costs
    /// no pause, and memory stays bounded however many messages go out.
    func publishConfirmed(queue: String, count: Int, size: Int, window: Int) async throws -> Measurement {
        try await withConnection(named: "bench-conf") { channel, connection in
            try await withTaskExecutorPreference(executor(of: connection)) {
                try await channel.enablePublisherConfirms(maxOutstanding: window)
                let body = Data(repeating: UInt8(ascii: "x"), count: size)
                var ring = [AMQPPublishConfirmation?](repeating: nil, count: window)
                let cpuStart = ProcessCPUClock.nanoseconds()
                let start = MonotonicClock.nanoseconds()
                for index in 0..<count {
                    let slot = index % window
                    if let oldest = ring[slot] {
                        try await oldest.wait()
                    }
                    guard let confirmation = try await channel.startPublish(body, routingKey: queue) else {
                        throw BenchmarkError("the channel is not in confirm mode after enablePublisherConfirms")
                    }
                    ring[slot] = confirmation
                }
                // What is left in the ring, oldest first: the slot after the last one written.
                for offset in 0..<window {
                    try await ring[(count + offset) % window]?.wait()
                }
                let end = MonotonicClock.nanoseconds()
                return Measurement(
                    sample: .throughput(messages: count, seconds: MonotonicClock.seconds(from: start, to: end)),
                    cpuSeconds: Self.cpuSeconds(since: cpuStart), startNanoseconds: start)
            }
        }
    }

    /// Consumes `count` messages already in the queue with a prefetch; timed from the consume-ok (when `consume`
    /// returns) to the last `ack`. With `ackEvery` 1 every delivery is acknowledged on its own; with N, every N-th
    /// delivery and the last are acknowledged with `multiple`, covering the ones before.
    func consume(queue: String, count: Int, prefetch: UInt16, ackEvery: Int) async throws -> Measurement {
        try await withConnection(named: "bench-cons") { channel, connection in
            try await channel.setPrefetch(prefetch)
            let consumer = try await channel.consume(queue: queue)
            let cpuStart = ProcessCPUClock.nanoseconds()
            let start = MonotonicClock.nanoseconds()
            var received = 0
            try await withTaskExecutorPreference(executor(of: connection)) {
                for try await delivery in consumer {
                    received += 1
                    // Handled as an application would, in its process span (a no-op without a tracer).
                    if ackEvery == 1 {
                        try await delivery.process { _ in try await delivery.ack() }
                    } else if received.isMultiple(of: ackEvery) || received == count {
                        try await delivery.process { _ in try await delivery.ack(multiple: true) }
                    } else {
                        try await delivery.process { _ in }
                    }
                    if received == count { break }
                }
            }
            let end = MonotonicClock.nanoseconds()
            let cpu = Self.cpuSeconds(since: cpuStart)
            guard received == count else {
                throw BenchmarkError("the Swift consumer ended after \(received) of \(count) messages")
            }
            try await consumer.cancel()
            return Measurement(
                sample: .throughput(messages: count, seconds: MonotonicClock.seconds(from: start, to: end)),
                cpuSeconds: cpu, startNanoseconds: start)
        }
    }

    /// Publish-to-delivery latency of `count` messages sent at `rate` per second, as the C program measures it: a
    /// consuming connection (prefetch 100, one ack per message) and a publishing connection, each body carrying its
    /// `CLOCK_MONOTONIC` send time in its first 8 bytes (host byte order, zero-padded to `size`).
    ///
    /// The publisher keeps an open-loop schedule, message `i` due at `start + i / rate`, so a late message does not
    /// delay the following ones; it stamps the body right before `publish`. The consumer stamps the receive time as
    /// soon as the delivery comes out of the sequence, before acknowledging it.
    func latency(queue: String, count: Int, size: Int, rate: Double) async throws -> Measurement {
        try await withConnection(named: "bench-recv") { consumerChannel, consumerConnection in
            try await consumerChannel.setPrefetch(100)
            // Consumer first, as in C, so that no message waits in the queue for a consumer to appear.
            let consumer = try await consumerChannel.consume(queue: queue)
            // Measured from the first scheduled publish, both connections up, to the end of both tasks, as in C.
            let (latencies, cpu, start) = try await withConnection(named: "bench-send") {
                publisherChannel, publisherConnection in
                try await withThrowingTaskGroup(of: [Double]?.self) { group in
                    let cpuStart = ProcessCPUClock.nanoseconds()
                    let start = MonotonicClock.nanoseconds()
                    group.addTask(executorPreference: executor(of: consumerConnection)) {
                        try await receiveStamped(from: consumer, count: count)
                    }
                    group.addTask(executorPreference: executor(of: publisherConnection)) {
                        try await publishOnSchedule(
                            to: publisherChannel, queue: queue, count: count, size: size, rate: rate, start: start)
                        return nil
                    }
                    var latencies: [Double] = []
                    // The first error (either side) ends the measure; the group cancels the other task.
                    for try await result in group {
                        if let result { latencies = result }
                    }
                    return (latencies, Self.cpuSeconds(since: cpuStart), start)
                }
            }
            try await consumer.cancel()
            return Measurement(
                sample: .latency(sortedMicroseconds: latencies.sorted()), cpuSeconds: cpu, startNanoseconds: start)
        }
    }

    /// The latency measure's consumer: the receive time minus the stamped send time of each delivery, in µs.
    private func receiveStamped(from consumer: AMQPConsumer, count: Int) async throws -> [Double] {
        var latencies: [Double] = []
        latencies.reserveCapacity(count)
        for try await delivery in consumer {
            let now = MonotonicClock.nanoseconds()
            guard delivery.body.count >= MemoryLayout<Int64>.size else {
                throw BenchmarkError(
                    "a latency message has a \(delivery.body.count)-byte body, too short for a timestamp")
            }
            let sent = delivery.body.withUnsafeBytes { $0.loadUnaligned(as: Int64.self) }
            try await delivery.ack()
            latencies.append(Double(now - sent) / 1e3)
            if latencies.count == count { break }
        }
        guard latencies.count == count else {
            throw BenchmarkError("the Swift latency consumer ended after \(latencies.count) of \(count) messages")
        }
        return latencies
    }

    /// The latency measure's publisher.
    private func publishOnSchedule(
        to channel: AMQPChannel, queue: String, count: Int, size: Int, rate: Double, start: Int64
    ) async throws {
        let template = Data(count: size)  // zero padding after the timestamp
        let interval = 1e9 / rate
        for index in 0..<count {
            // Computed from the start every time, so rounding does not accumulate into drift.
            let due = start + Int64(Double(index) * interval)
            let wait = due - MonotonicClock.nanoseconds()
            if wait > 0 {
                try await Task.sleep(for: .nanoseconds(wait), tolerance: .zero)
            }
            var body = template
            let sent = MonotonicClock.nanoseconds()
            body.withUnsafeMutableBytes { $0.storeBytes(of: sent, as: Int64.self) }
            try await channel.publish(body, routingKey: queue)
        }
    }

    /// The process's CPU seconds since `start`, a ``ProcessCPUClock`` reading.
    private static func cpuSeconds(since start: Int64) -> Double {
        Double(ProcessCPUClock.nanoseconds() - start) / 1e9
    }

    /// The executor the measure's tasks prefer: the connection's I/O thread with `--executor connection`, else none.
    private func executor(of connection: AMQPConnection) -> (any TaskExecutor)? {
        onConnectionExecutor ? connection.taskExecutor : nil
    }

    /// Opens a connection and a channel for `body`, and closes the connection afterwards, also when `body` throws.
    private func withConnection<T: Sendable>(
        named name: String, _ body: (AMQPChannel, AMQPConnection) async throws -> T
    ) async throws -> T {
        let connection = try await connect(named: name)
        let result: T
        do {
            result = try await body(connection.openChannel(), connection)
        } catch {
            try? await connection.close()
            throw error
        }
        try await connection.close()
        return result
    }

    /// Connects under a name of its own, so the broker's management UI tells the benchmark's connections apart.
    ///
    /// The library names its I/O thread after the connection too (`amqp-` and the name), though Foundation does not
    /// pass that name on to the system on Linux; the names stay under Linux's 15-byte limit for when it does.
    private func connect(named name: String) async throws -> AMQPConnection {
        var configuration = configuration
        configuration.connectionName = name
        return try await AMQPConnection.connect(configuration: configuration, logger: logger)
    }
}

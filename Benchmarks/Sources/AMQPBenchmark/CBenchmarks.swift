internal import CBenchmark

/// The plain rabbitmq-c programs of the `CBenchmark` target, called with the same work as the Swift side.
///
/// Each C function opens its own connection, does its work on the calling thread and closes cleanly; they block, so
/// every call runs on a dedicated thread (``runOnDedicatedThread(named:_:)``).
struct CBenchmarks: Sendable {
    let host: String
    let port: Int
    let user: String
    let password: String
    let virtualHost: String

    /// Measured until the connection is closed; the runner then times until the broker holds every message.
    func publish(queue: String, count: Int, size: Int) async throws -> Measurement {
        try await call("publish", thread: "c-publish", queue: queue, expected: count) { target, queue, result in
            cbench_publish(target, queue, UInt64(count), size, result)
        }
    }

    /// Loads a queue for the consume measure, outside any measured time. The C program does it so that the Swift
    /// library's threads stay idle meanwhile and a profile of the run shows only the measured work on the Swift side.
    func fill(queue: String, count: Int, size: Int) async throws {
        _ = try await call("fill", thread: "c-fill", queue: queue, expected: count) { target, queue, result in
            cbench_publish(target, queue, UInt64(count), size, result)
        }
    }

    func publishConfirmed(queue: String, count: Int, size: Int, window: Int) async throws -> Measurement {
        try await call("publish-confirmed", thread: "c-confirmed", queue: queue, expected: count) {
            target, queue, result in
            cbench_publish_confirmed(target, queue, UInt64(count), size, UInt32(window), result)
        }
    }

    func consume(queue: String, count: Int, prefetch: UInt16, ackEvery: Int) async throws -> Measurement {
        try await call("consume", thread: "c-consume", queue: queue, expected: count) { target, queue, result in
            cbench_consume(target, queue, UInt64(count), prefetch, UInt32(ackEvery), result)
        }
    }

    func latency(queue: String, count: Int, size: Int, rate: Double) async throws -> Measurement {
        let outcome = await runOnDedicatedThread(named: "c-latency") {
            var latencies = [Double](repeating: 0, count: count)
            let (status, result) = withTarget(queue: queue) { target, queue, result in
                latencies.withUnsafeMutableBufferPointer { buffer in
                    cbench_latency(target, queue, UInt64(count), size, rate, buffer.baseAddress, result)
                }
            }
            return (status: status, result: result, latencies: latencies)
        }
        try check(outcome.status, outcome.result, "latency", expected: count)
        return Measurement(
            sample: .latency(sortedMicroseconds: outcome.latencies.sorted()), cpuSeconds: outcome.result.cpuSeconds,
            startNanoseconds: outcome.result.startNanoseconds)
    }

    /// Runs one throughput function on its own thread and turns its result into a sample.
    ///
    /// The thread's name tells the C side apart in a profile; Linux ignores names over 15 bytes, hence the short ones.
    private func call(
        _ what: String, thread: String, queue: String, expected: Int,
        _ body: @escaping @Sendable (
            UnsafePointer<cbench_target>, UnsafePointer<CChar>, UnsafeMutablePointer<cbench_result>
        ) -> Int32
    ) async throws -> Measurement {
        let (status, result) = await runOnDedicatedThread(named: thread) {
            withTarget(queue: queue, body)
        }
        try check(status, result, what, expected: expected)
        return Measurement(
            sample: .throughput(messages: Int(result.messages), seconds: result.seconds),
            cpuSeconds: result.cpuSeconds, startNanoseconds: result.startNanoseconds)
    }

    /// Calls `body` with a `cbench_target` and a queue name whose C strings stay valid for the whole call (the
    /// struct holds bare pointers into them), and a zeroed result for the function to fill in.
    private func withTarget(
        queue: String,
        _ body: (UnsafePointer<cbench_target>, UnsafePointer<CChar>, UnsafeMutablePointer<cbench_result>) -> Int32
    ) -> (Int32, CResult) {
        var result = cbench_result()
        let status = host.withCString { host in
            user.withCString { user in
                password.withCString { password in
                    virtualHost.withCString { virtualHost in
                        queue.withCString { queue in
                            var target = cbench_target(
                                host: host, port: Int32(port), user: user, password: password, vhost: virtualHost)
                            return body(&target, queue, &result)
                        }
                    }
                }
            }
        }
        return (status, CResult(result))
    }

    private func check(_ status: Int32, _ result: CResult, _ what: String, expected: Int) throws {
        guard status == 0 else {
            throw BenchmarkError("C \(what) failed: \(result.error.isEmpty ? "status \(status)" : result.error)")
        }
        guard result.messages == expected else {
            throw BenchmarkError("C \(what) completed \(result.messages) of \(expected) messages")
        }
        guard result.seconds > 0 else {
            throw BenchmarkError("C \(what) reported a measured time of \(result.seconds) s")
        }
    }
}

/// A `cbench_result` copied into Swift types, so it can leave the C thread.
struct CResult: Sendable {
    let seconds: Double
    let startNanoseconds: Int64
    let cpuSeconds: Double
    let messages: UInt64
    let error: String

    init(_ result: cbench_result) {
        seconds = result.seconds
        startNanoseconds = result.start_ns
        cpuSeconds = result.cpu_seconds
        messages = result.messages
        // The message is a NUL-terminated string inside the fixed 256-byte array.
        error = withUnsafeBytes(of: result.error) { bytes in
            String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
        }
    }
}

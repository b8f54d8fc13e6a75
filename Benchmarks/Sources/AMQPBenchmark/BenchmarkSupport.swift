import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A failure of the benchmark itself (bad input, a broker that does not hold what it should, a side that failed).
struct BenchmarkError: Error, CustomStringConvertible {
    /// What went wrong, ready to print.
    let description: String

    init(_ description: String) {
        self.description = description
    }
}

/// `CLOCK_MONOTONIC` in nanoseconds: the clock the C programs stamp with, so both sides time the same way, and one
/// clock for the whole process, so a send time stamped on one thread compares with a receive time taken on another.
enum MonotonicClock {
    static func nanoseconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
    }

    /// Seconds from `start` to `end`, both from ``nanoseconds()``.
    static func seconds(from start: Int64, to end: Int64) -> Double {
        Double(end - start) / 1e9
    }
}

/// The CPU time (user and system) of the whole process, all threads, in nanoseconds.
///
/// Throughput and latency on a small machine shared with the broker swing with whatever else runs; the CPU a side
/// spends per message is the steadier figure, and the one that tells where a gap comes from. Only one side works at
/// a time, so the process total during a call is that side's cost (plus the idle admin connection's few wake-ups).
enum ProcessCPUClock {
    static func nanoseconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now)
        return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
    }
}

/// Writes lines to standard output and standard error.
///
/// Each line is one `write(2)`: nothing sits in a stdio buffer, so progress shows up live even when the output is a
/// pipe, and stdout and stderr interleave in the order things happened (the summary must be the very last output).
/// The C `stdout` global would also be shared mutable state under strict concurrency.
enum Console {
    static func out(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }

    static func error(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }
}

/// Order statistics over the samples of one side.
enum Statistics {
    /// The median; for an even count, the mean of the two middle values. `nan` when there are no values.
    static func median(_ values: [Double]) -> Double {
        guard !values.isEmpty else { return .nan }
        let sorted = values.sorted()
        let middle = sorted.count / 2
        return sorted.count.isMultiple(of: 2) ? (sorted[middle - 1] + sorted[middle]) / 2 : sorted[middle]
    }

    /// The nearest-rank percentile (`percent` in 0...100) of values sorted ascending: the smallest value with at
    /// least `percent` % of the values at or below it. No interpolation, so it is always a value that was measured.
    static func percentile(_ percent: Double, ofSorted sorted: [Double]) -> Double {
        guard !sorted.isEmpty else { return .nan }
        let rank = Int((percent / 100 * Double(sorted.count)).rounded(.up))
        return sorted[min(max(rank, 1), sorted.count) - 1]
    }
}

/// Runs blocking code on a thread of its own and awaits its result.
///
/// The C benchmark functions block for seconds in socket calls; run on Swift's cooperative pool (two threads on a
/// two-CPU machine) they would starve every task, including the library's callers. `name` must fit in 15 bytes.
func runOnDedicatedThread<T: Sendable>(named name: String, _ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        let thread = Thread {
            nameCurrentThread(name)
            continuation.resume(returning: body())
        }
        thread.name = name
        thread.start()
    }
}

/// Gives the calling thread a name the system shows (`ps -L`, `top -H`, `perf report --comms`).
///
/// Foundation keeps `Thread.name` to itself on Linux, and `pthread_setname_np` is not visible to Swift without
/// `_GNU_SOURCE`; the kernel's own interface is a write to `/proc/thread-self/comm`. Only a profile misses the name if
/// this fails, so failure is ignored. Linux keeps the first 15 bytes.
private func nameCurrentThread(_ name: String) {
    #if os(Linux)
    let descriptor = open("/proc/thread-self/comm", O_WRONLY)
    guard descriptor >= 0 else { return }
    defer { close(descriptor) }
    let bytes = Array(name.utf8.prefix(15))
    _ = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
    #endif
}

/// Runs `operation` and returns its result, or throws once `limit` has passed without it finishing.
///
/// A broker that drops messages would otherwise leave the benchmark waiting forever for a delivery or a confirm.
/// On timeout the operation is left running (the benchmark reports the error and exits), because not every wait in
/// the library, such as a confirm's, ends when its task is cancelled.
func withTimeLimit<T: Sendable>(
    _ limit: Duration, _ what: String, _ operation: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
        let outcome = FirstOutcome(continuation)
        let timer = Task {
            do {
                try await Task.sleep(for: limit)
            } catch {
                return  // the operation finished first and cancelled the timer
            }
            outcome.resume(with: .failure(BenchmarkError("\(what) did not finish within \(limit)")))
        }
        Task {
            do {
                let value = try await operation()
                timer.cancel()
                outcome.resume(with: .success(value))
            } catch {
                timer.cancel()
                outcome.resume(with: .failure(error))
            }
        }
    }
}

/// Resumes a continuation with whichever result comes first and ignores the rest.
private final class FirstOutcome<T: Sendable>: Sendable {
    private let continuation: Mutex<CheckedContinuation<T, any Error>?>

    init(_ continuation: CheckedContinuation<T, any Error>) {
        self.continuation = Mutex(continuation)
    }

    func resume(with result: Result<T, any Error>) {
        let waiting = continuation.withLock { slot in
            defer { slot = nil }
            return slot
        }
        waiting?.resume(with: result)
    }
}

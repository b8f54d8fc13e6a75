import Synchronization

/// Thrown when a test waited longer than its limit.
struct TestTimeout: Error, CustomStringConvertible {
    let seconds: Double
    let what: String
    var description: String { "timed out after \(seconds) s waiting for \(what)" }
}

/// Runs `body`, failing with ``TestTimeout`` if it takes longer than `seconds`.
///
/// Unlike a task group, this returns at the deadline even when `body` ignores cancellation (a continuation that is
/// never resumed, say): the body is cancelled and left behind, and the test fails instead of hanging.
func withTimeout<T: Sendable>(
    _ seconds: Double, _ what: String, _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    let race = Race<T>()
    return try await withCheckedThrowingContinuation { continuation in
        race.start(continuation)
        let work = Task {
            do {
                race.finish(.success(try await body()))
            } catch {
                race.finish(.failure(error))
            }
        }
        let timer = Task {
            try? await Task.sleep(for: .seconds(seconds))
            if race.finish(.failure(TestTimeout(seconds: seconds, what: what))) { work.cancel() }
        }
        race.onFinish { timer.cancel() }
    }
}

/// The first of two results wins; the other is dropped.
private final class Race<T: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<T, any Error>?
        var finished = false
        var cleanup: (@Sendable () -> Void)?
    }

    private let state = Mutex(State())

    func start(_ continuation: CheckedContinuation<T, any Error>) {
        state.withLock { $0.continuation = continuation }
    }

    /// Runs `cleanup` once the race is decided (at once if it already is).
    func onFinish(_ cleanup: @escaping @Sendable () -> Void) {
        let runNow = state.withLock { state -> Bool in
            if state.finished { return true }
            state.cleanup = cleanup
            return false
        }
        if runNow { cleanup() }
    }

    /// Settles the race with `result`; returns false when it was already settled.
    @discardableResult
    func finish(_ result: Result<T, any Error>) -> Bool {
        let taken = state.withLock { state -> (CheckedContinuation<T, any Error>, (@Sendable () -> Void)?)? in
            guard !state.finished, let continuation = state.continuation else { return nil }
            state.finished = true
            state.continuation = nil
            defer { state.cleanup = nil }
            return (continuation, state.cleanup)
        }
        guard let (continuation, cleanup) = taken else { return false }
        continuation.resume(with: result)
        cleanup?()
        return true
    }
}

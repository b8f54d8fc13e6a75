import Synchronization

/// Thrown when a test waited longer than its limit.
public struct TestTimeout: Error, CustomStringConvertible {
    /// How long the test waited.
    public let seconds: Double
    /// What it waited for.
    public let what: String

    /// Creates the error.
    ///
    /// - Parameters:
    ///   - seconds: How long the test waited, in seconds.
    ///   - what: What it waited for, as a phrase that completes "waiting for".
    public init(seconds: Double, what: String) {
        self.seconds = seconds
        self.what = what
    }

    /// One sentence.
    public var description: String { "timed out after \(seconds) s waiting for \(what)" }
}

/// Runs `body`, failing with ``TestTimeout`` if it takes longer than `seconds`: no test waits forever.
///
/// The body runs in a task of its own that is cancelled on timeout, and the timeout does not wait for it to end, so
/// even a body stuck in something that ignores cancellation cannot hang the test. Cancelling the calling task does
/// not end the wait early.
///
/// - Parameters:
///   - seconds: The limit, in seconds.
///   - what: What the test waits for, named in the ``TestTimeout``.
///   - body: The work to run.
/// - Returns: What `body` returned.
/// - Throws: ``TestTimeout`` when `body` has not finished after `seconds`; otherwise whatever `body` threw.
public func withTimeout<T: Sendable>(
    _ seconds: Double, _ what: String = "the operation", _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    let outcome = OneShot<Result<T, any Error>>()
    let work = Task {
        let result: Result<T, any Error>
        do { result = .success(try await body()) } catch { result = .failure(error) }
        outcome.fulfil(result)
    }
    let timer = Task {
        try? await Task.sleep(for: .seconds(seconds))
        outcome.fulfil(.failure(TestTimeout(seconds: seconds, what: what)))
    }
    let result = await outcome.value
    work.cancel()
    timer.cancel()
    return try result.get()
}

/// A value set once, awaited by one task.
public final class OneShot<Value: Sendable>: Sendable {
    private let state = Mutex<(value: Value?, waiter: CheckedContinuation<Value, Never>?)>((nil, nil))

    /// Creates an empty one.
    public init() {}

    /// Sets the value; only the first call counts.
    ///
    /// - Parameter value: The value, handed to the waiting task if there is one.
    public func fulfil(_ value: Value) {
        let waiter = state.withLock { state -> CheckedContinuation<Value, Never>? in
            guard state.value == nil else { return nil }
            state.value = value
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: value)
    }

    /// The value, once set.
    public var value: Value {
        get async {
            await withCheckedContinuation { continuation in
                let ready = state.withLock { state -> Value? in
                    if let value = state.value { return value }
                    state.waiter = continuation
                    return nil
                }
                if let ready { continuation.resume(returning: ready) }
            }
        }
    }
}

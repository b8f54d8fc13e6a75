import Synchronization

/// A result that arrives once, and the tasks waiting for it: the package's one waiter type for "wait until this is
/// settled", so that every such wait ends when its task is cancelled, without leaking the waiter.
///
/// Settled from any thread (typically the connection's I/O thread); awaited from any task. A wait cancelled before
/// the result arrives throws `CancellationError` and leaves the result to the other waiters.
package final class OneShotResult<Value: Sendable>: Sendable {
    private struct State {
        package var result: Result<Value, any Error>?
        var waiters: [UInt64: CheckedContinuation<Value, any Error>] = [:]
        var nextToken: UInt64 = 0
    }

    private let state = Mutex(State())

    package init() {}

    /// The result, once settled.
    package var result: Result<Value, any Error>? {
        state.withLock { $0.result }
    }

    /// Whether the result has arrived.
    package var isSettled: Bool { result != nil }

    /// Waits for the result.
    ///
    /// - Throws: the settled error, or `CancellationError` when the task is cancelled first.
    package func wait() async throws -> Value {
        let token = state.withLock { state in
            state.nextToken += 1
            return state.nextToken
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Value, any Error>) in
                let immediate = state.withLock { state -> Result<Value, any Error>? in
                    if let result = state.result { return result }
                    if Task.isCancelled { return .failure(CancellationError()) }
                    state.waiters[token] = continuation
                    return nil
                }
                if let immediate { continuation.resume(with: immediate) }
            }
        } onCancel: {
            let waiter = state.withLock { $0.waiters.removeValue(forKey: token) }
            waiter?.resume(throwing: CancellationError())
        }
    }

    /// Settles the result and wakes every waiter; returns false (and changes nothing) when it was already settled.
    @discardableResult
    package func settle(_ result: Result<Value, any Error>) -> Bool {
        let waiters = state.withLock { state -> [CheckedContinuation<Value, any Error>]? in
            guard state.result == nil else { return nil }
            state.result = result
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        guard let waiters else { return false }
        for waiter in waiters { waiter.resume(with: result) }
        return true
    }

    /// Settles with a value, as a reply does; ignored once settled.
    package func resume(returning value: Value) {
        settle(.success(value))
    }

    /// Settles with an error, as a failed request does; ignored once settled.
    package func resume(throwing error: any Error) {
        settle(.failure(error))
    }
}

extension OneShotResult where Value == Void {
    /// Settles successfully; ignored once settled.
    package func resume() {
        settle(.success(()))
    }
}

/// Where the I/O thread puts the answer to a caller's request: the caller waits on it, and may stop waiting when its
/// task is cancelled (the answer is then dropped).
typealias RequestReply<Value: Sendable> = OneShotResult<Value>

/// The tasks suspended at one site until a condition holds (a confirm slot frees, the broker unblocks publishing,
/// the command queue has room), kept in the site's own locked state, in arrival order.
///
/// The package's one way to wait on a hand-written condition (the payment service uses it too):
/// ``wait(token:register:cancel:)`` ends with `CancellationError` when the task is cancelled, and takes the waiter
/// out of the list, so nothing leaks.
///
/// The protocol with the site's lock: take a token with ``makeToken()``; in `register`, under the lock, either
/// answer at once or call ``enqueue(_:token:)`` (which refuses an already-cancelled task); in `cancel`, under the
/// lock, ``remove(token:)``. Whoever makes the condition true takes waiters out with ``removeFirst()`` or
/// ``removeAll()`` and resumes them outside the lock.
package struct WaiterList<Value: Sendable> {
    package typealias Continuation = CheckedContinuation<Value, any Error>

    private var waiting: [(token: UInt64, continuation: Continuation)] = []
    private var lastToken: UInt64 = 0

    package init() {}

    package var isEmpty: Bool { waiting.isEmpty }
    package var count: Int { waiting.count }

    /// A token that names the next waiter, taken before it suspends so that its cancellation can find it.
    package mutating func makeToken() -> UInt64 {
        lastToken += 1
        return lastToken
    }

    /// Adds a waiter; returns false, adding nothing, when its task is already cancelled.
    ///
    /// Checked under the site's lock: a cancellation that came earlier is seen here, and one that comes later
    /// finds the waiter in the list.
    package mutating func enqueue(_ continuation: Continuation, token: UInt64) -> Bool {
        if Task.isCancelled { return false }
        waiting.append((token, continuation))
        return true
    }

    /// Takes out the waiter with `token`, if it still waits.
    package mutating func remove(token: UInt64) -> Continuation? {
        guard let index = waiting.firstIndex(where: { $0.token == token }) else { return nil }
        return waiting.remove(at: index).continuation
    }

    /// Takes out the oldest waiter.
    package mutating func removeFirst() -> Continuation? {
        waiting.isEmpty ? nil : waiting.removeFirst().continuation
    }

    /// Takes out every waiter, oldest first.
    package mutating func removeAll() -> [Continuation] {
        defer { waiting = [] }
        return waiting.map(\.continuation)
    }

    /// Suspends until the site resumes the waiter, or its task is cancelled.
    ///
    /// - Parameters:
    ///   - token: The waiter's token, from ``makeToken()``.
    ///   - register: Runs once, with the site's lock held by the closure itself: returns a result to resume with
    ///     at once, or nil after ``enqueue(_:token:)`` accepted the waiter (if it refuses, return
    ///     `.failure(CancellationError())`).
    ///   - cancel: Takes the waiter out under the site's lock (``remove(token:)``), when the task is cancelled.
    /// - Throws: What the site resumes the waiter with, or `CancellationError`.
    package static func wait(
        token: UInt64,
        register: (Continuation) -> Result<Value, any Error>?,
        cancel: @escaping @Sendable (UInt64) -> Continuation?
    ) async throws -> Value {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: Continuation) in
                if let immediate = register(continuation) { continuation.resume(with: immediate) }
            }
        } onCancel: {
            cancel(token)?.resume(throwing: CancellationError())
        }
    }
}

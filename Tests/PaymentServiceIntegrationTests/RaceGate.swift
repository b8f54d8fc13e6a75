import Synchronization

/// Holds a publishing race at a point until the test opens it: the cluster test keeps the race's last payments back
/// until its second fault has landed, so that however long the first node takes to start again (10 to 40 s on
/// these machines), payments still arrive after the second kill.
final class RaceGate: Sendable {
    private struct State {
        var isOpen = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())

    /// Lets every waiting and later ``wait()`` go on.
    func open() {
        let waiters = state.withLock { state in
            state.isOpen = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns once the gate is open, or at once when the waiting task is cancelled (a failing test must not leave
    /// its race waiting).
    func wait() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { state in
                    if state.isOpen || Task.isCancelled { return true }
                    state.waiters.append(continuation)
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            open()
        }
    }
}

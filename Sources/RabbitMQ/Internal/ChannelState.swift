import Synchronization

/// What callers of a channel need to know without asking the I/O thread: whether the channel is still usable, and
/// how many confirmed publishes are outstanding.
///
/// The confirm window is counted here, on the caller's side, so a publish that fits the window never waits for the
/// I/O thread; one that does not fit waits for a slot that an acknowledgement frees. Slots go to waiters in order.
final class ChannelState: Sendable {
    private struct State {
        var closedError: AMQPError?
        var confirmWindow: Int?
        var outstandingConfirms = 0
        var slotWaiters: [CheckedContinuation<Void, any Error>] = []
    }

    private let state = Mutex(State())

    /// Throws the error that made the channel unusable, if any.
    func checkOpen() throws(AMQPError) {
        if let error = state.withLock({ $0.closedError }) { throw error }
    }

    /// The error the channel was closed with, or nil while it is open.
    var closedError: AMQPError? {
        state.withLock { $0.closedError }
    }

    /// Whether publishes on this channel are confirmed.
    var confirmsEnabled: Bool {
        state.withLock { $0.confirmWindow != nil }
    }

    /// Switches the channel to confirm mode with at most `window` outstanding confirms.
    func enableConfirms(window: Int) {
        state.withLock { $0.confirmWindow = window }
    }

    /// Takes one slot of the confirm window, waiting until one is free. Returns false when confirms are off.
    func acquireConfirmSlot() async throws -> Bool {
        let acquired = try state.withLock { state throws(AMQPError) -> Bool? in
            if let error = state.closedError { throw error }
            guard let window = state.confirmWindow else { return false }
            if state.outstandingConfirms < window && state.slotWaiters.isEmpty {
                state.outstandingConfirms += 1
                return true
            }
            return nil
        }
        if let acquired { return acquired }
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let immediate = state.withLock { state -> Result<Void, AMQPError>? in
                if let error = state.closedError { return .failure(error) }
                if let window = state.confirmWindow, state.outstandingConfirms < window, state.slotWaiters.isEmpty {
                    state.outstandingConfirms += 1
                    return .success(())
                }
                state.slotWaiters.append(continuation)
                return nil
            }
            if let immediate { continuation.resume(with: immediate) }
        }
        return true
    }

    /// Gives back `count` slots (their confirms arrived or failed); hands them to waiters first.
    func releaseConfirmSlots(_ count: Int) {
        guard count > 0 else { return }
        let woken = state.withLock { state -> [CheckedContinuation<Void, any Error>] in
            state.outstandingConfirms -= count
            let window = state.confirmWindow ?? 0
            var woken: [CheckedContinuation<Void, any Error>] = []
            while !state.slotWaiters.isEmpty && state.outstandingConfirms < window {
                state.outstandingConfirms += 1
                woken.append(state.slotWaiters.removeFirst())
            }
            return woken
        }
        for waiter in woken { waiter.resume() }
    }

    /// Marks the channel unusable; later calls throw `error`, and publishers waiting for a slot fail with it.
    func markClosed(_ error: AMQPError) {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, any Error>] in
            if state.closedError == nil { state.closedError = error }
            let waiters = state.slotWaiters
            state.slotWaiters = []
            return waiters
        }
        for waiter in waiters { waiter.resume(throwing: error) }
    }
}

import Synchronization

/// One channel as both sides see it: the public ``AMQPChannel`` wraps it on the caller's side, and the I/O thread's
/// ``RabbitMQCChannel`` keeps it to report what callers need to know without asking the I/O thread: whether the
/// channel is still usable, how many confirmed publishes are outstanding, and the messages the broker returned.
///
/// The confirm window is counted here, on the caller's side, so a publish that fits the window never waits for the
/// I/O thread; one that does not fit waits for a slot that an acknowledgement frees. Slots go to waiters in order.
/// Whether the channel is closed, and why, is decided by the connection's state machine; this only mirrors it.
final class ChannelState: Sendable {
    private struct State {
        var closedError: AMQPError?
        var confirmWindow: Int?
        var outstandingConfirms = 0
        var slotWaiters = WaiterList<Void>()
        var isGone = false
    }

    /// The channel number on its connection.
    let id: UInt16
    /// Messages the broker returned as unroutable, for ``AMQPChannel/returnedMessages``.
    let returnedMessages: AsyncStream<AMQPReturnedMessage>
    private let returns: AsyncStream<AMQPReturnedMessage>.Continuation
    private let state = Mutex(State())
    /// Counts the channel in the open-channels gauge while it lives, when metrics are on.
    private let metrics: ClientMetrics?

    init(id: UInt16, metrics: ClientMetrics? = nil) {
        self.id = id
        self.metrics = metrics
        (returnedMessages, returns) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1024))
        metrics?.channelsChanged(by: 1)
    }

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
    ///
    /// - Throws: The channel's error once it is closed; `CancellationError` when the task is cancelled while it
    ///   waits (it then holds no slot).
    func acquireConfirmSlot() async throws -> Bool {
        let (acquired, token) = try state.withLock { state throws(AMQPError) -> (Bool?, UInt64) in
            if let error = state.closedError { throw error }
            guard let window = state.confirmWindow else { return (false, 0) }
            if state.outstandingConfirms < window && state.slotWaiters.isEmpty {
                state.outstandingConfirms += 1
                return (true, 0)
            }
            return (nil, state.slotWaiters.makeToken())
        }
        if let acquired { return acquired }
        try await WaiterList.wait(token: token) { continuation in
            state.withLock { state -> Result<Void, any Error>? in
                if let error = state.closedError { return .failure(error) }
                if let window = state.confirmWindow, state.outstandingConfirms < window, state.slotWaiters.isEmpty {
                    state.outstandingConfirms += 1
                    return .success(())
                }
                return state.slotWaiters.enqueue(continuation, token: token) ? nil : .failure(CancellationError())
            }
        } cancel: { token in
            self.state.withLock { $0.slotWaiters.remove(token: token) }
        }
        return true
    }

    /// Gives back `count` slots (their confirms arrived or failed); hands them to waiters first.
    func releaseConfirmSlots(_ count: Int) {
        guard count > 0 else { return }
        let woken = state.withLock { state -> [WaiterList<Void>.Continuation] in
            state.outstandingConfirms -= count
            let window = state.confirmWindow ?? 0
            var woken: [WaiterList<Void>.Continuation] = []
            while state.outstandingConfirms < window, let waiter = state.slotWaiters.removeFirst() {
                state.outstandingConfirms += 1
                woken.append(waiter)
            }
            return woken
        }
        for waiter in woken { waiter.resume() }
    }

    /// Hands a message the broker returned to whoever reads ``returnedMessages``.
    func deliverReturned(_ message: AMQPReturnedMessage) {
        returns.yield(message)
    }

    /// Marks the channel unusable (it is closing): later calls throw `error`, and publishers waiting for a slot
    /// fail with it. The first error stays.
    func markClosed(_ error: AMQPError) {
        let waiters = state.withLock { state -> [WaiterList<Void>.Continuation] in
            if state.closedError == nil { state.closedError = error }
            return state.slotWaiters.removeAll()
        }
        for waiter in waiters { waiter.resume(throwing: error) }
    }

    /// The channel is gone: as ``markClosed(_:)``, and ``returnedMessages`` ends.
    func didClose(_ error: AMQPError) {
        markClosed(error)
        returns.finish()
        let wasGone = state.withLock { state in
            defer { state.isGone = true }
            return state.isGone
        }
        if !wasGone { metrics?.channelsChanged(by: -1) }
    }
}

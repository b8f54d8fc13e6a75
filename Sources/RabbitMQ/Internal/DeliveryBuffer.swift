import Synchronization

/// Where the I/O thread puts a consumer's deliveries and the consuming task takes them.
///
/// A lean single-consumer queue instead of `AsyncThrowingStream`: one lock, no generic machinery, and a delivery
/// that is already buffered is returned without suspending. The prefetch bounds what it holds.
///
/// When the consuming side goes away (its task is cancelled, or every ``AMQPConsumer`` copy is gone), the buffer is
/// terminated: deliveries still in it are given back to the broker (`basic.nack` with requeue) and
/// ``onTermination`` cancels the consumer.
final class DeliveryBuffer: Sendable {
    enum YieldResult {
        case enqueued
        /// Nobody will read it: the caller should give the delivery back.
        case terminated
    }

    private struct State {
        /// Taken items become nil: moved out, not copied, so a delivery is not retained twice on its way.
        var items: [InboundMessage?] = []
        var head = 0
        var waiter: CheckedContinuation<InboundMessage?, any Error>?
        /// How the sequence ends once the items run out: normally (nil error) or with an error.
        var end: Result<Void, AMQPError>?
        var terminated = false
        var onTermination: (@Sendable () -> Void)?
        /// Whether an iterator was made: a second one would take deliveries from the first, or steal its wait.
        var iterated = false
    }

    let noAck: Bool
    /// Hands back a delivery left unread when the consuming side goes away (a nack with requeue); nil when
    /// leftovers are not handed back (with `noAck`, or from a stream, which refuses nacks).
    private let giveBack: (@Sendable (InboundMessage) -> Void)?
    private let state = Mutex(State())

    init(noAck: Bool, giveBack: (@Sendable (InboundMessage) -> Void)?) {
        self.noAck = noAck
        self.giveBack = noAck ? nil : giveBack
    }

    /// Whether the consuming side is gone: nobody will read what arrives.
    var isTerminated: Bool {
        state.withLock { $0.terminated }
    }

    /// Whether the reader waits for a delivery (suspended in `next()`).
    var hasWaitingReader: Bool {
        state.withLock { $0.waiter != nil }
    }

    /// What to do once the consuming side is gone; runs at most once.
    func setOnTermination(_ action: @escaping @Sendable () -> Void) {
        let runNow = state.withLock { state -> Bool in
            if state.terminated { return true }
            state.onTermination = action
            return false
        }
        if runNow { action() }
    }

    /// Adds a delivery (I/O thread) without waking a reader that waits for one: the I/O thread calls
    /// ``wakeReader()`` once its read pass is over, so a burst of deliveries costs the reader one wake-up (a thread
    /// switch), not one per delivery.
    func append(_ delivery: InboundMessage) -> YieldResult {
        state.withLock { state -> YieldResult in
            if state.terminated || state.end != nil { return .terminated }
            state.items.append(delivery)
            return .enqueued
        }
    }

    /// Hands the oldest buffered delivery to the reader if it waits (I/O thread, after a read pass).
    func wakeReader() {
        let handOff = state.withLock { state -> (CheckedContinuation<InboundMessage?, any Error>, InboundMessage)? in
            guard let waiter = state.waiter, let item = Self.pop(&state) else { return nil }
            state.waiter = nil
            return (waiter, item)
        }
        if let (waiter, item) = handOff { waiter.resume(returning: item) }
    }

    /// Ends the sequence after the buffered deliveries: normally, or with `error`.
    func finish(throwing error: AMQPError? = nil) {
        typealias Resumption = (CheckedContinuation<InboundMessage?, any Error>, Result<InboundMessage?, any Error>)
        let resumption = state.withLock { state -> Resumption? in
            guard state.end == nil else { return nil }
            state.end = error.map { .failure($0) } ?? .success(())
            guard let waiter = state.waiter else { return nil }
            state.waiter = nil
            // Deliveries appended in this read pass come first; the reader meets the end after them.
            if let item = Self.pop(&state) { return (waiter, .success(item)) }
            return (waiter, error.map { .failure($0) } ?? .success(nil))
        }
        if let (waiter, result) = resumption { waiter.resume(with: result) }
    }

    /// Records that an iterator is being made; false when one already was.
    func claimIterator() -> Bool {
        state.withLock { state in
            defer { state.iterated = true }
            return !state.iterated
        }
    }

    /// The next delivery; nil when the sequence ended normally or the consuming side is gone.
    func next() async throws -> InboundMessage? {
        if let ready = takeReady() { return ready }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<InboundMessage?, any Error>) in
                let immediate = state.withLock { state -> Result<InboundMessage?, any Error>? in
                    if let item = Self.pop(&state) { return .success(item) }
                    if state.terminated { return .success(nil) }
                    if state.waiter != nil {
                        // Two tasks iterating copies of one iterator: replacing the first wait would hang it.
                        return .failure(AMQPError(.invalidArgument, "a consumer's deliveries are read by one task at a time"))
                    }
                    switch state.end {
                    case .failure(let error):
                        // Thrown once; the sequence then simply ends.
                        state.end = .success(())
                        return .failure(error)
                    case .success:
                        return .success(nil)
                    case nil:
                        state.waiter = continuation
                        return nil
                    }
                }
                if let immediate { continuation.resume(with: immediate) }
            }
        } onCancel: {
            self.terminate()
        }
    }

    /// Marks the consuming side gone: the waiting `next()` returns nil, buffered deliveries are given back, and
    /// the termination action runs.
    func terminate() {
        typealias Taken = (
            waiter: CheckedContinuation<InboundMessage?, any Error>?, leftovers: [InboundMessage],
            action: (@Sendable () -> Void)?
        )
        let (waiter, leftovers, action) = state.withLock { state -> Taken in
            if state.terminated { return (nil, [], nil) }
            state.terminated = true
            let leftovers = state.items[state.head...].compactMap { $0 }
            state.items = []
            state.head = 0
            let waiter = state.waiter
            state.waiter = nil
            let action = state.end == nil ? state.onTermination : nil
            state.onTermination = nil
            return (waiter, leftovers, action)
        }
        waiter?.resume(returning: nil)
        if let giveBack {
            // Unread deliveries would otherwise stay unacknowledged until the channel closes.
            for delivery in leftovers { giveBack(delivery) }
        }
        action?()
    }

    private func takeReady() -> InboundMessage? {
        state.withLock { state -> InboundMessage? in Self.pop(&state) }
    }

    private static func pop(_ state: inout State) -> InboundMessage? {
        guard state.head < state.items.count else { return nil }
        let item = state.items[state.head].take()
        state.head += 1
        if state.head == state.items.count {
            state.items.removeAll(keepingCapacity: true)
            state.head = 0
        } else if state.head >= 1024 && state.head * 2 >= state.items.count {
            state.items.removeFirst(state.head)
            state.head = 0
        }
        return item
    }
}

/// Owned only by the consuming side of a ``DeliveryBuffer``: when the last ``AMQPConsumer`` copy and iterator are
/// gone, the buffer is terminated (which cancels the consumer).
final class DeliveryBufferOwner: Sendable {
    let buffer: DeliveryBuffer

    init(_ buffer: DeliveryBuffer) {
        self.buffer = buffer
    }

    deinit {
        buffer.terminate()
    }
}

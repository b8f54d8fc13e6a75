/// The lifecycle of one connection and of each of its channels, as a plain value.
///
/// The I/O thread feeds it what happened (the socket failed, the application asked to close, the broker confirmed a
/// channel's close, a recovery attempt failed, ...) and carries out the ``Action``s it returns against rabbitmq-c.
/// It makes no C call, reads no clock and touches no thread, so every transition, including the odd orders (a close
/// while recovering, a second close, a channel closed while its open is in flight) is unit-tested without a broker.
///
/// It is the one place that answers "is the connection (or this channel) usable, and if not, why": see
/// ``refusal(forChannel:)``. The mirrors other threads read (``ConnectionCore``, ``ChannelState``) are only ever
/// written from the actions it returns.
///
/// `Waiter` is whatever the application waits on for a graceful close to finish; the machine only keeps and hands
/// back the waiters, so tests use plain values.
struct ConnectionStateMachine<Waiter> {
    private(set) var phase = Phase.open {
        didSet { stage = Stage(phase) }
    }
    /// The phase without its details, kept beside it: the I/O loop asks "connected? ended?" for every command, and
    /// reading this field copies nothing, where matching `phase` in place of the class holding the machine copied the
    /// whole machine each time (a fifth of the loop's own work when publishing).
    private(set) var stage = Stage.open
    private(set) var channels: [UInt16: ChannelPhase] = [:]
    /// Why each closed channel closed, until its number is used again: a call that arrives just after the broker
    /// closed a channel fails with the broker's reason, not a generic one.
    private var closedChannels: [UInt16: AMQPError] = [:]
    private var nextChannelHint: UInt16 = 1
    let channelMax: UInt16
    let recovery: AMQPConfiguration.Recovery
    /// What recovery walks, in order (see ``AMQPConfiguration/endpoints``).
    let endpoints: [AMQPConfiguration.Endpoint]
    let shuffleEndpoints: Bool
    /// The endpoint the connection is on, or was on last.
    private(set) var endpoint: AMQPConfiguration.Endpoint
    /// How long each stage of a graceful close may take.
    let closeTimeout: Duration
    /// The random 50–100 % each recovery pause is scaled by; fixed in tests.
    var jitter: () -> Double = { Double.random(in: 0.5...1.0) }
    /// The random order of a shuffled walk of the endpoints; fixed in tests.
    var shuffle: ([AMQPConfiguration.Endpoint]) -> [AMQPConfiguration.Endpoint] = { $0.shuffled() }

    /// A machine for a connection just made to `endpoint`, one of `endpoints`.
    init(
        channelMax: UInt16, recovery: AMQPConfiguration.Recovery, endpoints: [AMQPConfiguration.Endpoint],
        shuffleEndpoints: Bool = false, connectedTo endpoint: AMQPConfiguration.Endpoint,
        closeTimeout: Duration = .seconds(5)
    ) {
        self.channelMax = channelMax == 0 ? .max : channelMax
        self.recovery = recovery
        self.endpoints = endpoints
        self.shuffleEndpoints = shuffleEndpoints
        self.endpoint = endpoint
        self.closeTimeout = closeTimeout
    }

    /// A new walk of the endpoints, for one recovery attempt.
    private func newRound() -> EndpointRound {
        EndpointRound(endpoints, shuffled: shuffleEndpoints, shuffle: shuffle)
    }

    // MARK: - Questions

    /// Whether a C connection is there to be used: open or closing.
    @inline(__always) var isConnected: Bool {
        stage == .open || stage == .closing
    }

    @inline(__always) var isRecovering: Bool {
        stage == .recovering
    }

    @inline(__always) var isEnded: Bool {
        stage == .ended
    }

    /// The error work given to the connection gets once it has ended.
    var endedError: AMQPError? {
        guard case .ended(let cause) = phase else { return nil }
        return cause ?? AMQPError(.connectionClosed, "the connection was closed by the application")
    }

    /// Why work aimed at the connection as a whole (opening a channel) cannot be done now, or nil when it can.
    var connectionRefusal: AMQPError? {
        switch phase {
        case .open: nil
        case .closing: AMQPError(.connectionClosed, "the connection is closing")
        case .recovering(let recovering): .recovering(cause: recovering.cause)
        case .ended: endedError
        }
    }

    /// Whether a method may be sent on channel `id` now: the fast form of ``refusal(forChannel:)``, asked for every
    /// publish.
    func isUsable(channel id: UInt16) -> Bool {
        stage.allowsMethods(on: channels[id])
    }

    /// Why a method on channel `id` cannot be sent now, or nil when it can: the connection recovers or ended, or the
    /// channel is closing or closed (with the broker's reason when it closed it).
    func refusal(forChannel id: UInt16) -> AMQPError? {
        switch phase {
        case .recovering(let recovering):
            return .recovering(cause: recovering.cause)
        case .ended:
            return closedChannels[id] ?? endedError
        case .open, .closing:
            switch channels[id] {
            case .opening, .open: return nil
            case .closing(let error): return error
            case nil: return closedChannels[id] ?? AMQPError(.channelClosed, "channel \(id) is closed")
            }
        }
    }

    /// The error calls on channel `id` get since it closed, while its number is not reused.
    func closedChannelError(_ id: UInt16) -> AMQPError? {
        closedChannels[id]
    }

    // MARK: - Channels

    /// The application wants a new channel: picks the lowest free number from a rotating hint, or says why not.
    mutating func channelOpenRequested() -> Result<UInt16, AMQPError> {
        if let refusal = connectionRefusal { return .failure(refusal) }
        guard channels.count < Int(channelMax) else {
            return .failure(AMQPError(
                .invalidArgument, "all \(channelMax) channels of the connection are in use; close some first"))
        }
        var candidate = nextChannelHint
        while channels[candidate] != nil {
            candidate = candidate >= channelMax ? 1 : candidate + 1
        }
        nextChannelHint = candidate >= channelMax ? 1 : candidate + 1
        channels[candidate] = .opening
        closedChannels[candidate] = nil
        return .success(candidate)
    }

    /// The broker answered `channel.open-ok`.
    mutating func channelOpened(_ id: UInt16) {
        if case .opening? = channels[id] { channels[id] = .open }
    }

    /// `channel.open` failed: the number is free again.
    mutating func channelOpenFailed(_ id: UInt16) {
        if case .opening? = channels[id] { channels[id] = nil }
    }

    /// The application asked to close channel `id` (or the connection's graceful close did).
    mutating func channelCloseRequested(_ id: UInt16, reason: String) -> ChannelCloseDecision {
        switch channels[id] {
        case nil, .closing: return .alreadyClosed
        case .opening, .open: break
        }
        let error = AMQPError(.channelClosed, "channel \(id) is closed: \(reason)")
        if isRecovering {
            channels[id] = nil
            closedChannels[id] = error
            return .forgotten
        }
        channels[id] = .closing(error)
        return .sendClose
    }

    /// Channel `id` is gone: the broker confirmed the close the application asked for, closed it itself
    /// (`channel.close`, with its `error`), or the connection ended (with its `error`). Returns the error the channel's callers get from now on,
    /// or nil when the channel was already gone.
    @discardableResult
    mutating func channelClosed(_ id: UInt16, error: AMQPError?) -> AMQPError? {
        guard let channelPhase = channels.removeValue(forKey: id) else { return nil }
        let closedError: AMQPError
        switch (channelPhase, error) {
        // Closing already: calls have been failing with the application's reason, and keep doing so.
        case (.closing(let requested), _): closedError = requested
        case (_, let error?): closedError = Self.callerError(channel: id, cause: error)
        case (_, nil): closedError = AMQPError(.channelClosed, "channel \(id) was closed")
        }
        closedChannels[id] = closedError
        return closedError
    }

    /// The error later calls on a channel get once it closed because of `cause`: a broker's channel exception
    /// becomes `channelClosed`, keeping the broker's reply.
    static func callerError(channel: UInt16, cause: AMQPError) -> AMQPError {
        guard cause.code == .channelClosedByBroker else { return cause }
        var error = cause
        error.code = .channelClosed
        error.message = "channel \(channel) is closed: the broker closed it after an error"
        return error
    }

    // MARK: - Closing the connection

    /// The application asked to close the connection gracefully; `waiter` is let go once it is closed.
    mutating func closeRequested(by waiter: Waiter, now: ContinuousClock.Instant) -> [Action] {
        switch phase {
        case .ended:
            return [.resumeCloseWaiters([waiter])]
        case .recovering:
            // No connection to close: stop recovering and end.
            return end(cause: nil, consumerError: nil) + [.resumeCloseWaiters([waiter])]
        case .closing(var closing):
            closing.waiters.append(waiter)
            phase = .closing(closing)
            return []
        case .open:
            phase = .closing(Closing(deadline: now + closeTimeout, channelsClosed: false, waiters: [waiter]))
            return [.cancelConsumers]
        }
    }

    /// Moves a graceful close along; the I/O thread asks after every turn of its loop. `settled` says whether every
    /// consumer is cancelled and every confirm arrived.
    mutating func closeProgress(now: ContinuousClock.Instant, settled: Bool) -> [Action] {
        guard case .closing(var closing) = phase else { return [] }
        let expired = now >= closing.deadline
        if !closing.channelsClosed {
            guard settled || expired else { return [] }
            closing.channelsClosed = true
            closing.deadline = now + closeTimeout
            phase = .closing(closing)
            let toClose = channels.filter { !$0.value.isClosing }.keys.sorted()
            let reason = "the connection is closing"
            for id in toClose {
                channels[id] = .closing(AMQPError(.channelClosed, "channel \(id) is closed: \(reason)"))
            }
            // With no channel to wait for, close now rather than after the next tick.
            if channels.isEmpty { return [.sendConnectionClose] }
            return toClose.isEmpty ? [] : [.closeChannels(toClose, reason: reason)]
        }
        guard channels.isEmpty || expired else { return [] }
        return [.sendConnectionClose]
    }

    /// `connection.close` went out and was answered (or failed): the connection is over.
    mutating func connectionCloseCompleted() -> [Action] {
        guard case .closing = phase else { return [] }
        return end(cause: nil, consumerError: nil)
    }

    // MARK: - Failures and recovery

    /// The connection failed: the socket broke, the broker closed it, or it went silent. Recovery starts when it is
    /// enabled and the failure is one it handles, and only from an open connection: a failure during a graceful
    /// close ends it.
    mutating func connectionFailed(_ error: AMQPError, now: ContinuousClock.Instant) -> [Action] {
        switch phase {
        case .ended, .recovering:
            return []
        case .open where recovery.isEnabled && Self.isRecoverable(error):
            let forget = channels.filter { $0.value.isClosing }.keys.sorted()
            for id in forget { channelClosed(id, error: nil) }
            let delay = recovery.delay(beforeAttempt: 1, scale: jitter())
            phase = .recovering(Recovering(cause: error, attempt: 1, nextAttempt: now + delay, round: newRound()))
            let interrupted = AMQPError.interrupted(cause: error)
            return [.interruptChannels(error: interrupted, forget: forget), .report(.started(cause: error))]
        case .open, .closing:
            return end(cause: error, consumerError: error)
        }
    }

    /// The broker has been silent for `silence`; past `limit` (three missed heartbeats) it is declared dead.
    mutating func silenceObserved(_ silence: Duration, limit: Duration?, now: ContinuousClock.Instant) -> [Action] {
        guard let limit, silence > limit, isConnected else { return [] }
        return connectionFailed(
            AMQPError(
                .connectionLost,
                "the broker stopped answering: no data or heartbeat for \(silence) (heartbeat \(limit / 1.5))"),
            now: now)
    }

    /// What recovery should do at `now`.
    func recoveryStep(now: ContinuousClock.Instant) -> RecoveryStep {
        guard case .recovering(let recovering) = phase, let endpoint = recovering.round.current else { return .none }
        if now < recovering.nextAttempt { return .wait(recovering.nextAttempt - now) }
        return .connect(attempt: recovering.attempt, endpoint: endpoint)
    }

    /// Connecting to the current endpoint of a recovery attempt failed with `error`. The next endpoint of the
    /// round is tried at once; once every endpoint failed, the attempt has failed: recovery tries again after its
    /// backoff, with a new round, or gives up after its last attempt.
    mutating func recoveryEndpointFailed(_ error: AMQPError, now: ContinuousClock.Instant) -> [Action] {
        guard case .recovering(var recovering) = phase else { return [] }
        recovering.round.fail(error)
        guard recovering.round.isExhausted else {
            phase = .recovering(recovering)
            return []
        }
        let error = recovering.round.error
        if let limit = recovery.maxAttempts, recovering.attempt >= limit {
            return [.report(.gaveUp(recovering.cause))]
                + end(cause: recovering.cause, consumerError: recovering.cause)
        }
        let delay = recovery.delay(beforeAttempt: recovering.attempt + 1, scale: jitter())
        let failed = recovering.attempt
        recovering.attempt += 1
        recovering.nextAttempt = now + delay
        recovering.round = newRound()
        phase = .recovering(recovering)
        return [.report(.attemptFailed(attempt: failed, error: error, nextAttemptIn: delay))]
    }

    /// Connecting to the current endpoint of a recovery attempt succeeded: the topology, channels and consumers are
    /// back, on that endpoint.
    mutating func recoverySucceeded() -> [Action] {
        guard case .recovering(let recovering) = phase, let endpoint = recovering.round.current else { return [] }
        phase = .open
        self.endpoint = endpoint
        return [.report(.recovered(attempts: recovering.attempt, endpoint: endpoint))]
    }

    /// Failures recovery handles: broken sockets, silent brokers, and closes by an operator or a restarting broker
    /// (320 CONNECTION_FORCED) or a broker fault (541). Other connection errors are the application's doing.
    static func isRecoverable(_ error: AMQPError) -> Bool {
        switch error.code {
        case .connectionLost: true
        case .connectionClosedByBroker: error.replyCode == 320 || error.replyCode == 541
        default: false
        }
    }

    /// Ends the connection: whoever sees a failure from the actions that follow also sees it ended.
    private mutating func end(cause: AMQPError?, consumerError: AMQPError?) -> [Action] {
        var waiters: [Waiter] = []
        if case .closing(let closing) = phase { waiters = closing.waiters }
        phase = .ended(cause: cause)
        let failure = cause ?? AMQPError(.connectionClosed, "the connection was closed by the application")
        for id in channels.keys.sorted() { channelClosed(id, error: failure) }
        var actions: [Action] = [.recordEnd(cause), .finish(error: failure, consumerError: consumerError)]
        if !waiters.isEmpty { actions.append(.resumeCloseWaiters(waiters)) }
        return actions
    }
}

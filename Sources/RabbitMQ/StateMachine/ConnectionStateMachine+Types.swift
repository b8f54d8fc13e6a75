/// The states, actions and decisions of ``ConnectionStateMachine``.
extension ConnectionStateMachine {
    /// Where the connection is in its life.
    enum Phase {
        /// Open and usable.
        case open
        /// A graceful close is under way (see ``Closing``).
        case closing(Closing)
        /// The connection failed and a new one is being made: no C connection exists.
        case recovering(Recovering)
        /// Over for good: `cause` is nil when the application closed it.
        case ended(cause: AMQPError?)
    }

    /// A graceful close: first consumers are cancelled and confirms awaited, then channels are closed, then the
    /// connection; each stage ends when done or at its deadline.
    /// Which case ``Phase`` is in, without its payload.
    enum Stage {
        case open
        case closing
        case recovering
        case ended

        init(_ phase: Phase) {
            switch phase {
            case .open: self = .open
            case .closing: self = .closing
            case .recovering: self = .recovering
            case .ended: self = .ended
            }
        }
    }

    struct Closing {
        var deadline: ContinuousClock.Instant
        var channelsClosed: Bool
        var waiters: [Waiter]
    }

    /// Automatic recovery: why, which attempt comes next and when, and where it stands in its walk of the endpoints.
    struct Recovering {
        var cause: AMQPError
        var attempt: Int
        var nextAttempt: ContinuousClock.Instant
        var round: EndpointRound
    }

    /// Where one channel is in its life. A channel the machine does not hold is closed.
    enum ChannelPhase {
        /// `channel.open` is on its way.
        case opening
        case open
        /// The application asked to close it; calls made now fail with `error`.
        case closing(AMQPError)
    }

    /// What the I/O thread must do, in order.
    enum Action {
        /// Send `basic.cancel` for every consumer (a graceful close begins).
        case cancelConsumers
        /// Send `channel.close` (200, `reason`) on these channels.
        case closeChannels([UInt16], reason: String)
        /// Send `connection.close` (200) and wait for `close-ok`; then report ``connectionCloseCompleted()``.
        case sendConnectionClose
        /// The connection failed but will be recovered: fail what was in flight with `error` (retriable), keeping
        /// channels, consumers and settings; forget the channels listed in `forget`, which were closing.
        case interruptChannels(error: AMQPError, forget: [UInt16])
        /// Fail every channel, consumer, confirm and queued command with `error`; consumers end with
        /// `consumerError` (normally when nil). Refuse further commands.
        case finish(error: AMQPError, consumerError: AMQPError?)
        /// Record for every task that the connection ended, and how (nil: closed by the application).
        case recordEnd(AMQPError?)
        /// Tell the application about recovery.
        case report(AMQPRecoveryEvent)
        /// Let these graceful-close waiters go.
        case resumeCloseWaiters([Waiter])
    }

    /// What to do about a recovery that is under way, at a given instant.
    enum RecoveryStep: Equatable {
        /// Nothing: the connection is not recovering.
        case none
        /// Wait this long before the next attempt.
        case wait(Duration)
        /// Connect to `endpoint` now, as part of attempt number `attempt`.
        case connect(attempt: Int, endpoint: AMQPConfiguration.Endpoint)
    }

    /// How the application's request to close one channel is carried out.
    enum ChannelCloseDecision: Equatable {
        /// It is already closed or closing: nothing to send.
        case alreadyClosed
        /// No connection to tell (recovering): the channel is forgotten at once.
        case forgotten
        /// Send `channel.close` and wait for `close-ok` (then report ``channelClosed(_:error:)``).
        case sendClose
    }
}

extension ConnectionStateMachine.Stage {
    /// Whether a method may be sent, at this stage of the connection, on a channel in phase `channel` (nil: no such
    /// channel). The rule behind ``ConnectionStateMachine/isUsable(channel:)``, on plain values so that the publish
    /// path can ask it of the machine's fields without copying the machine.
    func allowsMethods(on channel: ConnectionStateMachine.ChannelPhase?) -> Bool {
        guard self == .open || self == .closing else { return false }
        switch channel {
        case .opening, .open: return true
        case .closing, nil: return false
        }
    }
}

extension ConnectionStateMachine.ChannelPhase {
    var isClosing: Bool {
        if case .closing = self { return true }
        return false
    }
}

import Foundation
import Logging
import Synchronization

/// The part of a connection every task may touch: the command queue to its I/O thread, what was negotiated, and how
/// it ended. The C connection itself lives only on the I/O thread (``RabbitMQCConnection``).
final class ConnectionCore: Sendable {
    private struct State {
        var parameters = AMQPConnection.Parameters(heartbeat: .zero, frameMax: 0, channelMax: 0)
        var serverProperties = AMQPTable()
        var blocked: String?
        var blockedSince: ContinuousClock.Instant?
        var countedAsOpen = false
        var unblockWaiters = WaiterList<Void>()
        var recovering: AMQPError?
        var endpoint: AMQPConfiguration.Endpoint?
    }

    let configuration: AMQPConfiguration
    let logger: Logger
    let commands: CommandQueue
    /// Runs tasks that prefer it on the I/O thread.
    let taskExecutor: ConnectionTaskExecutor
    /// Where spans and metrics go.
    let instruments: ClientInstruments
    private let state = Mutex(State())
    /// How the connection ended, once it has: success for a close the application asked for.
    private let end = OneShotResult<Void>()
    /// Recovery's events, for ``AMQPConnection/recoveryEvents``.
    let recoveryEvents: AsyncStream<AMQPRecoveryEvent>
    private let recoveryEventSink: AsyncStream<AMQPRecoveryEvent>.Continuation

    init(configuration: AMQPConfiguration, logger: Logger) throws(AMQPError) {
        self.configuration = configuration
        self.logger = logger
        self.commands = try CommandQueue()
        self.taskExecutor = ConnectionTaskExecutor(commands: commands)
        self.instruments = ClientInstruments(configuration.observability)
        (recoveryEvents, recoveryEventSink) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(256))
    }

    /// Publishes a recovery event, and records whether the connection is recovering.
    func report(_ event: AMQPRecoveryEvent) {
        if let metrics = instruments.metrics {
            switch event {
            case .started: metrics.recordRecovery("started")
            case .recovered: metrics.recordRecovery("recovered")
            case .attemptFailed: metrics.recordRecovery("attempt_failed")
            case .gaveUp: metrics.recordRecovery("gave_up")
            case .queueRenamed: break
            }
        }
        state.withLock { state in
            switch event {
            case .started(let cause): state.recovering = cause
            case .recovered, .gaveUp: state.recovering = nil
            case .attemptFailed, .queueRenamed: break
            }
        }
        recoveryEventSink.yield(event)
    }

    /// Whether the connection is recovering from a failure.
    var isRecovering: Bool {
        state.withLock { $0.recovering != nil }
    }

    /// Throws a retriable error while the connection recovers: work given to it now could not be done.
    func checkNotRecovering() throws(AMQPError) {
        if let cause = state.withLock({ $0.recovering }) { throw AMQPError.recovering(cause: cause) }
    }

    /// Checks, with one lock, that a publish may go ahead now: throws while the connection recovers, and waits
    /// while the broker blocks publishing.
    func admitPublish() async throws {
        let (recovering, blocked) = state.withLock { ($0.recovering != nil, $0.blocked != nil) }
        if recovering { try checkNotRecovering() }
        if blocked { try await waitWhileBlocked() }
    }

    /// Waits while the broker blocks publishing, at most ``AMQPConfiguration/blockedPublishTimeout``.
    ///
    /// - Throws: ``AMQPError`` `timeout` when the block outlasts the timeout, the connection's error when it ends
    ///   meanwhile, `CancellationError` when the task is cancelled.
    func waitWhileBlocked() async throws {
        guard state.withLock({ $0.blocked != nil }) else { return }
        let timeout = configuration.blockedPublishTimeout
        let token = state.withLock { $0.unblockWaiters.makeToken() }
        let expiry = Task {
            try await Task.sleep(for: timeout)
            let (waiter, reason) = self.state.withLock { state in
                (state.unblockWaiters.remove(token: token), state.blocked)
            }
            waiter?.resume(throwing: AMQPError(
                .timeout,
                "the broker has blocked publishing on this connection for \(timeout) (\(reason ?? "resource alarm")); the message was not sent"))
        }
        defer { expiry.cancel() }
        try await WaiterList.wait(token: token) { continuation in
            state.withLock { state -> Result<Void, any Error>? in
                guard state.blocked != nil else { return .success(()) }
                return state.unblockWaiters.enqueue(continuation, token: token) ? nil : .failure(CancellationError())
            }
        } cancel: { token in
            self.state.withLock { $0.unblockWaiters.remove(token: token) }
        }
    }

    /// Runs `body` on the I/O thread and waits for the answer it puts in the reply.
    ///
    /// `body` must settle the reply, now or later (for instance when the broker replies).
    ///
    /// - Throws: What `body` settles the reply with, the connection's error when it is gone, or `CancellationError`
    ///   when the task is cancelled first: the request may still reach the broker, and its answer is dropped.
    func request<T: Sendable>(
        _ body: @escaping @Sendable (RabbitMQCConnection, RequestReply<T>) -> Void
    ) async throws -> T {
        let reply = RequestReply<T>()
        try commands.enqueue(
            .perform({ connection in body(connection, reply) }, onFailure: { reply.resume(throwing: $0) }))
        return try await reply.wait()
    }

    var parameters: AMQPConnection.Parameters {
        state.withLock { $0.parameters }
    }

    var serverProperties: AMQPTable {
        state.withLock { $0.serverProperties }
    }

    var blockedReason: String? {
        state.withLock { $0.blocked }
    }

    var isOpen: Bool {
        !end.isSettled
    }

    /// Records what the handshake negotiated, and with which endpoint (by the I/O thread, at every connect).
    func didOpen(
        parameters: AMQPConnection.Parameters, serverProperties: AMQPTable, endpoint: AMQPConfiguration.Endpoint
    ) {
        let isFirst = state.withLock { state in
            state.parameters = parameters
            state.serverProperties = serverProperties
            state.endpoint = endpoint
            defer { state.countedAsOpen = true }
            return !state.countedAsOpen
        }
        if isFirst { instruments.metrics?.connectionsChanged(by: 1) }
    }

    /// The endpoint the connection is on (or was on last, while it recovers).
    var endpoint: AMQPConfiguration.Endpoint {
        state.withLock { $0.endpoint } ?? configuration.endpoints[0]
    }

    /// Records `connection.blocked` (with the broker's reason) or `connection.unblocked` (nil), which releases the
    /// publishers that were waiting.
    func setBlocked(_ reason: String?) {
        let now = ContinuousClock.now
        let (waiters, blockedFor) = state.withLock { state -> ([WaiterList<Void>.Continuation], Duration?) in
            state.blocked = reason
            guard reason == nil else {
                if state.blockedSince == nil { state.blockedSince = now }
                return ([], nil)
            }
            let blockedFor = state.blockedSince.map { now - $0 }
            state.blockedSince = nil
            return (state.unblockWaiters.removeAll(), blockedFor)
        }
        if let blockedFor { instruments.metrics?.recordBlocked(for: blockedFor) }
        for waiter in waiters { waiter.resume() }
    }

    /// Records how the connection ended: `nil` for a close the application asked for.
    func didEnd(with error: AMQPError?) {
        let result: Result<Void, any Error> = error.map { .failure($0) } ?? .success(())
        end.settle(result)
        let (blockedWaiters, wasCounted) = state.withLock { state in
            defer { state.countedAsOpen = false }
            return (state.unblockWaiters.removeAll(), state.countedAsOpen)
        }
        if wasCounted { instruments.metrics?.connectionsChanged(by: -1) }
        for waiter in blockedWaiters {
            waiter.resume(throwing: error ?? AMQPError(.connectionClosed, "the connection was closed"))
        }
        recoveryEventSink.finish()
    }

    /// Waits until the connection ends; throws the error it ended with, unless the application closed it.
    ///
    /// - Throws: The connection's error, or `CancellationError` when the task is cancelled first (the connection is
    ///   left as it is).
    func waitUntilEnded() async throws {
        try await end.wait()
    }
}

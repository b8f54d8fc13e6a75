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
        var unblockWaiters: [UInt64: CheckedContinuation<Void, any Error>] = [:]
        var nextWaiterToken: UInt64 = 0
        var recovering: AMQPError?
    }

    let configuration: AMQPConfiguration
    let logger: Logger
    let commands: CommandQueue
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
        (recoveryEvents, recoveryEventSink) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(256))
    }

    /// Publishes a recovery event, and records whether the connection is recovering.
    func report(_ event: AMQPRecoveryEvent) {
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
        if let cause = state.withLock({ $0.recovering }) {
            throw AMQPError(
                .connectionLost, "the connection is recovering from a failure (\(cause.message)); try again",
                replyCode: cause.replyCode, replyText: cause.replyText, libraryStatus: cause.libraryStatus,
                libraryStatusText: cause.libraryStatusText)
        }
    }

    /// Checks, with one lock, that a publish may go ahead now: throws while the connection recovers, and waits
    /// while the broker blocks publishing.
    func admitPublish() async throws {
        let (recovering, blocked) = state.withLock { ($0.recovering != nil, $0.blocked != nil) }
        if recovering { try checkNotRecovering() }
        if blocked { try await waitWhileBlocked() }
    }

    /// Waits while the broker blocks publishing, at most ``AMQPConfiguration/blockedPublishTimeout``.
    func waitWhileBlocked() async throws {
        guard state.withLock({ $0.blocked != nil }) else { return }
        let timeout = configuration.blockedPublishTimeout
        let token = state.withLock { state -> UInt64 in
            state.nextWaiterToken += 1
            return state.nextWaiterToken
        }
        let expiry = Task {
            try await Task.sleep(for: timeout)
            let (waiter, reason) = self.state.withLock { state in
                (state.unblockWaiters.removeValue(forKey: token), state.blocked)
            }
            waiter?.resume(throwing: AMQPError(
                .timeout,
                "the broker has blocked publishing on this connection for \(timeout) (\(reason ?? "resource alarm")); the message was not sent"))
        }
        defer { expiry.cancel() }
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let resumeNow = state.withLock { state -> Bool in
                guard state.blocked != nil else { return true }
                state.unblockWaiters[token] = continuation
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }

    /// Runs `body` on the I/O thread and waits for the answer it gives through the continuation.
    ///
    /// `body` must resume the continuation exactly once, now or later (for instance when the broker replies).
    func request<T: Sendable>(
        _ body: @escaping @Sendable (RabbitMQCConnection, CheckedContinuation<T, any Error>) -> Void
    ) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            do {
                try commands.enqueue(
                    .perform({ connection in body(connection, continuation) },
                             onFailure: { continuation.resume(throwing: $0) }))
            } catch {
                continuation.resume(throwing: error)
            }
        }
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

    /// Records what the handshake negotiated (called once, by the I/O thread).
    func didOpen(parameters: AMQPConnection.Parameters, serverProperties: AMQPTable) {
        state.withLock {
            $0.parameters = parameters
            $0.serverProperties = serverProperties
        }
    }

    /// Records `connection.blocked` (with the broker's reason) or `connection.unblocked` (nil), which releases the
    /// publishers that were waiting.
    func setBlocked(_ reason: String?) {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, any Error>] in
            state.blocked = reason
            guard reason == nil else { return [] }
            let waiters = Array(state.unblockWaiters.values)
            state.unblockWaiters = [:]
            return waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Records how the connection ended: `nil` for a close the application asked for.
    func didEnd(with error: AMQPError?) {
        let result: Result<Void, any Error> = error.map { .failure($0) } ?? .success(())
        end.settle(result)
        let blockedWaiters = state.withLock { state in
            let waiters = Array(state.unblockWaiters.values)
            state.unblockWaiters = [:]
            return waiters
        }
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

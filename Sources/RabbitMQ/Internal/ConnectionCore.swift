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
        var ended: Result<Void, AMQPError>?
        var endWaiters: [CheckedContinuation<Void, any Error>] = []
    }

    let configuration: AMQPConfiguration
    let logger: Logger
    let commands: CommandQueue
    private let state = Mutex(State())

    init(configuration: AMQPConfiguration, logger: Logger) throws(AMQPError) {
        self.configuration = configuration
        self.logger = logger
        self.commands = try CommandQueue()
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
        state.withLock { $0.ended == nil }
    }

    /// Records what the handshake negotiated (called once, by the I/O thread).
    func didOpen(parameters: AMQPConnection.Parameters, serverProperties: AMQPTable) {
        state.withLock {
            $0.parameters = parameters
            $0.serverProperties = serverProperties
        }
    }

    /// Records `connection.blocked` (with the broker's reason) or `connection.unblocked` (nil).
    func setBlocked(_ reason: String?) {
        state.withLock { $0.blocked = reason }
    }

    /// Records how the connection ended: `nil` for a close the application asked for.
    func didEnd(with error: AMQPError?) {
        let result: Result<Void, AMQPError> = error.map { .failure($0) } ?? .success(())
        let waiters = state.withLock { state -> [CheckedContinuation<Void, any Error>] in
            guard state.ended == nil else { return [] }
            state.ended = result
            let waiters = state.endWaiters
            state.endWaiters = []
            return waiters
        }
        for waiter in waiters { waiter.resume(with: result) }
    }

    /// Waits until the connection ends; throws the error it ended with, unless the application closed it.
    func waitUntilEnded() async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let ended = state.withLock { state -> Result<Void, AMQPError>? in
                if let ended = state.ended { return ended }
                state.endWaiters.append(continuation)
                return nil
            }
            if let ended { continuation.resume(with: ended) }
        }
    }
}

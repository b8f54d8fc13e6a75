import Foundation
import Logging
import ServiceLifecycle
import Synchronization


/// A connection to a RabbitMQ broker.
///
/// ```swift
/// let connection = try await AMQPConnection.connect(
///     configuration: try AMQPConfiguration(url: "amqp://guest:guest@127.0.0.1:5672/"), logger: logger)
/// let channel = try await connection.openChannel()
/// try await channel.declareQueue("greetings")
/// try await channel.publish(Data("hello".utf8), routingKey: "greetings")
/// try await connection.close()
/// ```
///
/// Each connection has its own I/O thread, on which every rabbitmq-c call of the connection runs (the C library is
/// not thread-safe). The thread keeps heartbeats going while the application is idle or busy, and sends queued
/// publishes and acknowledgements as soon as they are queued. All methods may be called from any task.
///
/// The connection is a swift-service-lifecycle `Service`: ``run()`` returns when the connection ends, and a graceful
/// shutdown closes it cleanly (consumers cancelled, channels and the connection closed with 200).
public final class AMQPConnection: Sendable, Service {
    /// What the client and the broker agreed on during the handshake.
    public struct Parameters: Sendable, Hashable {
        /// The heartbeat interval; zero when heartbeats are off.
        public let heartbeat: Duration
        /// The largest frame either side sends; bodies larger than this are split into several frames.
        public let frameMax: UInt32
        /// The highest channel number.
        public let channelMax: UInt16
    }

    let core: ConnectionCore
    private let running = Mutex(false)

    private init(core: ConnectionCore) {
        self.core = core
    }

    /// Connects to a broker and logs in.
    ///
    /// - Parameters:
    ///   - configuration: Where and how to connect.
    ///   - logger: Where the connection logs (at `info` and below); the library never bootstraps logging.
    /// - Returns: The open connection, logged in.
    /// - Throws: ``AMQPError`` with code `invalidConfiguration` (nothing is attempted), `hostNotFound`,
    ///   `connectionRefused`, `connectTimeout`, `tlsFailure`, `authenticationFailed` (403), `virtualHostNotAccessible`
    ///   (530), `authenticationMechanismUnsupported`, `connectionClosedByBroker` for another refusal during the
    ///   handshake, `connectionLost` when the broker drops the connection during the handshake, or `libraryError` when
    ///   rabbitmq-c or the system cannot provide a connection. The call does not end early when its task is cancelled;
    ///   ``AMQPConfiguration/connectTimeout`` bounds it, the host name lookup excepted.
    public static func connect(
        configuration: AMQPConfiguration, logger: Logger = Logger(label: "rabbitmq")
    ) async throws -> AMQPConnection {
        try configuration.validate()
        let core = try ConnectionCore(configuration: configuration, logger: logger)
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let name = "amqp-\(configuration.connectionName ?? configuration.host)"
            let thread = Thread {
                RabbitMQCConnection.run(core: core, name: name, opened: continuation)
            }
            thread.name = name
            thread.start()
        }
        return AMQPConnection(core: core)
    }

    /// Connects to the broker a URL names, such as `amqp://user:password@host:5672/vhost?heartbeat=10`.
    ///
    /// - Parameters:
    ///   - url: The broker's `amqp://` or `amqps://` URL; see ``AMQPConfiguration/init(url:)`` for what it may say.
    ///   - logger: Where the connection logs (at `info` and below); the library never bootstraps logging.
    /// - Returns: The open connection, logged in.
    /// - Throws: ``AMQPError``: `invalidConfiguration` when the URL cannot be parsed or names an invalid setting
    ///   (nothing is attempted); otherwise what ``connect(configuration:logger:)`` throws.
    public static func connect(url: String, logger: Logger = Logger(label: "rabbitmq")) async throws -> AMQPConnection {
        try await connect(configuration: AMQPConfiguration(url: url), logger: logger)
    }

    /// The configuration the connection was made with.
    public var configuration: AMQPConfiguration { core.configuration }

    /// The endpoint (a node of ``AMQPConfiguration/endpoints``) the connection is on; while it recovers, the one it
    /// was on last.
    public var endpoint: AMQPConfiguration.Endpoint { core.endpoint }

    /// What the handshake negotiated.
    public var parameters: Parameters { core.parameters }

    /// The broker's properties from `connection.start`: product, version, capabilities, ...
    public var serverProperties: AMQPTable { core.serverProperties }

    /// Whether the connection is still open.
    public var isOpen: Bool { core.isOpen }

    /// The broker's reason while it blocks publishing (`connection.blocked`, for instance a memory alarm), else nil.
    /// Publishes wait while it is set (at most ``AMQPConfiguration/blockedPublishTimeout``); acknowledgements do not.
    public var blockedReason: String? { core.blockedReason }

    /// An executor that runs tasks on the connection's I/O thread, between its reads and writes: opt in with
    /// `withTaskExecutorPreference(connection.taskExecutor) { ... }` or `Task(executorPreference:)`.
    ///
    /// A consumer iterated there gets each delivery without a thread switch, and its acknowledgements and publishes
    /// are queued on the thread that sends them: the lowest latency and the least CPU per delivery the library offers
    /// (see the README's Benchmark section). The price: while the task runs, the connection reads and writes
    /// nothing, so keep such a task short and never block it (no blocking I/O, locks held for long, or CPU-heavy
    /// work; `await` freely). Once the connection has ended, its tasks continue on the global concurrent executor.
    public var taskExecutor: any TaskExecutor { core.taskExecutor }

    /// Whether the connection is recovering from a failure (see ``AMQPConfiguration/Recovery-swift.struct``).
    public var isRecovering: Bool { core.isRecovering }

    /// What automatic recovery does: started, attempts that failed, renamed queues, recovered, gave up. The stream
    /// keeps the newest 256 events nobody has read, and ends when the connection ends. Iterate it from one task.
    public var recoveryEvents: AsyncStream<AMQPRecoveryEvent> { core.recoveryEvents }

    /// Opens a channel (`channel.open`) on a free channel number. Numbers are handed out in turn, so the number of a
    /// channel just closed is not used again at once.
    ///
    /// - Returns: The open channel. It keeps the connection alive while it is referenced.
    /// - Throws: ``AMQPError``: `invalidArgument` when every channel number is in use, `connectionClosed` while the
    ///   connection closes or once the application closed it, the error it ended with once it failed for good
    ///   (`connectionClosedByBroker` or `connectionLost`), `connectionLost` (retriable) while it recovers or when it
    ///   fails before the broker answers, or the broker's refusal; `CancellationError` when the task is cancelled
    ///   first.
    public func openChannel() async throws -> AMQPChannel {
        let state = try await core.request { connection, reply in
            connection.openChannel(reply: reply)
        }
        return AMQPChannel(state: state, connection: self)
    }

    /// Closes the connection gracefully: cancels every consumer, waits (up to 5 seconds) for outstanding confirms,
    /// closes every channel and then the connection with 200. Closing a closed connection does nothing.
    ///
    /// Deliveries the application has not acknowledged go back to their queues.
    ///
    /// - Throws: `CancellationError` when the task is cancelled before the close completed (the close goes on).
    public func close() async throws {
        let closed = OneShotResult<Void>()
        do {
            try core.commands.enqueue(.close(closed))
        } catch {
            // The connection already ended: there is nothing left to close.
            return
        }
        try await closed.wait()
    }

    /// A connection nothing refers to any more (neither the application nor one of its channels, consumers or
    /// deliveries) is closed as ``close()`` would, so that its thread and socket do not outlive it.
    deinit {
        try? core.commands.enqueue(.close(OneShotResult()))
    }

    /// Waits until the connection ends, and throws the error it ended with unless the application closed it.
    ///
    /// - Throws: ``AMQPError``: the error the connection ended with; `CancellationError` when the waiting task is
    ///   cancelled first (the connection stays open).
    public func waitUntilClosed() async throws {
        try await core.waitUntilEnded()
    }

    /// Runs the connection as a service: returns when the application closes it, throws when it fails, and closes
    /// it gracefully on a graceful shutdown. May be called once.
    ///
    /// When its task is cancelled (a `ServiceGroup` does so when another of its services fails), it closes the
    /// connection and throws `CancellationError`, as swift-service-lifecycle expects of a service.
    ///
    /// - Throws: ``AMQPError`` when the connection fails or `run()` was already called; `CancellationError` when
    ///   the task is cancelled.
    public func run() async throws {
        let alreadyRunning = running.withLock { running in
            defer { running = true }
            return running
        }
        guard !alreadyRunning else {
            throw AMQPError(.invalidArgument, "run() of a connection may be called only once")
        }
        do {
            try await withGracefulShutdownHandler {
                try await self.core.waitUntilEnded()
            } onGracefulShutdown: {
                Task { try? await self.close() }
            }
        } catch is CancellationError {
            // close() in this task would stop waiting at once, the task being cancelled: wait from one that is not,
            // so that run() returns once the connection is closed.
            await Task { try? await self.close() }.value
            throw CancellationError()
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// The queue through which tasks hand work to a connection's I/O thread.
///
/// Tasks append commands from any thread; the I/O thread takes them all at once. When the I/O thread is about to block
/// in `poll(2)` it says so (``prepareToSleep()``), and the next task that appends a command writes one byte to a pipe
/// the thread also polls, so queued work goes out at once instead of after a poll interval. While the thread is awake
/// nobody writes to the pipe: a busy publisher costs a lock, not a system call.
///
/// Unconfirmed publishes are bounded: past ``publishHighWaterMark`` queued publishes, publishers wait until the I/O
/// thread has taken the queue, so a fast producer cannot grow memory without bound.
final class CommandQueue: Sendable {
    private struct State {
        var commands: [ConnectionCommand] = []
        var queuedPublishes = 0
        var sleeping = false
        var closedError: AMQPError?
        var spaceWaiters = WaiterList<Void>()
    }

    /// How many publishes may wait in the queue before publishers are made to wait.
    let publishHighWaterMark: Int
    private let state = Mutex(State())
    /// The pipe's read end (polled by the I/O thread) and write end (written by tasks).
    let wakeReadDescriptor: Int32
    private let wakeWriteDescriptor: Int32

    init(publishHighWaterMark: Int = 4096) throws(AMQPError) {
        self.publishHighWaterMark = publishHighWaterMark
        var descriptors: [Int32] = [0, 0]
        guard pipe(&descriptors) == 0 else {
            throw AMQPError(.libraryError, "could not create the wake-up pipe: errno \(errno)")
        }
        for descriptor in descriptors {
            _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
            _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
        }
        wakeReadDescriptor = descriptors[0]
        wakeWriteDescriptor = descriptors[1]
    }

    deinit {
        close(wakeReadDescriptor)
        close(wakeWriteDescriptor)
    }

    /// Appends a command, waking the I/O thread if it sleeps. Throws the connection's error once it is closed.
    func enqueue(_ command: ConnectionCommand) throws(AMQPError) {
        let wake = try state.withLock { state throws(AMQPError) -> Bool in
            if let error = state.closedError { throw error }
            state.commands.append(command)
            if case .publish = command { state.queuedPublishes += 1 }
            let wake = state.sleeping
            state.sleeping = false
            return wake
        }
        if wake { signal() }
    }

    /// Appends a publish, first waiting while the queue already holds ``publishHighWaterMark`` publishes.
    func enqueuePublish(_ command: ConnectionCommand) async throws {
        // The common case, with room in the queue: one lock.
        let accepted = try state.withLock { state throws(AMQPError) -> Bool? in
            if let error = state.closedError { throw error }
            guard state.queuedPublishes < publishHighWaterMark else { return nil }
            state.commands.append(command)
            state.queuedPublishes += 1
            let wake = state.sleeping
            state.sleeping = false
            return wake
        }
        if let wake = accepted {
            if wake { signal() }
            return
        }
        while true {
            let full = try state.withLock { state throws(AMQPError) -> Bool in
                if let error = state.closedError { throw error }
                return state.queuedPublishes >= publishHighWaterMark
            }
            if !full { break }
            let token = state.withLock { $0.spaceWaiters.makeToken() }
            try await WaiterList.wait(token: token) { continuation in
                state.withLock { state -> Result<Void, any Error>? in
                    if state.closedError != nil || state.queuedPublishes < publishHighWaterMark { return .success(()) }
                    return state.spaceWaiters.enqueue(continuation, token: token) ? nil : .failure(CancellationError())
                }
            } cancel: { token in
                self.state.withLock { $0.spaceWaiters.remove(token: token) }
            }
        }
        try enqueue(command)
    }

    /// Takes every queued command; called by the I/O thread only. Publishers waiting for room are released.
    func takeAll() -> [ConnectionCommand] {
        let (commands, waiters) = state.withLock { state in
            let commands = state.commands
            state.commands = []
            state.commands.reserveCapacity(commands.count)
            state.queuedPublishes = 0
            return (commands, state.spaceWaiters.removeAll())
        }
        for waiter in waiters { waiter.resume() }
        return commands
    }

    /// Marks the I/O thread as about to block. Returns false (and does not mark it) when commands are waiting.
    func prepareToSleep() -> Bool {
        state.withLock { state in
            if !state.commands.isEmpty { return false }
            state.sleeping = true
            return true
        }
    }

    /// Marks the I/O thread as awake again, and empties the pipe when `drain` says it holds wake-ups.
    func didWake(drain: Bool) {
        state.withLock { $0.sleeping = false }
        guard drain else { return }
        var buffer = (UInt64(0), UInt64(0))
        while withUnsafeMutableBytes(of: &buffer, { read(wakeReadDescriptor, $0.baseAddress, $0.count) }) > 0 {}
    }

    /// Refuses further commands with `error` and returns the ones still queued, so the I/O thread can fail them.
    func shutdown(with error: AMQPError) -> [ConnectionCommand] {
        let (commands, waiters) = state.withLock { state in
            if state.closedError == nil { state.closedError = error }
            let commands = state.commands
            state.commands = []
            return (commands, state.spaceWaiters.removeAll())
        }
        for waiter in waiters { waiter.resume(throwing: error) }
        return commands
    }

    /// The error commands are refused with, once the connection is closed.
    var closedError: AMQPError? {
        state.withLock { $0.closedError }
    }

    private func signal() {
        var byte: UInt8 = 1
        // A full pipe already holds a wake-up, so a failed write loses nothing.
        _ = write(wakeWriteDescriptor, &byte, 1)
    }
}

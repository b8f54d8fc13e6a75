/// Runs tasks on a connection's I/O thread, between its reads and writes (``AMQPConnection/taskExecutor``).
///
/// A job is one more command in the connection's ``CommandQueue``: it wakes the thread the way a publish does, and
/// runs in order with the other commands. A consumer task that prefers this executor is resumed by the I/O thread
/// on the I/O thread, so a delivery reaches it, and its acknowledgement goes out, without a thread switch. Jobs never
/// touch rabbitmq-c themselves: what they ask of the connection still goes through the queue, so the C library is
/// only ever called by the loop.
///
/// Once the connection has ended, jobs run on the global concurrent executor instead: a task that prefers this
/// executor is never stranded.
final class ConnectionTaskExecutor: TaskExecutor {
    private let commands: CommandQueue

    init(commands: CommandQueue) {
        self.commands = commands
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        do {
            try commands.enqueue(.run(job))
        } catch {
            Self.runElsewhere(job)
        }
    }

    /// Hands a job the I/O thread will not run (its connection ended) to the global concurrent executor.
    static func runElsewhere(_ job: UnownedJob) {
        globalConcurrentExecutor.enqueue(ExecutorJob(job))
    }
}

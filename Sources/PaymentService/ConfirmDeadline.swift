import Foundation
import RabbitMQ

/// How long a publish waits for its confirm; ``ConfirmedChannel`` publishes with it.
///
/// On a cluster, a publish in flight when a stream's leader node dies may never be confirmed nor refused: RabbitMQ
/// 3.10 was seen (ClusterServiceTests) leaving one such publish per channel unconfirmed for good, and the library
/// waits for a confirm without a limit. Every handler waiting for it would then hold its delivery forever, and the
/// stream appender, which settles its entries in order, would stall every later append behind it. After the
/// deadline the publish counts as failed with a retriable error: the caller's delivery goes back to its queue, and
/// the dedupe (claims, leases, the outcomes stream) absorbs the copy that may have been written all the same; and the
/// channel is replaced (see ``ConfirmedChannel``).
enum ConfirmDeadline {
    /// How long a confirm may take: far above the few milliseconds of a healthy broker and the second or two a
    /// quorum queue or stream needs to elect a new leader, well below the 10 s claim lease.
    static let timeout = Duration.seconds(5)

    /// Waits for a confirm, at most `timeout`; nil (a channel without confirms) returns at once.
    ///
    /// - Throws: What the confirm throws; `AMQPError` `timeout` (retriable) when it did not come in time. The confirm
    ///   itself stays pending in the library.
    static func wait(for confirmation: AMQPPublishConfirmation?, what: String, timeout: Duration = timeout)
        async throws
    {
        guard let confirmation else { return }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await confirmation.wait() }
            group.addTask {
                try await Task.sleep(for: timeout)
                throw AMQPError(.timeout, "no confirm from the broker within \(timeout) for a publish to \(what)")
            }
            defer { group.cancelAll() }
            try await group.next()
        }
    }
}

import Synchronization

/// The broker's pending answer to one publish on a channel in confirm mode.
///
/// ``AMQPChannel/startPublish(_:exchange:routingKey:properties:mandatory:)`` returns one as soon as the message is
/// handed to the connection, so a publisher can keep many messages in flight and wait for their confirms later:
///
/// ```swift
/// var pending: [AMQPPublishConfirmation] = []
/// for order in orders {
///     pending.append(try await channel.startPublish(order, routingKey: "orders"))
/// }
/// for confirmation in pending { try await confirmation.wait() }
/// ```
public struct AMQPPublishConfirmation: Sendable {
    let box: ConfirmationBox

    /// Waits for the broker's answer.
    ///
    /// - Throws: ``AMQPError`` with code `publishNacked` when the broker refused the message, `messageReturned` when
    ///   a mandatory message could not be routed, or the channel's or connection's error when it closed before the
    ///   broker answered (the message may or may not have been taken); `CancellationError` when the waiting task is
    ///   cancelled first (the confirm can still be waited for again).
    public func wait() async throws {
        try await box.wait()
    }
}

/// The shared slot a confirm is settled into by the I/O thread and awaited by the publisher.
final class ConfirmationBox: Sendable {
    private let outcome = OneShotResult<Void>()
    /// Told the broker's answer once, on the thread that settles it: how a publish span ends at its confirm.
    private let onSettle: (@Sendable (Result<Void, AMQPError>) -> Void)?
    /// Whether `onSettle` was told: it hears the first answer, before the publisher wakes up to it.
    private let told = Atomic(false)

    init(onSettle: (@Sendable (Result<Void, AMQPError>) -> Void)? = nil) {
        self.onSettle = onSettle
    }

    /// Waits for the broker's answer; a cancelled wait throws `CancellationError` and leaves the confirm pending.
    func wait() async throws {
        try await outcome.wait()
    }

    /// Settles the confirmation; later calls are ignored.
    func settle(_ result: Result<Void, AMQPError>) {
        if let onSettle, told.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged {
            onSettle(result)
        }
        outcome.settle(result.mapError { $0 })
    }
}

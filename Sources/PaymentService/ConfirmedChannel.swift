import Foundation
import RabbitMQ
import Synchronization

/// A channel in confirm mode that the service publishes on, replaced by a new one once a publish on it went
/// unconfirmed past ``ConfirmDeadline/timeout`` or was refused (`basic.nack`).
///
/// Why replace it: on the three-node test cluster (RabbitMQ 3.10.8), a channel can stay broken after a queue's or
/// stream's leader node died, while its connection is fine, so the connection's recovery never replaces it:
/// - after a stream's leader died, a channel whose publish to that stream was never confirmed went on confirming
///   every later publish to the stream without storing any of them (ClusterServiceTests: 268 registrations lost in
///   one run);
/// - a channel whose first publish to a quorum queue came while the queue had no leader is refused (`basic.nack`)
///   every later publish to that queue (ClusterFailoverTests; reproduced with another client).
/// A new channel stores them again.
final class ConfirmedChannel: Sendable {
    private let connection: AMQPConnection
    private let maxOutstanding: Int
    private let state: Mutex<(channel: AMQPChannel, generation: UInt64)>

    /// Opens a channel on `connection` and turns on publisher confirms.
    ///
    /// - Throws: What opening the channel or `confirm.select` throws.
    static func open(on connection: AMQPConnection, maxOutstanding: Int = 1000) async throws -> ConfirmedChannel {
        ConfirmedChannel(
            connection: connection, maxOutstanding: maxOutstanding,
            channel: try await openChannel(on: connection, maxOutstanding: maxOutstanding))
    }

    private init(connection: AMQPConnection, maxOutstanding: Int, channel: AMQPChannel) {
        self.connection = connection
        self.maxOutstanding = maxOutstanding
        state = Mutex((channel, 0))
    }

    private static func openChannel(on connection: AMQPConnection, maxOutstanding: Int) async throws -> AMQPChannel {
        let channel = try await connection.openChannel()
        try await channel.enablePublisherConfirms(maxOutstanding: maxOutstanding)
        return channel
    }

    /// A publish on its way: its confirm, and which channel it went out on.
    struct Pending: Sendable {
        let confirmation: AMQPPublishConfirmation?
        let generation: UInt64
        let what: String
    }

    /// Publishes on the current channel without waiting for the confirm; wait with ``wait(for:)``.
    ///
    /// - Throws: What `startPublish` throws.
    func startPublish(
        _ body: Data, exchange: String = "", routingKey: String, properties: AMQPProperties, mandatory: Bool = true
    ) async throws -> Pending {
        let (channel, generation) = state.withLock { ($0.channel, $0.generation) }
        let what = exchange.isEmpty ? routingKey : exchange
        do {
            let confirmation = try await channel.startPublish(
                body, exchange: exchange, routingKey: routingKey, properties: properties, mandatory: mandatory)
            return Pending(confirmation: confirmation, generation: generation, what: what)
        } catch let error as AMQPError {
            throw retriableIfReplaced(error, generation: generation, what: what)
        }
    }

    /// Publishes and waits for the confirm, at most ``ConfirmDeadline/timeout``.
    ///
    /// - Throws: What `startPublish` or the confirm throws; `AMQPError` `timeout` (retriable) when no confirm came
    ///   in time, after which the channel has been replaced.
    func publish(
        _ body: Data, exchange: String = "", routingKey: String, properties: AMQPProperties, mandatory: Bool = true
    ) async throws {
        try await wait(
            for: try await startPublish(
                body, exchange: exchange, routingKey: routingKey, properties: properties, mandatory: mandatory))
    }

    /// Waits for a publish's confirm, at most ``ConfirmDeadline/timeout``; on a timeout or a `basic.nack` replaces
    /// the channel it went out on, unless that was done already.
    ///
    /// - Throws: What the confirm throws (`publishNacked`, retriable, when refused); `AMQPError` `timeout`
    ///   (retriable) when it did not come in time.
    func wait(for pending: Pending) async throws {
        do {
            try await ConfirmDeadline.wait(for: pending.confirmation, what: pending.what)
        } catch let error as AMQPError where error.code == .timeout || error.code == .publishNacked {
            await replace(generation: pending.generation)
            throw error
        } catch let error as AMQPError {
            throw retriableIfReplaced(error, generation: pending.generation, what: pending.what)
        }
    }

    /// A publish on a channel this object replaced meanwhile fails when that channel's close goes through: that is
    /// the replacement at work, not a fault of the publish, so it is retriable like the timeout that caused it.
    /// Without this, a publisher that took the old channel just before the switch failed the whole service (seen
    /// once in ClusterServiceTests: `channelClosed`, "closed by the application").
    private func retriableIfReplaced(_ error: AMQPError, generation: UInt64, what: String) -> AMQPError {
        Self.error(error, publishedOn: generation, current: state.withLock { $0.generation }, what: what)
    }

    /// What a publish's failure becomes: `channelClosed` on a channel generation that is no longer the current one
    /// turns into a retriable `timeout`; anything else is kept.
    static func error(_ error: AMQPError, publishedOn generation: UInt64, current: UInt64, what: String) -> AMQPError {
        guard error.code == .channelClosed, generation != current else { return error }
        return AMQPError(.timeout, "the channel of a publish to \(what) was replaced and closed; publish again")
    }

    private func replace(generation: UInt64) async {
        guard state.withLock({ $0.generation == generation }) else { return }
        let fresh: AMQPChannel
        do {
            fresh = try await Self.openChannel(on: connection, maxOutstanding: maxOutstanding)
        } catch {
            // The connection is recovering or gone: its recovery brings the old channel back anew, or the service
            // fails on its own; the next timeout tries again.
            return
        }
        let stale = state.withLock { state -> AMQPChannel? in
            guard state.generation == generation else { return nil }
            let stale = state.channel
            state = (fresh, generation + 1)
            return stale
        }
        // Closed in the background: the broker may never answer the close of a channel in that state (seen on the
        // cluster), and the publishers waiting here must go on with the new channel.
        let unused = stale ?? fresh
        Task { try? await unused.close() }
    }
}

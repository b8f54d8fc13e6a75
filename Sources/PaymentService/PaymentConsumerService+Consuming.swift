import Foundation
import Logging
import RabbitMQ
import ServiceLifecycle
import Synchronization

/// Consuming the three queues until a graceful shutdown, and the shutdown itself: no new deliveries, running
/// handlers get ``PaymentConsumerConfiguration/shutdownGrace`` to finish, and are cancelled after it.
extension PaymentConsumerService {
    /// Consumes the three queues with `handler` until a graceful shutdown has drained them, or its grace ran out.
    func consume(
        with handler: PaymentHandler, on connection: AMQPConnection, followers: [Task<Void, any Error>],
        logs: [StreamLog]
    ) async throws {
        let topology = configuration.topology
        // Only quorum queues strand deliveries of a consumer whose node stayed up (see StarvedConsumerPolicy).
        let policy = topology.queueType == .quorum ? configuration.starvedConsumers : .off
        var started: [QueueConsumer] = []
        for queue in [topology.clientsQueue, topology.paymentsQueue, topology.retriesQueue] {
            let consumption = try await QueueConsumption.start(
                queue, on: connection, prefetch: configuration.prefetch, policy: policy, logger: logger)
            let handle: @Sendable (AMQPDelivery) async throws -> Void
            // Each delivery is handled in its process span: the payment's trace goes on through what it publishes.
            if queue == topology.clientsQueue {
                handle = { delivery in
                    try await delivery.process { _ in try await handler.handleRegistration(delivery) }
                }
            } else {
                handle = { delivery in
                    try await delivery.process { span in
                        try await handler.handlePayment(delivery, from: queue, span: span)
                    }
                }
            }
            started.append(QueueConsumer(consumption: consumption, handle: handle))
        }
        let consumers = started
        // Ready before the line is logged: whoever reads the line may count on the readiness probe answering 200.
        enter(.consuming)
        logger.info(
            "payment consumer running",
            metadata: [
                "queues": "\(topology.clientsQueue), \(topology.paymentsQueue), \(topology.retriesQueue)",
                "prefetch": "\(configuration.prefetch)",
            ])

        do {
            try await drainUntilShutdown(consumers: consumers, followers: followers, logs: logs)
        } catch let over as ShutdownGraceOver {
            logger.warning(
                "shutdown grace over: running handlers cancelled; their deliveries go back to their queues",
                metadata: ["grace": "\(configuration.shutdownGrace)", "handlers": "\(over.runningHandlers)"])
        }
    }

    /// Thrown into the consuming task group once a graceful shutdown has lasted
    /// ``PaymentConsumerConfiguration/shutdownGrace``: it cancels whatever still runs.
    private struct ShutdownGraceOver: Error {
        /// How many handlers were still running then.
        let runningHandlers: Int
    }

    /// Waits for a graceful shutdown, then for the grace; throws ``ShutdownGraceOver`` if both pass before the task
    /// is cancelled (which it is once everything has drained).
    private func endShutdownGrace(consumers: [QueueConsumer]) async throws {
        do {
            try await gracefulShutdown()
            try await Task.sleep(for: configuration.shutdownGrace)
        } catch {
            return
        }
        throw ShutdownGraceOver(runningHandlers: consumers.map(\.consumption.handlingCount).reduce(0, +))
    }

    private func drainUntilShutdown(
        consumers: [QueueConsumer], followers: [Task<Void, any Error>], logs: [StreamLog]
    ) async throws {
        try await withGracefulShutdownHandler {
            try await withThrowingTaskGroup(of: Bool.self) { group in
                for queueConsumer in consumers {
                    let handle = queueConsumer.handle
                    group.addTask {
                        try await queueConsumer.consumption.run { delivery in
                            // Deliveries already buffered when the shutdown began stay unacknowledged: closing the
                            // channel hands them back to the broker, as if they had never arrived.
                            if self.stopping.withLock({ $0 }) { return }
                            try await self.handleOrGiveBack(delivery, handle: handle)
                        }
                        return true
                    }
                }
                group.addTask {
                    await self.forgetExpiredClaims()
                    return false
                }
                group.addTask {
                    try await self.endShutdownGrace(consumers: consumers)
                    return false
                }
                for follower in followers {
                    group.addTask {
                        do {
                            // A task's value does not end with the waiting task's cancellation: passed on, so that
                            // a group that ends on an error (or when the shutdown grace is over) is not held up.
                            try await withTaskCancellationHandler {
                                try await follower.value
                            } onCancel: {
                                follower.cancel()
                            }
                        } catch {
                            self.claims.fail(error)
                            throw error
                        }
                        if !self.stopping.withLock({ $0 }) {
                            throw PaymentServiceError("a shared stream's consumer ended unexpectedly")
                        }
                        return false
                    }
                }
                let summary = Task { await self.logSummaries() }
                defer { summary.cancel() }
                var drained = 0
                while drained < consumers.count, let isDrain = try await group.next() {
                    if isDrain { drained += 1 }
                }
                // The followers are tasks of their own: cancelling the group does not reach them. Their consumers
                // are cancelled first, so each ends as a stopped follower, whichever consumer it has come to read.
                // At most 5 s each: a broker that never answers a basic.cancel must not hold the shutdown.
                await withTaskGroup(of: Void.self) { stops in
                    for log in logs { stops.addTask { await log.stop(waitingAtMost: .seconds(5)) } }
                }
                for follower in followers { follower.cancel() }
                group.cancelAll()
                try await group.waitForAll()
            }
        } onGracefulShutdown: {
            self.logger.info("shutting down: no new deliveries are taken; running handlers finish")
            self.stopping.withLock { $0 = true }
            self.enter(.stopping)
            self.registry.cancelWaits()
            Task {
                for queueConsumer in consumers { await queueConsumer.consumption.stop() }
            }
        }
    }

    /// A queue's consumption and the handler of its deliveries.
    private struct QueueConsumer: Sendable {
        let consumption: QueueConsumption
        let handle: @Sendable (AMQPDelivery) async throws -> Void
    }

    /// Runs a handler. A retriable failure (the connection is recovering, the broker refused a publish) gives the
    /// delivery back to its queue after a pause, so it is tried again without a hot loop; any other failure stops
    /// the service, which then exits non-zero.
    private func handleOrGiveBack(
        _ delivery: AMQPDelivery, handle: @Sendable (AMQPDelivery) async throws -> Void
    ) async throws {
        do {
            try await handle(delivery)
        } catch is CancellationError {
            // The shutdown grace is over, or the consumer is being made anew: left unacknowledged, the delivery goes
            // back to its queue when its channel closes, as after a crash; the claims' leases and the outcomes
            // stream keep it from being processed twice.
            return
        } catch let error as AMQPError where error.isRetriable {
            logger.warning(
                "handling failed; the delivery goes back to its queue",
                metadata: [
                    "error": "\(error)", "queue.routing_key": "\(delivery.routingKey)",
                    "delivery_tag": "\(delivery.deliveryTag)",
                ])
            try? await Task.sleep(for: .seconds(1))
            // After a recovery this is a no-op: the broker already requeued what the old connection held.
            try? await delivery.nack(requeue: true)
        }
    }
}

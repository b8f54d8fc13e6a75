import Foundation
import RabbitMQ
import RabbitMQTestSupport
import XCTest

/// Automatic recovery against the real broker: the connection is closed under the client's feet with
/// `rabbitmqctl close_connection` (320 CONNECTION_FORCED), as an operator or a restarting broker would.
final class RecoveryTests: XCTestCase {
    /// Reads recovery events until one matches, within a time limit.
    private func waitForEvent(
        _ connection: AMQPConnection, seconds: Double = 20, _ matches: @escaping @Sendable (AMQPRecoveryEvent) -> Bool
    ) async throws -> AMQPRecoveryEvent {
        try await withTimeout(seconds, "a recovery event") {
            for await event in connection.recoveryEvents where matches(event) { return event }
            throw TestTimeout(seconds: seconds, what: "a recovery event (the stream ended)")
        }
    }

    func testForcedCloseRecoversTopologyChannelsAndConsumers() async throws {
        let name = TestBroker.uniqueName("recovering")
        let connection = try await TestBroker.connect {
            $0.connectionName = name
            $0.recovery = .enabled(initialDelay: .milliseconds(100), maxDelay: .seconds(1))
        }
        let channel = try await connection.openChannel()
        try await channel.setPrefetch(5)
        let exchange = TestBroker.uniqueName("recovered-exchange")
        try await channel.declareExchange(exchange, type: .fanout)
        // A server-named exclusive queue dies with the connection and comes back with a new name.
        let temporary = try await channel.declareQueue(exclusive: true)
        try await channel.bindQueue(temporary.name, to: exchange)
        let consumer = try await channel.consume(queue: temporary.name)

        try await channel.publish(Data("before".utf8), exchange: exchange, routingKey: "")
        let received = Task { () -> [String] in
            var bodies: [String] = []
            for try await delivery in consumer {
                bodies.append(String(decoding: delivery.body, as: UTF8.self))
                try await delivery.ack()
                if bodies.count == 2 { break }
            }
            return bodies
        }
        try await Task.sleep(for: .milliseconds(200))

        XCTAssertEqual(try TestBroker.forceClose(connectionNamed: name), 1)
        let started = try await waitForEvent(connection) { if case .started = $0 { true } else { false } }
        guard case .started(let cause) = started else { return XCTFail("\(started)") }
        XCTAssertEqual(cause.replyCode, 320)
        let renamed = try await waitForEvent(connection) { if case .queueRenamed = $0 { true } else { false } }
        guard case .queueRenamed(let old, let new) = renamed else { return XCTFail("\(renamed)") }
        XCTAssertEqual(old, temporary.name)
        XCTAssertNotEqual(new, temporary.name)
        _ = try await waitForEvent(connection) { if case .recovered = $0 { true } else { false } }
        XCTAssertFalse(connection.isRecovering)
        XCTAssertTrue(connection.isOpen)

        // The binding and the consumer came back on the new queue: the same sequence receives the next message.
        try await channel.publish(Data("after".utf8), exchange: exchange, routingKey: "")
        let bodies = try await withTimeout(10, "both deliveries") { try await received.value }
        XCTAssertEqual(bodies, ["before", "after"])
        try await channel.deleteExchange(exchange)
        try await connection.close()
    }

    func testInFlightConfirmsFailRetriablyAndOldDeliveryTagsAreIgnored() async throws {
        let name = TestBroker.uniqueName("in-flight")
        let connection = try await TestBroker.connect {
            $0.connectionName = name
            $0.recovery = .enabled(initialDelay: .milliseconds(100), maxDelay: .seconds(1))
        }
        let channel = try await connection.openChannel()
        let queue = try await channel.declareTestQueue()
        try await channel.publish(Data("unacked".utf8), routingKey: queue)
        let stale = try await channel.waitForMessage(in: queue)
        try await channel.enablePublisherConfirms(maxOutstanding: 10_000)

        // Keep publishing while the connection is closed under us: confirms in flight fail with a retriable error.
        let publisher = Task { () -> [AMQPError] in
            var errors: [AMQPError] = []
            for index in 0..<5000 {
                do {
                    try await channel.startPublish(Data("\(index)".utf8), routingKey: queue)
                } catch let error as AMQPError {
                    errors.append(error)
                    if errors.count > 3 { break }
                }
            }
            return errors
        }
        try await Task.sleep(for: .milliseconds(20))
        try TestBroker.forceClose(connectionNamed: name)
        let errors = try await withTimeout(10, "the publisher") { try await publisher.value }
        _ = try await waitForEvent(connection) { if case .recovered = $0 { true } else { false } }
        for error in errors {
            XCTAssertTrue(error.isRetriable, "\(error)")
            XCTAssertEqual(error.code, .connectionLost)
        }

        // The delivery came on the old connection: acknowledging it is a no-op, not a channel error.
        try await stale.ack()
        let afterwards = try await channel.declareQueue(queue, passive: true)
        XCTAssertEqual(afterwards.name, queue)
        XCTAssertTrue(channel.isOpen)
        // The broker gave the unacknowledged message back when the old connection died.
        let redelivered = try await channel.waitForMessage(in: queue)
        XCTAssertEqual(String(decoding: redelivered.body, as: UTF8.self), "unacked")
        XCTAssertTrue(redelivered.isRedelivered)
        try await connection.close()
    }

    func testRecoveryCanBeSwitchedOff() async throws {
        let name = TestBroker.uniqueName("not-recovering")
        let connection = try await TestBroker.connect {
            $0.connectionName = name
            $0.recovery = .disabled
        }
        let channel = try await connection.openChannel()
        let consumer = try await channel.consume(queue: try await channel.declareTestQueue())
        try TestBroker.forceClose(connectionNamed: name)
        let error = try await withTimeout(10, "the consumer to fail") { () -> AMQPError? in
            do {
                for try await _ in consumer {}
                return nil
            } catch let error as AMQPError {
                return error
            }
        }
        XCTAssertEqual(error?.code, .connectionClosedByBroker)
        XCTAssertEqual(error?.replyCode, 320)
        XCTAssertFalse(connection.isOpen)
    }

    func testAttemptsBackOffUntilTheBrokerIsReachableOrGiveUp() async throws {
        // A broker that is gone for good: recovery retries with growing pauses, then gives up as configured.
        let name = TestBroker.uniqueName("giving-up")
        let configuration = try TestBroker.configuration
        let proxy = try LoopbackProxy(targetPort: configuration.port)
        let connection = try await TestBroker.connect {
            $0.host = "127.0.0.1"
            $0.port = proxy.port
            $0.connectionName = name
            $0.connectTimeout = .seconds(1)
            $0.recovery = .enabled(initialDelay: .milliseconds(50), maxDelay: .milliseconds(200), maxAttempts: 3)
        }
        proxy.stopAccepting()
        try TestBroker.forceClose(connectionNamed: name)
        let failures = try await withTimeout(20, "recovery to give up") { () -> Int? in
            var failures = 0
            for await event in connection.recoveryEvents {
                if case .attemptFailed = event { failures += 1 }
                if case .gaveUp = event { return failures }
            }
            return nil
        }
        // Three attempts: two reported as failed with a retry to come, the third ends in giving up.
        XCTAssertEqual(failures, 2)
        let ended = await assertAMQPError(try await connection.waitUntilClosed())
        XCTAssertEqual(ended?.replyCode, 320)
        proxy.close()
    }
}

/// A broker that stops answering (a proxy that stops forwarding) is declared dead within two heartbeat intervals,
/// and the connection recovers once the path is back.
final class DeadPeerTests: XCTestCase {
    func testSilentBrokerIsDetectedWithinTwoHeartbeatsAndRecovered() async throws {
        let proxy = try LoopbackProxy(targetPort: try TestBroker.configuration.port)
        defer { proxy.close() }
        let connection = try await TestBroker.connect {
            $0.host = "127.0.0.1"
            $0.port = proxy.port
            $0.heartbeat = .seconds(2)
            $0.recovery = .enabled(initialDelay: .milliseconds(100), maxDelay: .milliseconds(500))
        }
        let channel = try await connection.openChannel()
        let queue = try await channel.declareTestQueue()

        proxy.pause()
        let silenced = ContinuousClock.now
        let cause = try await withTimeout(15, "the dead peer to be noticed") { () -> AMQPError? in
            for await event in connection.recoveryEvents {
                if case .started(let cause) = event { return cause }
            }
            return nil
        }
        let noticedAfter = ContinuousClock.now - silenced
        XCTAssertEqual(cause?.code, .connectionLost)
        XCTAssertTrue(cause?.message.contains("heartbeat") ?? false, "\(String(describing: cause))")
        // Within two heartbeat intervals (4 s): the client allows one and a half intervals of silence.
        XCTAssertLessThan(noticedAfter, .seconds(4), "took \(noticedAfter)")

        proxy.resume()
        try await withTimeout(15, "the recovery") {
            for await event in connection.recoveryEvents {
                if case .recovered = event { return }
            }
        }
        try await channel.publish(Data("back".utf8), routingKey: queue)
        let delivery = try await channel.waitForMessage(in: queue)
        XCTAssertEqual(String(decoding: delivery.body, as: UTF8.self), "back")
        try await connection.close()
    }
}

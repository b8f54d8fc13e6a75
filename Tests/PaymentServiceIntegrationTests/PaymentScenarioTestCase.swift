import Foundation
import PaymentService
import RabbitMQ
import XCTest

/// What every scenario shares: an administrative connection, a name prefix of its own, the consumers and producers
/// it starts as processes, and the clean-up afterwards (consumers stopped with SIGTERM and checked to exit 0, the
/// prefixed queues and exchanges deleted).
class PaymentScenarioTestCase: XCTestCase {
    /// The grace period after an outcome during which no other outcome of the same payment may arrive.
    let gracePeriod = Duration.seconds(1)

    var prefix = ""
    var admin: AMQPConnection?
    private var consumers: [RunningProgram] = []
    private var observers: [OutcomeObserver] = []

    /// The test's queue and exchange names.
    var topology: PaymentTopology { PaymentTopology(prefix: prefix) }

    /// The administrative connection; setUp made it.
    var broker: AMQPConnection {
        get throws { try XCTUnwrap(admin, "setUp did not connect") }
    }

    override func setUp() async throws {
        try await super.setUp()
        prefix = PaymentTestBroker.uniquePrefix()
        let admin = try await PaymentTestBroker.connect(name: "payment-tests-admin")
        self.admin = admin
        // Kept open to the end: AMQPConnection.close() with no channel open waits out a whole I/O tick (1 s with
        // the default heartbeat) before it sends connection.close, which would add a second to every test.
        _ = try await admin.openChannel()
    }

    override func tearDown() async throws {
        for consumer in consumers where consumer.isRunning {
            await stop(consumer)
        }
        if (testRun?.totalFailureCount ?? 0) > 0 {
            // Kept, and their ends printed, so that a failure in CI shows what the consumers were doing.
            for consumer in consumers {
                print("\(consumer.name)'s log (\(consumer.outputPath)) ends with:\n\(consumer.stderrTail)")
            }
        } else {
            for consumer in consumers { consumer.removeOutput() }
        }
        consumers = []
        for observer in observers { await observer.close() }
        observers = []
        if let admin {
            // Never with an empty prefix: those would be the service's own queues.
            if !prefix.isEmpty {
                do {
                    try await admin.deleteTopology(topology)
                } catch {
                    XCTFail("could not delete the queues and exchanges of prefix \(prefix): \(error)")
                }
            }
            try? await admin.close()
        }
        admin = nil
        try await super.tearDown()
    }

    // MARK: - Consumers

    /// Starts `consumer` on the test's prefix with short retries and no summaries, plus `arguments`; unless
    /// `waitForTopology` is false, waits until it declared its events exchange and then until it consumes (the events
    /// exchange comes before the delay queues, so its existence alone does not mean the topology is complete).
    /// The consumer's `--hold-time`: off by default here, so that these tests exercise the delayed-retry path
    /// that hold and wake would otherwise make rare; the scale-out tests turn it on.
    var holdTime = "0s"

    @discardableResult
    func startConsumer(_ arguments: [String] = [], waitForTopology: Bool = true) async throws -> RunningProgram {
        let consumer = try RunningProgram(
            "consumer",
            [
                "--url", PaymentTestBroker.url, "--name-prefix", prefix, "--retry-step", "200ms", "--summary-interval",
                "0s", "--hold-time", holdTime,
            ]
                + arguments)
        consumers.append(consumer)
        if waitForTopology {
            try await waitForEventsExchange(declaredBy: consumer)
            try await consumer.waitForLog("payment consumer running", seconds: 15)
        }
        return consumer
    }

    /// Waits until `<prefix>payment-events` exists; fails at once if the consumer exits first.
    func waitForEventsExchange(declaredBy consumer: RunningProgram, seconds: Double = 15) async throws {
        let broker = try broker
        let exchange = topology.eventsExchange
        try await eventually(seconds, "the consumer to declare \(exchange); its log ends with:\n\(consumer.stderrTail)")
        {
            () -> Void? in
            if try await broker.exchangeExists(exchange) { return () }
            if !consumer.isRunning {
                throw ProgramExited(
                    name: consumer.name, status: consumer.process.terminationStatus, stderrTail: consumer.stderrTail)
            }
            return nil
        }
    }

    /// Stops a consumer with SIGTERM and checks that it exits 0 within 15 s; returns what it logged.
    @discardableResult
    func stop(_ consumer: RunningProgram, file: StaticString = #filePath, line: UInt = #line) async -> String {
        consumer.terminate()
        do {
            let result = try await consumer.waitForExit(seconds: 15)
            XCTAssertTrue(result.exited, "the consumer was killed by signal \(result.status)", file: file, line: line)
            XCTAssertEqual(
                result.status, 0, "the consumer's exit status after SIGTERM; its log ends with:\n\(result.stderrTail)",
                file: file, line: line)
            return result.stderr
        } catch {
            XCTFail("the consumer did not stop after SIGTERM: \(error)", file: file, line: line)
            return consumer.stderr
        }
    }

    // MARK: - Outcomes and producers

    /// Watches the test's events exchange, which must exist.
    func observeOutcomes() async throws -> OutcomeObserver {
        let observer = try await OutcomeObserver.attach(to: topology.eventsExchange)
        observers.append(observer)
        return observer
    }

    /// Runs `producer <arguments> --url … --name-prefix <prefix>` to its end.
    func runProducer(_ arguments: [String]) async throws -> ProgramResult {
        try await RunningProgram.run(
            "producer", arguments + ["--url", PaymentTestBroker.url, "--name-prefix", prefix], seconds: 30)
    }

    /// Runs the producer and checks that it exited 0 after printing exactly `expectedIDs`.
    func produce(
        _ arguments: [String], printing expectedIDs: [String], file: StaticString = #filePath, line: UInt = #line
    ) async throws {
        let result = try await runProducer(arguments)
        XCTAssertEqual(result.status, 0, "producer \(arguments): \(result.stderrTail)", file: file, line: line)
        XCTAssertEqual(result.stdoutLines, expectedIDs, "producer \(arguments) printed", file: file, line: line)
    }

    /// Registers a client with the producer and waits until `consumer` logged it.
    func register(_ clientID: String, with consumer: RunningProgram) async throws {
        try await produce(["client", clientID], printing: [clientID])
        try await consumer.waitForLog("client registered", "client.id=\(clientID) ")
    }

    // MARK: - Queues

    /// Asserts that the queues a message passes through hold nothing: it was neither lost in them nor left behind.
    /// The delay queues are checked when they exist (TTL mode); the parking lot unless `parkingLot` is false.
    func assertNothingLeft(parkingLot: Bool = true, file: StaticString = #filePath, line: UInt = #line) async throws {
        let broker = try broker
        var queues = [topology.clientsQueue, topology.paymentsQueue, topology.retriesQueue]
        if parkingLot { queues.append(topology.parkingLot) }
        for queue in queues {
            let count = try await broker.messageCount(queue)
            XCTAssertEqual(count, 0, "messages left in \(queue)", file: file, line: line)
        }
        for queue in topology.testDelayQueues {
            guard let info = try await broker.queueInfo(queue) else { continue }
            XCTAssertEqual(info.messageCount, 0, "messages left in \(queue)", file: file, line: line)
        }
    }

    /// Appends to the claims stream a claim of another instance, made now and never settled or released: what an
    /// instance that died holding it leaves, or one still at work.
    func writeClaim(on paymentID: String, as claimID: String) async throws {
        let entry = ClaimRecordCodec.entry([
            .claim(paymentID: paymentID, claimID: claimID, at: Int64((Date().timeIntervalSince1970 * 1000).rounded()))
        ])
        let channel = try await broker.openChannel()
        try await channel.enablePublisherConfirms()
        try await channel.publish(entry.body, routingKey: topology.claimsLog, properties: entry.properties, mandatory: true)
        try await channel.close()
    }

    /// Publishes a raw body with confirms, to test what the producer would never send.
    func publishRaw(
        _ body: Data, to queue: String, messageID: String, headers: AMQPTable? = nil
    ) async throws {
        let channel = try await broker.openChannel()
        try await channel.enablePublisherConfirms()
        try await channel.publish(
            body, routingKey: queue,
            properties: AMQPProperties(headers: headers, deliveryMode: .persistent, messageID: messageID),
            mandatory: true)
        try await channel.close()
    }
}

extension PaymentScenarioTestCase {
    /// Starts `consumer` with exactly `arguments` (no URL, prefix or retry options added, no wait), stopped and
    /// checked at tearDown like those of ``startConsumer(_:waitForTopology:)``: for a consumer on another virtual host.
    func startConsumer(exactly arguments: [String]) throws -> RunningProgram {
        let consumer = try RunningProgram("consumer", arguments)
        consumers.append(consumer)
        return consumer
    }

    /// Watches `exchange` on the broker at `url` (another virtual host); closed at tearDown.
    func observeOutcomes(of exchange: String, at url: String) async throws -> OutcomeObserver {
        let observer = try await OutcomeObserver.attach(to: exchange, url: url)
        observers.append(observer)
        return observer
    }
}

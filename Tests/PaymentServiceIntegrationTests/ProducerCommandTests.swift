import Foundation
import PaymentService
import RabbitMQ
import XCTest

/// (i) The `producer` command line.
final class ProducerCommandTests: PaymentScenarioTestCase {
    private func declareTopology() async throws {
        let channel = try await broker.openChannel()
        try await topology.declareCommon(on: channel)
        try await channel.close()
    }

    func testInvalidPaymentsAreRefusedWithAUsageMessage() async throws {
        try await declareTopology()
        let cases: [(arguments: [String], problem: String)] = [
            (["--amount", "1e3"], "field \"amount\" must be a positive decimal string"),
            (["--amount=-1"], "field \"amount\" must be a positive decimal string"),
            (["--amount", "0"], "field \"amount\" must be a positive decimal string"),
            (["--currency", "eur"], "field \"currency\" must be an ISO 4217 code"),
            (["--currency", "EURO"], "field \"currency\" must be an ISO 4217 code"),
            (["--payment-id", ""], "field \"paymentId\" is empty"),
        ]
        for (arguments, problem) in cases {
            let result = try await runProducer(["payment", "client-i"] + arguments)
            XCTAssertTrue(result.exited, "\(arguments)")
            XCTAssertNotEqual(result.status, 0, "\(arguments)")
            XCTAssertTrue(result.stderr.contains("invalid payment: \(problem)"), "\(arguments): \(result.stderrTail)")
            XCTAssertTrue(result.stderr.contains("Usage: producer payment"), "\(arguments): \(result.stderrTail)")
            XCTAssertEqual(result.stdout, "", "\(arguments)")
        }
        let empty = try await runProducer(["client", ""])
        XCTAssertNotEqual(empty.status, 0)
        XCTAssertTrue(empty.stderr.contains("invalid client id: field \"clientId\" is empty"), empty.stderrTail)
        XCTAssertTrue(empty.stderr.contains("Usage: producer client"), empty.stderrTail)

        // Nothing was published.
        let payments = try await broker.messageCount(topology.paymentsQueue)
        XCTAssertEqual(payments, 0)
        let clients = try await broker.messageCount(topology.clientsQueue)
        XCTAssertEqual(clients, 0)
    }

    func testTheProducerWalksItsURLsUntilABrokerAnswersAndNamesEachWhenNoneDoes() async throws {
        try await declareTopology()
        // Nothing listens on loopback ports 1 and 2: those nodes are down.
        let dead = ["amqp://guest:guest@127.0.0.1:1/", "amqp://guest:guest@127.0.0.1:2/"]
        let walked = try await RunningProgram.run(
            "producer", ["client", "c-walk", "--url", dead[0], "--url", dead[1] + "," + PaymentTestBroker.url,
                         "--name-prefix", prefix], seconds: 30)
        XCTAssertEqual(walked.status, 0, walked.stderrTail)
        XCTAssertEqual(walked.stdoutLines, ["c-walk"])
        let clients = try await broker.messageCount(topology.clientsQueue)
        XCTAssertEqual(clients, 1)

        let failed = try await RunningProgram.run(
            "producer", ["client", "c-none", "--url", dead.joined(separator: ","), "--name-prefix", prefix], seconds: 30)
        XCTAssertNotEqual(failed.status, 0)
        XCTAssertTrue(failed.stderr.contains("127.0.0.1:1") && failed.stderr.contains("127.0.0.1:2"), failed.stderrTail)
        XCTAssertEqual(failed.stdout, "")
    }

    func testPublishingBeforeAnyConsumerDeclaredTheQueuesAsksToStartTheConsumer() async throws {
        let result = try await runProducer(["payment", "X"])
        XCTAssertTrue(result.exited)
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("start the consumer first"), result.stderrTail)
        XCTAssertTrue(result.stderr.contains(topology.paymentsQueue), result.stderrTail)
        XCTAssertEqual(result.stdout, "")
        // The producer declares nothing itself.
        let queue = try await broker.queueInfo(topology.paymentsQueue)
        XCTAssertNil(queue)

        let client = try await runProducer(["client", "c"])
        XCTAssertNotEqual(client.status, 0)
        XCTAssertTrue(client.stderr.contains("start the consumer first"), client.stderrTail)
    }

    func testACountOfClientsIsNumberedAndPublished() async throws {
        try await declareTopology()
        try await produce(["client", "c", "--count", "3", "--name", "Acme"], printing: ["c-1", "c-2", "c-3"])

        let channel = try await broker.openChannel()
        var registrations: [ClientRegistration] = []
        while let delivery = try await channel.get(queue: topology.clientsQueue, noAck: true) {
            let registration = try JSONDecoder().decode(ClientRegistration.self, from: delivery.body)
            registrations.append(registration)
            XCTAssertEqual(delivery.properties.messageID, registration.clientId)
            XCTAssertEqual(delivery.properties.deliveryMode, .persistent)
            XCTAssertEqual(delivery.properties.contentType, "application/json")
        }
        XCTAssertEqual(registrations, ["c-1", "c-2", "c-3"].map { ClientRegistration(clientId: $0, name: "Acme") })
    }

    func testACountOfPaymentsIsNumberedAndPublished() async throws {
        try await declareTopology()
        try await produce(
            ["payment", "client-i", "--payment-id", "p", "--count", "2", "--amount", "7.25", "--currency", "CHF"],
            printing: ["p-1", "p-2"])

        let channel = try await broker.openChannel()
        var payments: [PaymentRequest] = []
        while let delivery = try await channel.get(queue: topology.paymentsQueue, noAck: true) {
            payments.append(try JSONDecoder().decode(PaymentRequest.self, from: delivery.body))
        }
        XCTAssertEqual(
            payments,
            ["p-1", "p-2"].map { PaymentRequest(paymentId: $0, clientId: "client-i", amount: "7.25", currency: "CHF") })
    }
}

@testable import RabbitMQ
import XCTest

/// How connection attempts walk a cluster's endpoints: in order or shuffled, straight through one round, with the
/// recovery backoff only between rounds, and an error that names every endpoint when all of them fail.
final class EndpointWalkTests: XCTestCase {
    typealias Endpoint = AMQPConfiguration.Endpoint
    typealias Machine = ConnectionStateMachine<String>

    private let start = ContinuousClock.now
    private let nodes = [5681, 5682, 5683].map { Endpoint(host: "127.0.0.1", port: $0) }

    private func refused(_ port: Int) -> AMQPError {
        AMQPError(.connectionRefused, "connection refused by 127.0.0.1:\(port)")
    }

    private func recoveringMachine(shuffled: Bool = false, maxAttempts: Int? = nil) -> Machine {
        var machine = Machine(
            channelMax: 8, recovery: .enabled(initialDelay: .seconds(1), maxDelay: .seconds(8), maxAttempts: maxAttempts),
            endpoints: nodes, shuffleEndpoints: shuffled, connectedTo: nodes[0])
        machine.jitter = { 1.0 }
        machine.shuffle = { Array($0.reversed()) }
        _ = machine.connectionFailed(AMQPError(.connectionLost, "node 1 died"), now: start)
        return machine
    }

    func testARoundTriesEveryEndpointInOrderAndNamesEachWhenAllFail() {
        var round = EndpointRound(nodes, shuffled: false)
        XCTAssertEqual(round.current, nodes[0])
        round.fail(refused(5681))
        XCTAssertEqual(round.current, nodes[1])
        round.fail(refused(5682))
        round.fail(AMQPError(.connectTimeout, "no answer within 10 s"))
        XCTAssertTrue(round.isExhausted)
        XCTAssertNil(round.current)
        let error = round.error
        XCTAssertEqual(error.code, .connectionRefused, "the first endpoint's code")
        for port in [5681, 5682, 5683] {
            XCTAssertTrue(error.message.contains("127.0.0.1:\(port)"), error.message)
        }
        XCTAssertTrue(error.message.contains("no answer within 10 s"), error.message)
    }

    func testOneEndpointsErrorIsPassedOnAsItIs() {
        var round = EndpointRound([nodes[0]], shuffled: false)
        round.fail(refused(5681))
        XCTAssertEqual(round.error.message, refused(5681).message)
    }

    func testAShuffledRoundTakesTheShuffledOrder() {
        let round = EndpointRound(nodes, shuffled: true, shuffle: { Array($0.reversed()) })
        XCTAssertEqual(round.endpoints, nodes.reversed())
        XCTAssertEqual(EndpointRound(nodes, shuffled: false, shuffle: { _ in [] }).endpoints, nodes)
    }

    func testIPv6EndpointsAreBracketed() {
        XCTAssertEqual(Endpoint(host: "::1", port: 5672).description, "[::1]:5672")
        XCTAssertEqual(Endpoint(host: "rabbit-1", port: 5672).description, "rabbit-1:5672")
    }

    func testRecoveryWalksTheEndpointsWithoutPausingAndBacksOffBetweenRounds() {
        var machine = recoveringMachine()
        XCTAssertEqual(machine.recoveryStep(now: start), .wait(.seconds(1)), "the backoff before the first round")
        let later = start + .seconds(1)
        XCTAssertEqual(machine.recoveryStep(now: later), .connect(attempt: 1, endpoint: nodes[0]))
        XCTAssertTrue(machine.recoveryEndpointFailed(refused(5681), now: later).isEmpty)
        XCTAssertEqual(machine.recoveryStep(now: later), .connect(attempt: 1, endpoint: nodes[1]), "no pause")
        XCTAssertTrue(machine.recoveryEndpointFailed(refused(5682), now: later).isEmpty)
        XCTAssertEqual(machine.recoveryStep(now: later), .connect(attempt: 1, endpoint: nodes[2]))

        let failed = machine.recoveryEndpointFailed(refused(5683), now: later)
        guard case .report(.attemptFailed(let attempt, let error, let next)) = failed.first else {
            return XCTFail("\(failed)")
        }
        XCTAssertEqual(attempt, 1)
        XCTAssertEqual(next, .seconds(2))
        XCTAssertTrue(error.message.contains("127.0.0.1:5681") && error.message.contains("127.0.0.1:5683"), error.message)
        XCTAssertEqual(machine.recoveryStep(now: later), .wait(.seconds(2)), "the backoff between rounds")
        XCTAssertEqual(
            machine.recoveryStep(now: later + .seconds(2)), .connect(attempt: 2, endpoint: nodes[0]),
            "a new round starts from the first endpoint")
    }

    func testRecoveryLandsOnTheEndpointThatAnswersAndSaysSo() {
        var machine = recoveringMachine()
        let later = start + .seconds(1)
        _ = machine.recoveryEndpointFailed(refused(5681), now: later)
        XCTAssertEqual(machine.endpoint, nodes[0], "still the last endpoint it was on")
        let recovered = machine.recoverySucceeded()
        guard case .report(.recovered(let attempts, let endpoint)) = recovered.first else {
            return XCTFail("\(recovered)")
        }
        XCTAssertEqual(attempts, 1)
        XCTAssertEqual(endpoint, nodes[1])
        XCTAssertEqual(machine.endpoint, nodes[1])
    }

    func testAShuffledRecoveryTakesANewOrderEachRound() {
        var machine = recoveringMachine(shuffled: true)
        let later = start + .seconds(1)
        XCTAssertEqual(machine.recoveryStep(now: later), .connect(attempt: 1, endpoint: nodes[2]))
        var calls = 0
        machine.shuffle = { endpoints in
            calls += 1
            return endpoints
        }
        for port in [5683, 5682, 5681] { _ = machine.recoveryEndpointFailed(refused(port), now: later) }
        XCTAssertEqual(calls, 1, "one shuffle per round")
        XCTAssertEqual(machine.recoveryStep(now: later + .seconds(2)), .connect(attempt: 2, endpoint: nodes[0]))
    }

    func testRecoveryGivesUpWhenTheLastRoundFailsEverywhere() {
        var machine = recoveringMachine(maxAttempts: 1)
        let later = start + .seconds(1)
        _ = machine.recoveryEndpointFailed(refused(5681), now: later)
        _ = machine.recoveryEndpointFailed(refused(5682), now: later)
        XCTAssertFalse(machine.isEnded, "a round is not over while an endpoint is left")
        let actions = machine.recoveryEndpointFailed(refused(5683), now: later)
        guard case .report(.gaveUp) = actions.first else { return XCTFail("\(actions)") }
        XCTAssertTrue(machine.isEnded)
    }

    func testSeveralURLsMakeOneConfigurationWithFailoverEndpoints() throws {
        let configuration = try AMQPConfiguration(urls: [
            "amqp://app:secret@127.0.0.1:5681/payments", "amqp://app:secret@127.0.0.1:5682/payments",
            "amqp://app:secret@[::1]:5683/payments",
        ])
        XCTAssertEqual(configuration.endpoints.map(\.description), ["127.0.0.1:5681", "127.0.0.1:5682", "[::1]:5683"])
        XCTAssertEqual(configuration.virtualHost, "payments")
        XCTAssertEqual(try AMQPConfiguration(urls: configuration.description.replacingOccurrences(of: "***", with: "secret")
            .split(separator: ",").map(String.init)), configuration, "the description reads back")
        XCTAssertFalse(configuration.description.contains("secret"))
    }

    func testEachURLMayNameItsNodesTLSServerName() throws {
        let configuration = try AMQPConfiguration(urls: [
            "amqps://app:secret@10.0.0.1/payments?server_name_indication=rabbit-1.internal",
            "amqps://app:secret@10.0.0.2/payments?server_name_indication=rabbit-2.internal",
            "amqps://app:secret@rabbit-3.internal/payments",
        ])
        XCTAssertEqual(configuration.endpoints.map(\.serverName), ["rabbit-1.internal", "rabbit-2.internal", nil])
        XCTAssertEqual(try AMQPConfiguration(urls: configuration.description.replacingOccurrences(of: "***", with: "secret")
            .split(separator: ",").map(String.init)), configuration, "the description reads back")
        var empty = configuration
        empty.failoverEndpoints[0].serverName = ""
        XCTAssertThrowsError(try empty.validate()) { error in
            XCTAssertTrue("\(error)".contains("TLS server name of failover endpoint 1"), "\(error)")
        }
    }

    func testURLsThatDisagreeOnMoreThanTheirHostAreRefused() {
        for urls in [
            ["amqp://app:secret@a/payments", "amqp://app:other@b/payments"],
            ["amqp://app:secret@a/payments", "amqp://app:secret@b/orders"],
            ["amqp://app:secret@a/payments", "amqps://app:secret@b/payments"],
            ["amqp://app:secret@a/payments?heartbeat=5", "amqp://app:secret@b/payments"],
            [],
        ] {
            XCTAssertThrowsError(try AMQPConfiguration(urls: urls), "\(urls)") { error in
                XCTAssertEqual((error as? AMQPError)?.code, .invalidConfiguration)
                XCTAssertFalse("\(error)".contains("secret") || "\(error)".contains("other"), "\(error)")
            }
        }
    }

    func testFailoverEndpointsAreValidated() {
        var configuration = AMQPConfiguration(host: "127.0.0.1")
        configuration.failoverEndpoints = [Endpoint(host: "127.0.0.1", port: 0)]
        XCTAssertThrowsError(try configuration.validate()) { error in
            XCTAssertTrue("\(error)".contains("failover endpoint 1"), "\(error)")
        }
        configuration.failoverEndpoints = [Endpoint(host: "", port: 5672)]
        XCTAssertThrowsError(try configuration.validate())
    }
}

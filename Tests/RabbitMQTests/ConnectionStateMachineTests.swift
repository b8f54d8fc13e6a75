@testable import RabbitMQ
import XCTest

/// Drives the connection's state machine through every transition, without a broker: waiters are plain strings.
final class ConnectionStateMachineTests: XCTestCase {
    typealias Machine = ConnectionStateMachine<String>

    private let start = ContinuousClock.now
    private let socketBroke = AMQPError(.connectionLost, "socket broke")
    private let node = AMQPConfiguration.Endpoint(host: "127.0.0.1", port: 5672)

    private func machine(
        recovery: AMQPConfiguration.Recovery = .disabled, channelMax: UInt16 = 8
    ) -> Machine {
        var machine = Machine(
            channelMax: channelMax, recovery: recovery, endpoints: [node], connectedTo: node, closeTimeout: .seconds(5))
        machine.jitter = { 1.0 }
        return machine
    }

    private func recovering(maxAttempts: Int? = nil) -> AMQPConfiguration.Recovery {
        .enabled(initialDelay: .seconds(1), maxDelay: .seconds(4), maxAttempts: maxAttempts)
    }

    private func openChannel(_ machine: inout Machine) throws -> UInt16 {
        let id = try machine.channelOpenRequested().get()
        machine.channelOpened(id)
        return id
    }

    // MARK: - Channels

    func testChannelsTakeTheLowestFreeNumbersInTurn() throws {
        var machine = machine(channelMax: 3)
        XCTAssertEqual(try openChannel(&machine), 1)
        XCTAssertEqual(try openChannel(&machine), 2)
        XCTAssertEqual(try openChannel(&machine), 3)
        XCTAssertThrowsError(try machine.channelOpenRequested().get()) { error in
            XCTAssertEqual((error as? AMQPError)?.code, .invalidArgument)
        }
        XCTAssertEqual(machine.channelCloseRequested(2, reason: "done"), .sendClose)
        machine.channelClosed(2, error: nil)
        XCTAssertEqual(try openChannel(&machine), 2)
    }

    func testAFailedOpenFreesTheNumber() throws {
        var machine = machine(channelMax: 1)
        let id = try machine.channelOpenRequested().get()
        XCTAssertTrue(machine.isUsable(channel: id), "requests queue behind channel.open")
        machine.channelOpenFailed(id)
        XCTAssertFalse(machine.isUsable(channel: id))
        XCTAssertEqual(try machine.channelOpenRequested().get(), 1)
    }

    func testAClosingChannelRefusesWorkWithTheReasonAndASecondCloseDoesNothing() throws {
        var machine = machine()
        let id = try openChannel(&machine)
        XCTAssertNil(machine.refusal(forChannel: id))
        XCTAssertEqual(machine.channelCloseRequested(id, reason: "bye"), .sendClose)
        XCTAssertFalse(machine.isUsable(channel: id))
        XCTAssertEqual(machine.refusal(forChannel: id)?.code, .channelClosed)
        XCTAssertTrue(machine.refusal(forChannel: id)?.message.contains("bye") == true)
        XCTAssertEqual(machine.channelCloseRequested(id, reason: "again"), .alreadyClosed)
        // The broker's own channel.close crossing ours does not replace the reason callers already saw.
        let crossing = AMQPError(.channelClosedByBroker, "refused", replyCode: 406)
        XCTAssertTrue(machine.channelClosed(id, error: crossing)?.message.contains("bye") == true)
        XCTAssertNil(machine.channelClosed(id, error: nil), "a channel is closed once")
    }

    func testAChannelTheBrokerClosedKeepsTheBrokersReasonUntilItsNumberIsReused() throws {
        var machine = machine(channelMax: 1)
        let id = try openChannel(&machine)
        let refused = AMQPError(.channelClosedByBroker, "NOT_FOUND", replyCode: 404)
        let closed = machine.channelClosed(id, error: refused)
        XCTAssertEqual(closed?.code, .channelClosed)
        XCTAssertEqual(machine.refusal(forChannel: id)?.replyCode, 404)
        XCTAssertEqual(try openChannel(&machine), id)
        XCTAssertNil(machine.refusal(forChannel: id))
    }

    func testAnUnknownChannelIsClosed() {
        let machine = machine()
        XCTAssertEqual(machine.refusal(forChannel: 7)?.code, .channelClosed)
        XCTAssertFalse(machine.isUsable(channel: 7))
    }

    // MARK: - Graceful close

    func testGracefulCloseCancelsConsumersThenClosesChannelsThenTheConnection() throws {
        var machine = machine()
        let first = try openChannel(&machine)
        let second = try openChannel(&machine)
        XCTAssertEqual(actionNames(machine.closeRequested(by: "app", now: start)), ["cancelConsumers"])
        XCTAssertEqual(machine.connectionRefusal?.code, .connectionClosed)
        XCTAssertTrue(machine.isUsable(channel: first), "confirms and cancels still flow while closing")
        XCTAssertEqual(actionNames(machine.closeProgress(now: start, settled: false)), [])

        let closing = machine.closeProgress(now: start + .seconds(1), settled: true)
        guard case .closeChannels(let ids, _) = closing.first else { return XCTFail("\(closing)") }
        XCTAssertEqual(ids, [first, second])
        XCTAssertFalse(machine.isUsable(channel: first))
        machine.channelClosed(first, error: nil)
        XCTAssertEqual(actionNames(machine.closeProgress(now: start + .seconds(2), settled: true)), [])
        machine.channelClosed(second, error: nil)
        XCTAssertEqual(actionNames(machine.closeProgress(now: start + .seconds(2), settled: true)), ["sendConnectionClose"])

        let ended = machine.connectionCloseCompleted()
        XCTAssertEqual(actionNames(ended), ["recordEnd(nil)", "finish", "resumeCloseWaiters(app)"])
        XCTAssertTrue(machine.isEnded)
        XCTAssertEqual(machine.endedError?.code, .connectionClosed)
    }

    func testGracefulCloseMovesOnAtEachDeadline() throws {
        var machine = machine()
        _ = try openChannel(&machine)
        _ = machine.closeRequested(by: "app", now: start)
        // Consumers never cancelled, confirms never came: the deadline closes the channels anyway.
        XCTAssertEqual(actionNames(machine.closeProgress(now: start + .seconds(5), settled: false)), ["closeChannels"])
        // And a channel that never confirms its close does not hold the connection open.
        XCTAssertEqual(actionNames(machine.closeProgress(now: start + .seconds(9), settled: false)), [])
        XCTAssertEqual(
            actionNames(machine.closeProgress(now: start + .seconds(10), settled: false)), ["sendConnectionClose"])
    }

    func testClosingWithoutChannelsClosesAtOnce() {
        var machine = machine()
        _ = machine.closeRequested(by: "app", now: start)
        XCTAssertEqual(actionNames(machine.closeProgress(now: start, settled: true)), ["sendConnectionClose"])
    }

    func testASecondCloseWaitsForTheFirstAndACloseAfterTheEndReturnsAtOnce() {
        var machine = machine()
        _ = machine.closeRequested(by: "first", now: start)
        XCTAssertEqual(actionNames(machine.closeRequested(by: "second", now: start)), [])
        _ = machine.closeProgress(now: start, settled: true)
        XCTAssertEqual(
            actionNames(machine.connectionCloseCompleted()), ["recordEnd(nil)", "finish", "resumeCloseWaiters(first,second)"])
        XCTAssertEqual(actionNames(machine.closeRequested(by: "late", now: start)), ["resumeCloseWaiters(late)"])
        XCTAssertEqual(actionNames(machine.connectionCloseCompleted()), [], "the end comes once")
    }

    func testAFailureWhileClosingEndsTheConnectionAndLetsTheWaitersGo() {
        var machine = machine(recovery: recovering())
        _ = machine.closeRequested(by: "app", now: start)
        let actions = machine.connectionFailed(socketBroke, now: start)
        XCTAssertEqual(actionNames(actions), ["recordEnd(socket broke)", "finish", "resumeCloseWaiters(app)"])
        XCTAssertFalse(machine.isRecovering, "a connection being closed is not recovered")
        XCTAssertEqual(machine.endedError?.message, "socket broke")
    }

    // MARK: - Failures and recovery

    func testAFailureWithoutRecoveryEndsTheConnectionAndItsChannels() throws {
        var machine = machine()
        let id = try openChannel(&machine)
        XCTAssertEqual(actionNames(machine.connectionFailed(socketBroke, now: start)), ["recordEnd(socket broke)", "finish"])
        XCTAssertTrue(machine.isEnded)
        XCTAssertEqual(machine.refusal(forChannel: id)?.message, "socket broke")
        XCTAssertEqual(machine.connectionRefusal?.message, "socket broke")
        XCTAssertEqual(actionNames(machine.connectionFailed(socketBroke, now: start)), [], "a second failure changes nothing")
        XCTAssertThrowsError(try machine.channelOpenRequested().get())
    }

    func testAnApplicationErrorIsNotRecovered() {
        var machine = machine(recovery: recovering())
        let accessRefused = AMQPError(.connectionClosedByBroker, "ACCESS_REFUSED", replyCode: 403)
        _ = machine.connectionFailed(accessRefused, now: start)
        XCTAssertTrue(machine.isEnded)
        XCTAssertTrue(Machine.isRecoverable(AMQPError(.connectionClosedByBroker, "forced", replyCode: 320)))
        XCTAssertTrue(Machine.isRecoverable(AMQPError(.connectionClosedByBroker, "internal", replyCode: 541)))
        XCTAssertFalse(Machine.isRecoverable(accessRefused))
    }

    func testRecoveryInterruptsChannelsForgetsClosingOnesAndRefusesWorkRetriably() throws {
        var machine = machine(recovery: recovering())
        let kept = try openChannel(&machine)
        let closing = try openChannel(&machine)
        XCTAssertEqual(machine.channelCloseRequested(closing, reason: "bye"), .sendClose)

        let actions = machine.connectionFailed(socketBroke, now: start)
        guard case .interruptChannels(let interrupted, let forget) = actions.first else { return XCTFail("\(actions)") }
        XCTAssertEqual(forget, [closing])
        XCTAssertEqual(interrupted.code, .connectionLost)
        XCTAssertTrue(interrupted.message.contains("socket broke"))
        XCTAssertEqual(actionNames(Array(actions.dropFirst())), ["report(started)"])

        XCTAssertTrue(machine.isRecovering)
        XCTAssertFalse(machine.isConnected)
        XCTAssertEqual(machine.refusal(forChannel: kept)?.code, .connectionLost, "retriable while recovering")
        XCTAssertEqual(machine.connectionRefusal?.code, .connectionLost)
        XCTAssertEqual(machine.channels.keys.sorted(), [kept])
    }

    func testRecoveryWaitsOutTheBackoffThenAttemptsAndSucceeds() {
        var machine = machine(recovery: recovering())
        XCTAssertEqual(machine.recoveryStep(now: start), .none)
        _ = machine.connectionFailed(socketBroke, now: start)
        XCTAssertEqual(machine.recoveryStep(now: start), .wait(.seconds(1)))
        XCTAssertEqual(machine.recoveryStep(now: start + .seconds(1)), .connect(attempt: 1, endpoint: node))

        let failed = machine.recoveryEndpointFailed(AMQPError(.connectionRefused, "refused"), now: start + .seconds(1))
        guard case .report(.attemptFailed(let attempt, _, let next)) = failed.first else { return XCTFail("\(failed)") }
        XCTAssertEqual(attempt, 1)
        XCTAssertEqual(next, .seconds(2))
        XCTAssertEqual(machine.recoveryStep(now: start + .seconds(2)), .wait(.seconds(1)))
        XCTAssertEqual(machine.recoveryStep(now: start + .seconds(3)), .connect(attempt: 2, endpoint: node))

        XCTAssertEqual(actionNames(machine.recoverySucceeded()), ["report(recovered 2 on 127.0.0.1:5672)"])
        XCTAssertTrue(machine.isConnected)
        XCTAssertEqual(machine.recoveryStep(now: start + .seconds(3)), .none)
    }

    func testRecoveryGivesUpAfterTheLastAttempt() {
        var machine = machine(recovery: recovering(maxAttempts: 1))
        _ = machine.connectionFailed(socketBroke, now: start)
        let actions = machine.recoveryEndpointFailed(AMQPError(.connectionRefused, "refused"), now: start)
        XCTAssertEqual(actionNames(actions), ["report(gaveUp)", "recordEnd(socket broke)", "finish"])
        XCTAssertEqual(machine.endedError?.message, "socket broke", "the connection ends with the failure it could not get over")
        XCTAssertEqual(machine.recoveryStep(now: start), .none)
    }

    func testACloseWhileRecoveringEndsAtOnce() throws {
        var machine = machine(recovery: recovering())
        let id = try openChannel(&machine)
        _ = machine.connectionFailed(socketBroke, now: start)
        XCTAssertEqual(
            actionNames(machine.closeRequested(by: "app", now: start)), ["recordEnd(nil)", "finish", "resumeCloseWaiters(app)"])
        XCTAssertTrue(machine.isEnded)
        XCTAssertEqual(machine.endedError?.code, .connectionClosed)
        XCTAssertEqual(machine.refusal(forChannel: id)?.code, .connectionClosed)
        XCTAssertEqual(actionNames(machine.recoveryEndpointFailed(socketBroke, now: start)), [])
        XCTAssertEqual(actionNames(machine.recoverySucceeded()), [], "a late success does not reopen an ended connection")
    }

    func testAChannelClosedWhileRecoveringIsForgotten() throws {
        var machine = machine(recovery: recovering())
        let id = try openChannel(&machine)
        _ = machine.connectionFailed(socketBroke, now: start)
        XCTAssertEqual(machine.channelCloseRequested(id, reason: "bye"), .forgotten)
        XCTAssertTrue(machine.channels.isEmpty)
        _ = machine.recoverySucceeded()
        XCTAssertEqual(machine.refusal(forChannel: id)?.code, .channelClosed)
    }

    func testAFailureDuringRecoveryIsNotASecondRecovery() {
        var machine = machine(recovery: recovering())
        _ = machine.connectionFailed(socketBroke, now: start)
        XCTAssertEqual(actionNames(machine.connectionFailed(socketBroke, now: start)), [])
        XCTAssertEqual(machine.recoveryStep(now: start + .seconds(1)), .connect(attempt: 1, endpoint: node))
    }

    func testSilenceBeyondTheLimitFailsTheConnection() {
        var machine = machine()
        XCTAssertEqual(actionNames(machine.silenceObserved(.seconds(10), limit: nil, now: start)), [])
        XCTAssertEqual(actionNames(machine.silenceObserved(.seconds(2), limit: .seconds(3), now: start)), [])
        let actions = machine.silenceObserved(.seconds(4), limit: .seconds(3), now: start)
        XCTAssertEqual(actions.count, 2)
        XCTAssertTrue(machine.endedError?.message.contains("stopped answering") == true)
    }

    // MARK: - Helpers

    /// Names the actions, with what tells them apart, so whole sequences compare in one assertion.
    private func actionNames(_ actions: [Machine.Action]) -> [String] {
        actions.map { action in
            switch action {
            case .cancelConsumers: "cancelConsumers"
            case .closeChannels: "closeChannels"
            case .sendConnectionClose: "sendConnectionClose"
            case .interruptChannels: "interruptChannels"
            case .finish: "finish"
            case .recordEnd(let cause): "recordEnd(\(cause?.message ?? "nil"))"
            case .resumeCloseWaiters(let waiters): "resumeCloseWaiters(\(waiters.joined(separator: ",")))"
            case .report(let event):
                switch event {
                case .started: "report(started)"
                case .attemptFailed: "report(attemptFailed)"
                case .queueRenamed: "report(queueRenamed)"
                case .recovered(let attempts, let endpoint): "report(recovered \(attempts) on \(endpoint))"
                case .gaveUp: "report(gaveUp)"
                }
            }
        }
    }
}

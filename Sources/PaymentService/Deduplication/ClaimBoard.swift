import Foundation
import RabbitMQ
import Synchronization

/// The live side of the ``ClaimArbiter``: the claims stream's follower feeds it records, and payment handlers wait
/// here for the verdict on their own claim, or for another instance's claim to be settled or released.
final class ClaimBoard: Sendable {
    private struct State {
        var arbiter: ClaimArbiter
        /// Handlers waiting for the verdict on their claim, and until when.
        var verdictWaiters: [String: VerdictWaiter] = [:]
        /// Whether the watchdog that times verdict waits out is running.
        var watchdogRunning = false
        /// Verdicts read before their handler started waiting (its append's confirm was still on its way).
        var earlyVerdicts: [String: ClaimArbiter.Verdict] = [:]
        /// Claims whose handler waits or will wait for the verdict.
        var expected = Set<String>()
        /// Handlers waiting for a payment to be settled or released.
        var freedWaiters: [String: [UInt64: CheckedContinuation<Void, any Error>]] = [:]
        var nextToken: UInt64 = 0
        var failure: (any Error)?
    }

    private struct VerdictWaiter {
        var continuation: CheckedContinuation<ClaimArbiter.Verdict, any Error>
        var deadline: ContinuousClock.Instant
        var timeout: Duration
    }

    private let state: Mutex<State>
    /// How often the watchdog looks for overdue verdict waits: one task for all of them, rather than a timer per
    /// claim, which would cost a task and a timer for every payment.
    private static let watchdogInterval = Duration.milliseconds(250)

    /// Creates a board around an empty arbiter.
    init(arbiter: ClaimArbiter) {
        state = Mutex(State(arbiter: arbiter))
    }

    /// Milliseconds since 1970: the time written into records.
    static func now() -> Int64 {
        Int64((Date().timeIntervalSince1970 * 1000).rounded())
    }

    /// How many settled payments and live claims the arbiter remembers.
    var count: (settled: Int, held: Int) {
        state.withLock { $0.arbiter.count }
    }

    /// The outcome of a payment settled inside the dedupe window, as far as the stream has been read.
    func outcome(of paymentID: String) -> PaymentOutcome.Kind? {
        let now = Self.now()
        return state.withLock { $0.arbiter.outcome(of: paymentID, now: now) }
    }

    /// Applies records read from the stream, in order, and wakes whoever they answer.
    func apply(_ records: [ClaimRecord]) {
        var verdicts: [(CheckedContinuation<ClaimArbiter.Verdict, any Error>, ClaimArbiter.Verdict)] = []
        var freed: [CheckedContinuation<Void, any Error>] = []
        state.withLock { state in
            for record in records {
                switch state.arbiter.apply(record) {
                case .verdict(let claimID, let verdict):
                    guard state.expected.contains(claimID) else { continue }
                    if let waiter = state.verdictWaiters.removeValue(forKey: claimID) {
                        state.expected.remove(claimID)
                        verdicts.append((waiter.continuation, verdict))
                    } else {
                        state.earlyVerdicts[claimID] = verdict
                    }
                case .freed(let paymentID):
                    if let waiters = state.freedWaiters.removeValue(forKey: paymentID) {
                        freed.append(contentsOf: waiters.values)
                    }
                case .none:
                    break
                }
            }
        }
        for (waiter, verdict) in verdicts { waiter.resume(returning: verdict) }
        for waiter in freed { waiter.resume() }
    }

    /// Announces that a claim is about to be appended, so that its verdict is kept even if it is read before
    /// ``verdict(on:timeout:)`` is called.
    func expect(_ claimID: String) {
        _ = state.withLock { $0.expected.insert(claimID) }
    }

    /// Forgets an announced claim whose append failed.
    func abandon(_ claimID: String) {
        state.withLock { state in
            state.expected.remove(claimID)
            state.earlyVerdicts[claimID] = nil
        }
    }

    /// Waits for the verdict on an announced claim.
    ///
    /// - Throws: ``AMQPError`` `timeout` (retriable) when the claim is not read back within `timeout`, the
    ///   follower's failure, or `CancellationError`.
    func verdict(on claimID: String, timeout: Duration) async throws -> ClaimArbiter.Verdict {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let (immediate, startWatchdog) = state.withLock {
                    state -> (Result<ClaimArbiter.Verdict, any Error>?, Bool) in
                    if let verdict = state.earlyVerdicts.removeValue(forKey: claimID) {
                        state.expected.remove(claimID)
                        return (.success(verdict), false)
                    }
                    if let failure = state.failure { return (.failure(failure), false) }
                    if Task.isCancelled { return (.failure(CancellationError()), false) }
                    state.verdictWaiters[claimID] = VerdictWaiter(
                        continuation: continuation, deadline: .now + timeout, timeout: timeout)
                    guard !state.watchdogRunning else { return (nil, false) }
                    state.watchdogRunning = true
                    return (nil, true)
                }
                if let immediate { continuation.resume(with: immediate) }
                if startWatchdog { Task { await self.watchOverdueVerdicts() } }
            }
        } onCancel: {
            endVerdictWait(claimID, with: CancellationError())
        }
    }

    /// Fails verdict waits past their deadline, until none is left.
    private func watchOverdueVerdicts() async {
        while true {
            try? await Task.sleep(for: Self.watchdogInterval)
            let now = ContinuousClock.now
            let (overdue, done) = state.withLock { state in
                let overdue = state.verdictWaiters.filter { $0.value.deadline <= now }
                for claimID in overdue.keys {
                    state.verdictWaiters[claimID] = nil
                    state.expected.remove(claimID)
                }
                if state.verdictWaiters.isEmpty { state.watchdogRunning = false }
                return (overdue, state.verdictWaiters.isEmpty)
            }
            for (claimID, waiter) in overdue {
                waiter.continuation.resume(
                    throwing: AMQPError(
                        .timeout, "claim \(claimID) was not read back from the claims stream in \(waiter.timeout)"))
            }
            if done { return }
        }
    }

    private func endVerdictWait(_ claimID: String, with error: any Error) {
        let waiter = state.withLock { state in
            state.expected.remove(claimID)
            return state.verdictWaiters.removeValue(forKey: claimID)
        }
        waiter?.continuation.resume(throwing: error)
    }

    /// Waits until `paymentID` is settled or its claim released, at most `timeout`; returns either way.
    ///
    /// - Throws: the follower's failure, or `CancellationError`.
    func waitUntilFreed(_ paymentID: String, timeout: Duration) async throws {
        let token = state.withLock { state in
            state.nextToken += 1
            return state.nextToken
        }
        let timer = Task { [weak self] in
            try await Task.sleep(for: timeout)
            self?.endFreedWait(paymentID, token, with: nil)
        }
        defer { timer.cancel() }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let immediate = state.withLock { state -> (any Error)? in
                    if let failure = state.failure { return failure }
                    if Task.isCancelled { return CancellationError() }
                    state.freedWaiters[paymentID, default: [:]][token] = continuation
                    return nil
                }
                if let immediate { continuation.resume(throwing: immediate) }
            }
        } onCancel: {
            endFreedWait(paymentID, token, with: CancellationError())
        }
    }

    private func endFreedWait(_ paymentID: String, _ token: UInt64, with error: (any Error)?) {
        let waiter = state.withLock { state -> CheckedContinuation<Void, any Error>? in
            let waiter = state.freedWaiters[paymentID]?.removeValue(forKey: token)
            if state.freedWaiters[paymentID]?.isEmpty == true { state.freedWaiters[paymentID] = nil }
            return waiter
        }
        if let error { waiter?.resume(throwing: error) } else { waiter?.resume() }
    }

    /// Forgets what can no longer decide a verdict (see ``ClaimArbiter/forget(asOf:)``).
    func forgetExpired() {
        let now = Self.now()
        state.withLock { $0.arbiter.forget(asOf: now) }
    }

    /// Fails every wait, now and from now on: the claims stream can no longer be followed.
    func fail(_ error: any Error) {
        let (verdicts, freed) = state.withLock { state in
            state.failure = error
            let verdicts = state.verdictWaiters.values.map(\.continuation)
            let freed = state.freedWaiters.values.flatMap(\.values)
            state.verdictWaiters = [:]
            state.freedWaiters = [:]
            state.expected = []
            return (verdicts, freed)
        }
        for waiter in verdicts { waiter.resume(throwing: error) }
        for waiter in freed { waiter.resume(throwing: error) }
    }
}

import Synchronization

/// The clients this instance knows, and the payments waiting for one of them.
///
/// Registrations come from the shared clients stream, so every instance knows every client. A handler whose payment
/// belongs to an unknown client may wait here (``waitForRegistration(of:timeout:limit:)``) instead of retrying: it is woken
/// the moment the registration is read (hold and wake).
public final class ClientRegistry: Sendable {
    /// How a wait for a registration ended.
    public enum WaitResult: Sendable, Equatable {
        /// The client was registered.
        case registered
        /// The time limit passed first.
        case expired
        /// The service is shutting down.
        case cancelled
    }

    private struct State {
        /// Digests of the registered ids: 16 bytes each, whatever the id's length.
        var clients = Set<IDDigest>()
        var waiters: [String: [UInt64: CheckedContinuation<WaitResult, Never>]] = [:]
        var waiting = 0
        var nextToken: UInt64 = 0
        var closed = false
    }

    private let state = Mutex(State())

    /// Creates an empty registry.
    public init() {}

    /// Records a client and wakes every payment waiting for it; returns false when it was already known.
    ///
    /// - Parameter clientID: The registered client's id.
    /// - Returns: Whether the client was new to this registry.
    @discardableResult
    public func register(_ clientID: String) -> Bool {
        register(contentsOf: [clientID]) == 1
    }

    /// Records clients (a stream entry's worth) under one lock and wakes every payment waiting for one of them;
    /// returns how many were new.
    ///
    /// - Parameter clientIDs: The registered clients' ids; ids already known are allowed and change nothing.
    /// - Returns: How many of the ids were new to this registry.
    @discardableResult
    public func register(contentsOf clientIDs: [String]) -> Int {
        let digests = clientIDs.map(IDDigest.init)
        let (inserted, waiters) = state.withLock { state in
            var inserted = 0
            var waiters: [CheckedContinuation<WaitResult, Never>] = []
            for (clientID, digest) in zip(clientIDs, digests) {
                if state.clients.insert(digest).inserted { inserted += 1 }
                guard !state.waiters.isEmpty, let waiting = state.waiters.removeValue(forKey: clientID) else { continue }
                state.waiting -= waiting.count
                waiters.append(contentsOf: waiting.values)
            }
            return (inserted, waiters)
        }
        for waiter in waiters { waiter.resume(returning: .registered) }
        return inserted
    }

    /// Whether the client is registered.
    ///
    /// - Parameter clientID: The client's id.
    /// - Returns: `true` once a registration of the client has been recorded.
    public func contains(_ clientID: String) -> Bool {
        let digest = IDDigest(clientID)
        return state.withLock { $0.clients.contains(digest) }
    }

    /// How many clients are registered.
    public var count: Int {
        state.withLock { $0.clients.count }
    }

    /// How many handlers wait for a registration.
    public var waitingCount: Int {
        state.withLock { $0.waiting }
    }

    /// Waits until the client is registered, at most `timeout`, unless `limit` handlers already wait (then it
    /// returns `.expired` at once).
    ///
    /// - Parameters:
    ///   - clientID: The client the payment belongs to.
    ///   - timeout: The longest wait.
    ///   - limit: How many handlers may wait at once, this one included; the default is no limit.
    /// - Returns: ``WaitResult/registered`` at once when the client is already known or as soon as it is registered,
    ///   ``WaitResult/expired`` when `timeout` passes first or `limit` handlers already wait, and
    ///   ``WaitResult/cancelled`` once ``cancelWaits()`` was called or when the waiting task is cancelled (the wait
    ///   then leaves nothing behind).
    public func waitForRegistration(of clientID: String, timeout: Duration, limit: Int = .max) async -> WaitResult {
        let token = state.withLock { state in
            state.nextToken += 1
            return state.nextToken
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<WaitResult, Never>) in
                let immediate = state.withLock { state -> WaitResult? in
                    if state.clients.contains(IDDigest(clientID)) { return .registered }
                    // Checked under the lock: a cancellation that came earlier is seen here, a later one finds the
                    // waiter below.
                    if state.closed || Task.isCancelled { return .cancelled }
                    if state.waiting >= limit { return .expired }
                    state.waiters[clientID, default: [:]][token] = continuation
                    state.waiting += 1
                    return nil
                }
                if let immediate {
                    continuation.resume(returning: immediate)
                    return
                }
                Task {
                    try? await Task.sleep(for: timeout)
                    self.end(clientID, token, with: .expired)
                }
            }
        } onCancel: {
            end(clientID, token, with: .cancelled)
        }
    }

    /// Ends every wait with `.cancelled`, now and from now on: the service is shutting down.
    public func cancelWaits() {
        let waiters = state.withLock { state in
            state.closed = true
            let waiters = state.waiters.values.flatMap(\.values)
            state.waiters = [:]
            state.waiting = 0
            return waiters
        }
        for waiter in waiters { waiter.resume(returning: .cancelled) }
    }

    private func end(_ clientID: String, _ token: UInt64, with result: WaitResult) {
        let waiter = state.withLock { state -> CheckedContinuation<WaitResult, Never>? in
            guard let waiter = state.waiters[clientID]?.removeValue(forKey: token) else { return nil }
            if state.waiters[clientID]?.isEmpty == true { state.waiters[clientID] = nil }
            state.waiting -= 1
            return waiter
        }
        waiter?.resume(returning: result)
    }
}

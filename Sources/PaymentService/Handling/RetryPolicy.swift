/// When to retry a payment whose client is not known yet, and when to give up.
///
/// Attempt *n* (the first delivery is attempt 1) that finds the client unknown schedules retry *n* after
/// `min(n × step, maxDelay)`, as long as *n* ≤ `maxAttempts`; attempt `maxAttempts + 1` parks the payment. With the
/// defaults (step 1 s, 10 retries) the delays are 1, 2, …, 10 s: the reference schedule, 55 s in all.
public struct RetryPolicy: Sendable, Equatable {
    /// What to do with a payment whose client is unknown.
    public enum Decision: Sendable, Equatable {
        /// Publish it again, to arrive as attempt `nextAttempt` after `delay`.
        case retry(nextAttempt: Int, delay: Duration)
        /// Give up: park it with this reason.
        case park(reason: String)
    }

    /// The delay added per attempt.
    public var step: Duration
    /// The longest delay.
    public var maxDelay: Duration
    /// How many delayed retries a payment gets before it is parked.
    public var maxAttempts: Int

    /// Creates a policy.
    ///
    /// - Parameters:
    ///   - step: The delay added per attempt (1 s by default).
    ///   - maxDelay: The longest delay (10 s by default).
    ///   - maxAttempts: How many delayed retries before parking (10 by default).
    public init(step: Duration = .seconds(1), maxDelay: Duration = .seconds(10), maxAttempts: Int = 10) {
        self.step = step
        self.maxDelay = maxDelay
        self.maxAttempts = maxAttempts
    }

    /// Checks that the policy can run: positive step, a cap no shorter than it, and at least zero retries.
    ///
    /// - Throws: ``PaymentServiceError`` naming the first rule broken.
    public func validate() throws(PaymentServiceError) {
        guard step > .zero else { throw PaymentServiceError("the retry step must be positive, not \(step)") }
        guard maxDelay >= step else {
            throw PaymentServiceError("the maximum delay (\(maxDelay)) must be at least the retry step (\(step))")
        }
        guard maxAttempts >= 0 else {
            throw PaymentServiceError("the number of attempts cannot be negative (\(maxAttempts))")
        }
    }

    /// The decision for attempt `attempt` (1-based) of a payment whose client `clientID` is unknown.
    ///
    /// - Parameters:
    ///   - attempt: The attempt the delivery is; 1 for the first delivery.
    ///   - clientID: The unknown client, named in the parking reason.
    /// - Returns: ``Decision/retry(nextAttempt:delay:)`` while `attempt` ≤ ``maxAttempts``, else
    ///   ``Decision/park(reason:)``.
    public func decide(attempt: Int, clientID: String) -> Decision {
        guard attempt <= maxAttempts else {
            let attempts = attempt == 1 ? "1 attempt" : "\(attempt) attempts"
            return .park(reason: "client \"\(clientID)\" was still unknown after \(attempts)")
        }
        return .retry(nextAttempt: attempt + 1, delay: delay(forRetry: attempt))
    }

    /// The delay before retry `retry` (1-based).
    ///
    /// - Parameter retry: Which retry it is; the first is 1.
    /// - Returns: `retry` × ``step``, at most ``maxDelay``.
    public func delay(forRetry retry: Int) -> Duration {
        min(step * retry, maxDelay)
    }

    /// Every distinct delay the policy uses, shortest first: the levels of the TTL delay queues.
    public var delayLevels: [Duration] {
        guard maxAttempts > 0 else { return [] }
        var levels: [Duration] = []
        for retry in 1...maxAttempts {
            let delay = delay(forRetry: retry)
            if levels.last != delay { levels.append(delay) }
            if delay == maxDelay { break }
        }
        return levels
    }
}

/// An error of the payment service's own making: a bad option, a topology the broker refused.
public struct PaymentServiceError: Error, Sendable, CustomStringConvertible {
    /// What went wrong.
    public let message: String

    /// Creates an error.
    ///
    /// - Parameter message: What went wrong, for people.
    public init(_ message: String) {
        self.message = message
    }

    /// What went wrong.
    public var description: String { message }
}

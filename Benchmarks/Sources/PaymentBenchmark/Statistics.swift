import Foundation
import PaymentService

/// SplitMix64: a small seeded generator, so two runs with the same `--seed` draw the same registration lags.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension Duration {
    /// The duration in milliseconds, with its fraction.
    var milliseconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) * 1000 + Double(attoseconds) / 1e15
    }

    /// The duration in seconds, with its fraction.
    var seconds: Double { milliseconds / 1000 }
}

/// The order statistics of a sample of values.
struct Summary {
    let count: Int
    let mean: Double
    let p50: Double
    let p95: Double
    let p99: Double
    let max: Double

    /// Summarises `values` with nearest-rank percentiles; nil for an empty sample.
    init?(_ values: [Double]) {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        func rank(_ fraction: Double) -> Double {
            let index = Int((fraction * Double(sorted.count)).rounded(.up)) - 1
            return sorted[Swift.max(0, Swift.min(sorted.count - 1, index))]
        }
        count = sorted.count
        mean = sorted.reduce(0, +) / Double(sorted.count)
        p50 = rank(0.50)
        p95 = rank(0.95)
        p99 = rank(0.99)
        max = sorted[sorted.count - 1]
    }
}

/// Formats a number with a fixed count of decimals.
func fixed(_ value: Double, _ decimals: Int = 1) -> String {
    String(format: "%.\(decimals)f", value)
}

/// What the retry schedule alone predicts for a payment, with no processing or broker time at all.
///
/// Attempt 1 sees the payment at time 0; retry *n* comes back at T_n = d_1 + … + d_n, where d_k is the policy's delay
/// before retry k (1, 2, 3, … s by default, so T_n = n(n+1)/2 s). A registration that lands at lag r is first seen by
/// the earliest attempt at or after r: retry n with T_(n−1) < r ≤ T_n, so the payment costs n retries and waits
/// T_n − r after its registration (delayed-retry.md §5). A registration that lands before the first attempt
/// (r ≤ 0) costs no retry, and the payment comes −r after it.
struct SchedulePrediction {
    /// Retries the payment costs; nil when the policy parks it first.
    let retries: Int?
    /// How long after the registration the payment comes back, in milliseconds; nil when parked.
    let waitAfterRegistration: Double?

    init(lag: Duration, policy: RetryPolicy) {
        guard lag > .zero else {
            retries = 0
            waitAfterRegistration = (.zero - lag).milliseconds
            return
        }
        var elapsed = Duration.zero
        var retry = 0
        while elapsed < lag {
            retry += 1
            guard retry <= policy.maxAttempts else {
                retries = nil
                waitAfterRegistration = nil
                return
            }
            elapsed += policy.delay(forRetry: retry)
        }
        retries = retry
        waitAfterRegistration = (elapsed - lag).milliseconds
    }
}

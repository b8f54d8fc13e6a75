/// How long a payment of an unknown client is held, unacknowledged, waiting for its registration, before it falls
/// back to a delayed retry.
public struct HoldPolicy: Sendable, Equatable {
    /// The longest hold; zero turns holding off.
    public var time: Duration
    /// The most payments held at once by this instance; must stay below the prefetch, or held payments would take
    /// every delivery slot.
    public var maxHeld: Int

    /// Creates a hold policy (default: up to 800 payments for up to 5 s).
    ///
    /// - Parameters:
    ///   - time: The longest hold; zero turns holding off.
    ///   - maxHeld: The most payments held at once; keep it below the consumer's prefetch.
    public init(time: Duration = .seconds(5), maxHeld: Int = 800) {
        self.time = time
        self.maxHeld = maxHeld
    }

    /// Holding turned off: every payment of an unknown client is retried with a delay at once.
    public static let off = HoldPolicy(time: .zero, maxHeld: 0)
}

extension Duration {
    private static let attosecondsPerMillisecond: Int64 = 1_000_000_000_000_000

    /// The duration in whole milliseconds, rounded toward zero: for timeouts that may end a little early (a poll
    /// that is looped anyway).
    package var wholeMilliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / Self.attosecondsPerMillisecond
    }

    /// The duration in milliseconds, a started millisecond counting as a whole one: for delays and TTLs that must
    /// never be shorter than asked, and waits that must not wake before their deadline.
    package var roundedUpMilliseconds: Int64 {
        let (seconds, attoseconds) = components
        let (whole, rest) = attoseconds.quotientAndRemainder(dividingBy: Self.attosecondsPerMillisecond)
        return seconds * 1000 + whole + (rest > 0 ? 1 : 0)
    }
}

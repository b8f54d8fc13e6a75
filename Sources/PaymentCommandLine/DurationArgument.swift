import ArgumentParser

/// A duration on the command line: `250ms`, `1s`, `1.5s`, `2m`, or a plain number of seconds.
public struct DurationArgument: ExpressibleByArgument, Sendable, Equatable, CustomStringConvertible {
    /// The duration.
    public let duration: Duration

    /// Wraps a duration.
    ///
    /// - Parameter duration: The duration, for instance an option's default.
    public init(_ duration: Duration) {
        self.duration = duration
    }

    /// Parses `250ms`, `1s`, `1.5s`, `2m` or a plain number of seconds; nil for anything else or a negative value.
    ///
    /// The value is rounded to whole milliseconds.
    ///
    /// - Parameter argument: The text from the command line.
    public init?(argument: String) {
        let units: [(suffix: String, seconds: Double)] = [("ms", 0.001), ("s", 1), ("m", 60)]
        var text = Substring(argument)
        var scale = 1.0
        for unit in units where text.hasSuffix(unit.suffix) {
            text = text.dropLast(unit.suffix.count)
            scale = unit.seconds
            break
        }
        guard let value = Double(text), value.isFinite, value >= 0 else { return nil }
        duration = .milliseconds(Int64((value * scale * 1000).rounded()))
    }

    /// The duration as written on the command line.
    public var description: String {
        let (seconds, attoseconds) = duration.components
        let milliseconds = seconds * 1000 + attoseconds / 1_000_000_000_000_000
        return milliseconds % 1000 == 0 ? "\(milliseconds / 1000)s" : "\(milliseconds)ms"
    }
}

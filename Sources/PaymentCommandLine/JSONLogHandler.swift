import Foundation
import Logging
import Synchronization

/// Writes each log event as one JSON object on a line of stderr:
/// `{"timestamp":"…","level":"info","label":"consumer","message":"payment processed","payment.id":"p-1",…}`.
public struct JSONLogHandler: LogHandler {
    /// The logger's label.
    public let label: String
    /// The lowest level written.
    public var logLevel: Logger.Level = .info
    /// Metadata added to every event.
    public var metadata: Logger.Metadata = [:]

    private static let output = Mutex(())

    /// Creates a handler for a logger with this label.
    ///
    /// - Parameter label: The logger's label, written as `label` in every line.
    public init(label: String) {
        self.label = label
    }

    /// One metadata value added to every event; assigning `nil` removes it.
    ///
    /// - Parameter key: The metadata key.
    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// Writes one event as a line of JSON on stderr, its metadata merged over the handler's.
    ///
    /// Keys that clash with `timestamp`, `level`, `label` or `message` are left out. Writes from several threads do
    /// not interleave.
    ///
    /// - Parameter event: The event to write.
    public func log(event: LogEvent) {
        var object: [String: Any] = [
            "timestamp": Date().formatted(.iso8601.time(includingFractionalSeconds: true).year().month().day()
                .dateSeparator(.dash).timeSeparator(.colon)),
            "level": event.level.rawValue,
            "label": label,
            "message": event.message.description,
        ]
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        for (key, value) in merged where object[key] == nil {
            object[key] = Self.json(value)
        }
        guard var line = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else { return }
        line.append(0x0A)
        Self.output.withLock { _ in FileHandle.standardError.write(line) }
    }

    private static func json(_ value: Logger.Metadata.Value) -> Any {
        switch value {
        case .string(let string): string
        case .stringConvertible(let convertible): convertible.description
        case .array(let array): array.map(json)
        case .dictionary(let dictionary): dictionary.mapValues(json)
        }
    }
}

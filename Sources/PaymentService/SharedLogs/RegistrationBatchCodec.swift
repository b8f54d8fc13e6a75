import Foundation
import RabbitMQ

/// The entries of the clients stream (`payment-clients-log`): many client ids per entry, so that an instance reads a
/// million registrations in about a thousand entries at start.
///
/// An entry with header `log-format: registrations-v1` holds client ids, each a 16-bit big-endian length and its
/// UTF-8 bytes. An entry without that header is one JSON ``ClientRegistration``, as versions before batching wrote.
public enum RegistrationBatchCodec {
    /// The value of header `log-format` on batched entries.
    public static let format = "registrations-v1"

    /// One stream entry (body and properties) carrying `clientIDs`.
    ///
    /// - Parameter clientIDs: The registered clients' ids.
    /// - Returns: The body, and persistent properties whose `log-format` header is ``format``.
    public static func entry(_ clientIDs: [String]) -> (body: Data, properties: AMQPProperties) {
        var writer = BinaryWriter()
        for clientID in clientIDs { writer.string(clientID) }
        return (
            writer.data,
            AMQPProperties(headers: [StreamLog.formatHeader: .string(format)], deliveryMode: .persistent)
        )
    }

    /// The client ids of an entry, in either format.
    ///
    /// - Parameter entry: A delivery from the clients stream.
    /// - Returns: The ids, in the order they were written.
    /// - Throws: ``MalformedLogEntry`` when the entry cannot be read.
    public static func clientIDs(in entry: AMQPDelivery) throws(MalformedLogEntry) -> [String] {
        try clientIDs(inBody: entry.body, format: entry.properties.headers?[StreamLog.formatHeader]?.stringValue)
    }

    /// The client ids of an entry's body, given its `log-format` header (nil: none).
    ///
    /// - Parameters:
    ///   - body: The entry's body.
    ///   - found: The entry's `log-format` header: ``format`` for a batch, `nil` for one JSON registration.
    /// - Returns: The ids, in the order they were written.
    /// - Throws: ``MalformedLogEntry`` when the format is unknown, a batch is truncated, or a JSON registration is
    ///   not valid.
    public static func clientIDs(inBody body: Data, format found: String?) throws(MalformedLogEntry) -> [String] {
        guard found == format else {
            guard found == nil else { throw MalformedLogEntry("unknown format \(found ?? "")") }
            switch MessageValidation.registration(from: body) {
            case .success(let registration): return [registration.clientId]
            case .failure(let problem): throw MalformedLogEntry(problem.reason)
            }
        }
        var reader = BinaryReader(body)
        var clientIDs: [String] = []
        while !reader.isAtEnd { clientIDs.append(try reader.string()) }
        return clientIDs
    }
}

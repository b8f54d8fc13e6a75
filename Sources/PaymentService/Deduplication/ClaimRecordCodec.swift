import Foundation
import RabbitMQ

/// The binary form of a batch of ``ClaimRecord``s: one stream entry carries many records, so that reading a window
/// of a million settled payments costs thousands of stream entries, not millions.
///
/// Each record is a tag byte (`C` claim, `S` settle, `R` release), then its fields: strings as a 16-bit big-endian
/// length and UTF-8 bytes, times as 64-bit big-endian integers, an outcome as one byte (`p` processed, `k` parked).
/// Ids are bound by the message contract (128 characters), so 16 bits always suffice.
public enum ClaimRecordCodec {
    /// The value of header `log-format` on entries in this format.
    public static let format = "claims-v1"

    /// One stream entry (body and properties) carrying `records`.
    ///
    /// - Parameter records: The records, in the order readers apply them.
    /// - Returns: The body, and persistent properties whose `log-format` header is ``format``.
    public static func entry(_ records: [ClaimRecord]) -> (body: Data, properties: AMQPProperties) {
        (
            encode(records),
            AMQPProperties(headers: [StreamLog.formatHeader: .string(format)], deliveryMode: .persistent)
        )
    }

    /// The records of an entry.
    ///
    /// - Parameter entry: A delivery from the claims stream.
    /// - Returns: The records, in the order they were written.
    /// - Throws: ``MalformedLogEntry`` when the entry is not in this format or cannot be read.
    public static func records(in entry: AMQPDelivery) throws(MalformedLogEntry) -> [ClaimRecord] {
        let found = entry.properties.headers?[StreamLog.formatHeader]?.stringValue
        guard found == format else { throw MalformedLogEntry("format \(found ?? "none"), not \(format)") }
        return try decode(entry.body)
    }

    /// Encodes records into one entry body.
    ///
    /// - Parameter records: The records to encode.
    /// - Returns: The body: each record's tag byte and fields, one after the other.
    public static func encode(_ records: [ClaimRecord]) -> Data {
        var writer = BinaryWriter()
        for record in records {
            switch record {
            case .claim(let paymentID, let claimID, let at):
                writer.byte(UInt8(ascii: "C"))
                writer.string(paymentID)
                writer.string(claimID)
                writer.int64(at)
            case .settle(let paymentID, let claimID, let outcome, let at):
                writer.byte(UInt8(ascii: "S"))
                writer.string(paymentID)
                writer.string(claimID)
                writer.byte(outcome == .processed ? UInt8(ascii: "p") : UInt8(ascii: "k"))
                writer.int64(at)
            case .release(let paymentID, let claimID):
                writer.byte(UInt8(ascii: "R"))
                writer.string(paymentID)
                writer.string(claimID)
            }
        }
        return writer.data
    }

    /// Decodes an entry body.
    ///
    /// - Parameter body: A body ``encode(_:)`` wrote.
    /// - Returns: The records, in order.
    /// - Throws: ``MalformedLogEntry`` when the body is truncated or holds an unknown tag.
    public static func decode(_ body: Data) throws(MalformedLogEntry) -> [ClaimRecord] {
        var reader = BinaryReader(body)
        var records: [ClaimRecord] = []
        while !reader.isAtEnd {
            let tag = try reader.byte()
            switch tag {
            case UInt8(ascii: "C"):
                records.append(.claim(paymentID: try reader.string(), claimID: try reader.string(), at: try reader.int64()))
            case UInt8(ascii: "S"):
                let paymentID = try reader.string()
                let claimID = try reader.string()
                let outcome: PaymentOutcome.Kind
                switch try reader.byte() {
                case UInt8(ascii: "p"): outcome = .processed
                case UInt8(ascii: "k"): outcome = .parked
                case let other: throw MalformedLogEntry("unknown outcome byte \(other)")
                }
                records.append(.settle(paymentID: paymentID, claimID: claimID, outcome: outcome, at: try reader.int64()))
            case UInt8(ascii: "R"):
                records.append(.release(paymentID: try reader.string(), claimID: try reader.string()))
            default:
                throw MalformedLogEntry("unknown record tag \(tag)")
            }
        }
        return records
    }
}

/// A stream entry this version cannot read; the entry is skipped with a warning.
public struct MalformedLogEntry: Error, Sendable, Equatable, CustomStringConvertible {
    /// What is wrong with it.
    public let reason: String

    /// Creates the error.
    ///
    /// - Parameter reason: What is wrong with the entry.
    public init(_ reason: String) {
        self.reason = reason
    }

    /// What is wrong with it.
    public var description: String { reason }
}

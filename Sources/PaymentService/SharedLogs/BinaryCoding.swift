import Foundation

/// Appends the fields of the shared logs' binary records.
struct BinaryWriter {
    private(set) var data = Data()

    mutating func byte(_ value: UInt8) {
        data.append(value)
    }

    /// A string as a 16-bit big-endian length and its UTF-8 bytes; longer strings are cut at 65,535 bytes (ids are
    /// at most 128 characters, so this never happens to a valid one).
    mutating func string(_ value: String) {
        let bytes = value.utf8.prefix(Int(UInt16.max))
        let count = UInt16(bytes.count)
        data.append(UInt8(count >> 8))
        data.append(UInt8(count & 0xFF))
        data.append(contentsOf: bytes)
    }

    mutating func int64(_ value: Int64) {
        withUnsafeBytes(of: value.bigEndian) { data.append(contentsOf: $0) }
    }
}

/// Reads the fields ``BinaryWriter`` wrote, refusing truncated input.
struct BinaryReader {
    private let bytes: [UInt8]
    private var position = 0

    init(_ data: Data) {
        bytes = [UInt8](data)
    }

    var isAtEnd: Bool { position >= bytes.count }

    mutating func byte() throws(MalformedLogEntry) -> UInt8 {
        guard position < bytes.count else { throw MalformedLogEntry("truncated at byte \(position)") }
        defer { position += 1 }
        return bytes[position]
    }

    mutating func string() throws(MalformedLogEntry) -> String {
        let count = Int(try byte()) << 8 | Int(try byte())
        guard position + count <= bytes.count else { throw MalformedLogEntry("a string runs past the entry's end") }
        defer { position += count }
        return String(decoding: bytes[position..<position + count], as: UTF8.self)
    }

    mutating func int64() throws(MalformedLogEntry) -> Int64 {
        guard position + 8 <= bytes.count else { throw MalformedLogEntry("truncated at byte \(position)") }
        var value: Int64 = 0
        for index in position..<position + 8 { value = value << 8 | Int64(bytes[index]) }
        position += 8
        return value
    }
}

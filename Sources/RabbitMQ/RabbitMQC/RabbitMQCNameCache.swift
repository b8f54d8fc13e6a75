internal import CRabbitMQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The few names a connection receives over and over (consumer tags, exchanges, routing keys), kept as strings so
/// that a delivery reuses them instead of allocating three new strings.
///
/// A handful of recent names, each with its UTF-8 bytes, compared byte for byte: a consumer sees the same few names
/// in nearly every delivery, and comparing 30 bytes costs far less than allocating and later freeing a string. The
/// entries are never reordered (that would retain and release them on every hit); a new name replaces the oldest.
/// Lives on the I/O thread, like the C buffers it reads.
struct RabbitMQCNameCache {
    /// How many names it keeps.
    static let capacity = 8
    private var names: [String] = []
    private var bytes: [[UInt8]] = []
    /// Where the next new name goes once the cache is full.
    private var nextVictim = 0

    /// The name in `bytes`, from the cache when it holds the same bytes.
    mutating func string(_ bytes: amqp_bytes_t) -> String {
        guard bytes.len > 0, let start = bytes.bytes else { return "" }
        return string(UnsafeRawBufferPointer(start: start, count: bytes.len))
    }

    /// The name in `raw` (UTF-8), from the cache when it holds the same bytes.
    mutating func string(_ raw: UnsafeRawBufferPointer) -> String {
        guard !raw.isEmpty else { return "" }
        for index in bytes.indices where Self.matches(bytes[index], raw) {
            return names[index]
        }
        // Keyed by the bytes as received: invalid UTF-8 is repaired in the string (names are meant to be text).
        let name = String(decoding: raw, as: UTF8.self)
        if names.count < Self.capacity {
            names.append(name)
            bytes.append(Array(raw))
        } else {
            names[nextVictim] = name
            bytes[nextVictim] = Array(raw)
            nextVictim = (nextVictim + 1) % Self.capacity
        }
        return name
    }

    private static func matches(_ known: [UInt8], _ raw: UnsafeRawBufferPointer) -> Bool {
        known.count == raw.count && known.withUnsafeBytes { memcmp($0.baseAddress!, raw.baseAddress!, raw.count) == 0 }
    }
}

internal import CRabbitMQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The few names a connection receives over and over (consumer tags, exchanges, routing keys), kept as strings so
/// that a delivery reuses them instead of allocating three new strings.
///
/// A handful of recent names, most recent first, compared byte for byte: a consumer sees the same few names in
/// nearly every delivery, and comparing 30 bytes costs far less than allocating and later freeing a string. Lives on
/// the I/O thread, like the C buffers it reads.
struct RabbitMQCNameCache {
    /// How many names it keeps; the oldest goes when a new one comes.
    static let capacity = 8
    private var recent: [String] = []

    /// The name in `bytes`, from the cache when it holds the same bytes.
    mutating func string(_ bytes: amqp_bytes_t) -> String {
        guard bytes.len > 0, let start = bytes.bytes else { return "" }
        return string(UnsafeRawBufferPointer(start: start, count: bytes.len))
    }

    /// The name in `raw` (UTF-8), from the cache when it holds the same bytes.
    mutating func string(_ raw: UnsafeRawBufferPointer) -> String {
        guard !raw.isEmpty else { return "" }
        for index in recent.indices where Self.matches(recent[index], raw) {
            if index > 0 { recent.swapAt(index, index - 1) }
            return recent[index > 0 ? index - 1 : 0]
        }
        // Invalid UTF-8 is repaired, so such a name never matches its bytes and is simply made each time.
        let name = String(decoding: raw, as: UTF8.self)
        if recent.count == Self.capacity { recent.removeLast() }
        recent.insert(name, at: 0)
        return name
    }

    private static func matches(_ name: String, _ raw: UnsafeRawBufferPointer) -> Bool {
        var name = name
        return name.withUTF8 { utf8 in
            utf8.count == raw.count && memcmp(utf8.baseAddress!, raw.baseAddress!, raw.count) == 0
        }
    }
}

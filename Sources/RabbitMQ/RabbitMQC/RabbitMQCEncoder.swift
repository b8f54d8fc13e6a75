internal import CRabbitMQ
import Foundation

/// Builds rabbitmq-c structures (tables, byte strings, message properties) from the library's values.
///
/// Every byte the structures point to is copied into `pool`, a rabbitmq-c pool owned by the caller, so they stay
/// valid until the caller recycles it. rabbitmq-c serialises tables and properties synchronously inside the call that
/// takes them (it keeps no reference), so the pattern is: encode, make the one C call, then `recycle_amqp_pool`:
///
/// ```swift
/// let encoder = RabbitMQCEncoder(pool: scratchPool)
/// defer { recycle_amqp_pool(scratchPool) }
/// let arguments = try encoder.table(queueArguments, describedAs: "arguments of queue.declare")
/// amqp_queue_declare(connection, channel, encoder.bytes(name), 0, 1, 0, 0, arguments)
/// ```
///
/// Not `Sendable`: the pool is as confined as the connection thread that owns it.
struct RabbitMQCEncoder {
    /// The pool every structure and byte is allocated from.
    let pool: UnsafeMutablePointer<amqp_pool_t>

    /// The longest table key rabbitmq-c can send: it writes the key length as an unchecked `uint8_t`, and AMQP
    /// limits keys to 128 bytes.
    static let maximumKeyLength = 128

    /// The longest AMQP short string (method names, routing keys, text properties).
    static let maximumShortStringLength = 255

    /// Copies a string's UTF-8 bytes into the pool. The empty string gives `{0, NULL}`, like `amqp_empty_bytes`.
    func bytes(_ string: String) -> amqp_bytes_t {
        var string = string
        return string.withUTF8 { copy(UnsafeRawBufferPointer($0)) }
    }

    /// Copies bytes into the pool. No bytes give `{0, NULL}`, like `amqp_empty_bytes`.
    func bytes(_ bytes: [UInt8]) -> amqp_bytes_t {
        bytes.withUnsafeBytes { copy($0) }
    }

    /// Copies a string into the pool after checking that it fits an AMQP short string (at most 255 UTF-8 bytes).
    ///
    /// - Parameter name: What the string is, for the error message, such as `"routing key"`.
    /// - Throws: ``AMQPError/Code-swift.struct/invalidArgument`` when the string is too long; rabbitmq-c would
    ///   otherwise fail with `AMQP_STATUS_BAD_AMQP_DATA` or, for properties, poison the connection.
    func shortString(_ string: String, describedAs name: String) throws(AMQPError) -> amqp_bytes_t {
        let length = string.utf8.count
        guard length <= Self.maximumShortStringLength else {
            throw AMQPError(
                .invalidArgument,
                "\(name) is \(length) bytes long; an AMQP short string holds at most "
                    + "\(Self.maximumShortStringLength) UTF-8 bytes")
        }
        return bytes(string)
    }

    /// Builds a field table, checking every key (nested tables included) on the way.
    ///
    /// - Parameter name: Where the table goes, for error messages (`"headers"`, `"arguments of queue.declare"`);
    ///   `nil` for no location.
    /// - Throws: ``AMQPError/Code-swift.struct/invalidArgument`` naming the key when a key is empty or longer than
    ///   128 UTF-8 bytes, or naming the entry when a timestamp is before 1970.
    func table(_ table: AMQPTable, describedAs name: String? = nil) throws(AMQPError) -> amqp_table_t {
        try encode(table, at: name)
    }

    /// Builds one field value, with the same checks as ``table(_:describedAs:)`` for the tables inside it.
    func fieldValue(_ value: AMQPFieldValue, describedAs name: String = "field value") throws(AMQPError)
        -> amqp_field_value_t
    {
        try encode(value, at: name)
    }

    /// Whole seconds since 1970 for an AMQP timestamp, dropping the fraction.
    ///
    /// - Throws: ``AMQPError/Code-swift.struct/invalidArgument`` naming `name` for dates before 1970 or beyond
    ///   what 64 bits count.
    static func timestamp(_ date: Date, describedAs name: String) throws(AMQPError) -> UInt64 {
        // The guard below lets through only dates from 1970 on, where rounding down is the truncation AMQP asks for.
        let seconds = date.timeIntervalSince1970.rounded(.down)
        guard seconds >= 0, let whole = UInt64(exactly: seconds) else {
            throw AMQPError(
                .invalidArgument,
                "\(name) is \(date), which an AMQP timestamp cannot hold (whole seconds from 1970 on)")
        }
        return whole
    }

    private func encode(_ table: AMQPTable, at location: String?) throws(AMQPError) -> amqp_table_t {
        guard let count = Int32(exactly: table.count) else {
            throw AMQPError(.invalidArgument, "\(location ?? "a table") has \(table.count) entries, too many for AMQP")
        }
        guard let entries = allocate(amqp_table_entry_t.self, count: table.count) else {
            return amqp_table_t(num_entries: 0, entries: nil)
        }
        // Sorted keys make a table encode to the same bytes every time, so frames can be compared in captures.
        for (index, (key, value)) in table.dictionary.sorted(by: { $0.key < $1.key }).enumerated() {
            try Self.validate(key: key, at: location)
            let entry = amqp_table_entry_t(
                key: bytes(key), value: try encode(value, at: location.map { "\($0).\(key)" } ?? key))
            (entries + index).initialize(to: entry)
        }
        return amqp_table_t(num_entries: count, entries: entries)
    }

    private static func validate(key: String, at location: String?) throws(AMQPError) {
        let suffix = location.map { " (in \($0))" } ?? ""
        let length = key.utf8.count
        guard length > 0 else {
            throw AMQPError(.invalidArgument, "a table key is empty\(suffix); AMQP keys hold 1 to 128 bytes")
        }
        guard length <= maximumKeyLength else {
            throw AMQPError(
                .invalidArgument,
                "table key \"\(key)\"\(suffix) is \(length) bytes long; AMQP keys hold at most "
                    + "\(maximumKeyLength) UTF-8 bytes")
        }
    }

    private func encode(_ elements: [AMQPFieldValue], at location: String) throws(AMQPError) -> amqp_array_t {
        guard let count = Int32(exactly: elements.count) else {
            throw AMQPError(.invalidArgument, "\(location) has \(elements.count) elements, too many for AMQP")
        }
        guard let entries = allocate(amqp_field_value_t.self, count: elements.count) else {
            return amqp_array_t(num_entries: 0, entries: nil)
        }
        for (index, element) in elements.enumerated() {
            (entries + index).initialize(to: try encode(element, at: "\(location)[\(index)]"))
        }
        return amqp_array_t(num_entries: count, entries: entries)
    }

    private func encode(_ value: AMQPFieldValue, at location: String) throws(AMQPError) -> amqp_field_value_t {
        var field = amqp_field_value_t()
        switch value {
        case .bool(let value):
            field.kind = RabbitMQCFieldKind.boolean
            field.value.boolean = value ? 1 : 0
        case .int8(let value):
            field.kind = RabbitMQCFieldKind.int8
            field.value.i8 = value
        case .uint8(let value):
            field.kind = RabbitMQCFieldKind.uint8
            field.value.u8 = value
        case .int16(let value):
            field.kind = RabbitMQCFieldKind.int16
            field.value.i16 = value
        case .uint16(let value):
            field.kind = RabbitMQCFieldKind.uint16
            field.value.u16 = value
        case .int32(let value):
            field.kind = RabbitMQCFieldKind.int32
            field.value.i32 = value
        case .uint32(let value):
            field.kind = RabbitMQCFieldKind.uint32
            field.value.u32 = value
        case .int64(let value):
            field.kind = RabbitMQCFieldKind.int64
            field.value.i64 = value
        case .uint64(let value):
            field.kind = RabbitMQCFieldKind.uint64
            field.value.u64 = value
        case .float(let value):
            field.kind = RabbitMQCFieldKind.float
            field.value.f32 = value
        case .double(let value):
            field.kind = RabbitMQCFieldKind.double
            field.value.f64 = value
        case .decimal(let value):
            field.kind = RabbitMQCFieldKind.decimal
            field.value.decimal = amqp_decimal_t(decimals: value.scale, value: value.value)
        case .string(let value):
            field.kind = RabbitMQCFieldKind.longString
            field.value.bytes = bytes(value)
        case .bytes(let value):
            field.kind = RabbitMQCFieldKind.bytes
            field.value.bytes = bytes(value)
        case .timestamp(let value):
            field.kind = RabbitMQCFieldKind.timestamp
            field.value.u64 = try Self.timestamp(value, describedAs: "timestamp \(location)")
        case .table(let value):
            field.kind = RabbitMQCFieldKind.table
            field.value.table = try encode(value, at: location)
        case .array(let value):
            field.kind = RabbitMQCFieldKind.array
            field.value.array = try encode(value, at: location)
        case .void:
            field.kind = RabbitMQCFieldKind.void
        }
        return field
    }

    private func copy(_ source: UnsafeRawBufferPointer) -> amqp_bytes_t {
        // amqp_pool_alloc answers NULL for zero bytes as well as for a failed malloc, so zero never reaches it.
        guard let base = source.baseAddress, source.count > 0 else {
            return amqp_bytes_t(len: 0, bytes: nil)
        }
        let destination = allocate(byteCount: source.count)
        destination.copyMemory(from: base, byteCount: source.count)
        return amqp_bytes_t(len: source.count, bytes: destination)
    }

    private func allocate<Element>(_: Element.Type, count: Int) -> UnsafeMutablePointer<Element>? {
        guard count > 0 else { return nil }
        let memory = allocate(byteCount: MemoryLayout<Element>.stride * count)
        // The pool hands out 8-byte-aligned blocks of malloc'd pages, enough for every rabbitmq-c structure.
        precondition(
            Int(bitPattern: memory) % MemoryLayout<Element>.alignment == 0, "rabbitmq-c pool memory is misaligned")
        return memory.bindMemory(to: Element.self, capacity: count)
    }

    private func allocate(byteCount: Int) -> UnsafeMutableRawPointer {
        guard let memory = amqp_pool_alloc(pool, byteCount) else {
            // A pool block is a plain malloc; Swift's own allocations trap when malloc fails, and so does this.
            fatalError("rabbitmq-c could not allocate \(byteCount) bytes from its pool")
        }
        return memory
    }
}

@available(*, unavailable, message: "a rabbitmq-c pool belongs to the thread of its connection")
extension RabbitMQCEncoder: Sendable {}

/// The `kind` tags of `amqp_field_value_t`, as the `uint8_t` the structure stores.
enum RabbitMQCFieldKind {
    static let boolean = UInt8(AMQP_FIELD_KIND_BOOLEAN.rawValue)
    static let int8 = UInt8(AMQP_FIELD_KIND_I8.rawValue)
    static let uint8 = UInt8(AMQP_FIELD_KIND_U8.rawValue)
    static let int16 = UInt8(AMQP_FIELD_KIND_I16.rawValue)
    static let uint16 = UInt8(AMQP_FIELD_KIND_U16.rawValue)
    static let int32 = UInt8(AMQP_FIELD_KIND_I32.rawValue)
    static let uint32 = UInt8(AMQP_FIELD_KIND_U32.rawValue)
    static let int64 = UInt8(AMQP_FIELD_KIND_I64.rawValue)
    static let uint64 = UInt8(AMQP_FIELD_KIND_U64.rawValue)
    static let float = UInt8(AMQP_FIELD_KIND_F32.rawValue)
    static let double = UInt8(AMQP_FIELD_KIND_F64.rawValue)
    static let decimal = UInt8(AMQP_FIELD_KIND_DECIMAL.rawValue)
    static let longString = UInt8(AMQP_FIELD_KIND_UTF8.rawValue)
    static let array = UInt8(AMQP_FIELD_KIND_ARRAY.rawValue)
    static let timestamp = UInt8(AMQP_FIELD_KIND_TIMESTAMP.rawValue)
    static let table = UInt8(AMQP_FIELD_KIND_TABLE.rawValue)
    static let void = UInt8(AMQP_FIELD_KIND_VOID.rawValue)
    static let bytes = UInt8(AMQP_FIELD_KIND_BYTES.rawValue)
}

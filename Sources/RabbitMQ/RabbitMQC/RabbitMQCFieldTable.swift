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

extension AMQPTable {
    /// Copies a rabbitmq-c table, nested tables and arrays included; nothing keeps pointing into C memory.
    ///
    /// Keys that are not valid UTF-8 are repaired with U+FFFD.
    init(decoding table: amqp_table_t) {
        var dictionary: [String: AMQPFieldValue] = [:]
        if let entries = table.entries, table.num_entries > 0 {
            let buffer = UnsafeBufferPointer(start: entries, count: Int(table.num_entries))
            dictionary.reserveCapacity(buffer.count)
            for entry in buffer {
                let key = String(copyingRabbitMQC: entry.key)
                // AMQP forbids duplicate keys. Should a peer send some anyway, keep the first, which is the one a
                // front-to-back lookup (the broker's own) finds.
                if dictionary[key] == nil {
                    dictionary[key] = AMQPFieldValue(decoding: entry.value)
                }
            }
        }
        self.init(dictionary)
    }
}

extension AMQPFieldValue {
    /// Copies a rabbitmq-c field value, nested tables and arrays included.
    ///
    /// A long string (`S`) becomes ``string(_:)`` when it is valid UTF-8 and ``bytes(_:)`` otherwise.
    init(decoding field: amqp_field_value_t) {
        switch field.kind {
        case RabbitMQCFieldKind.boolean:
            self = .bool(field.value.boolean != 0)
        case RabbitMQCFieldKind.int8:
            self = .int8(field.value.i8)
        case RabbitMQCFieldKind.uint8:
            self = .uint8(field.value.u8)
        case RabbitMQCFieldKind.int16:
            self = .int16(field.value.i16)
        case RabbitMQCFieldKind.uint16:
            self = .uint16(field.value.u16)
        case RabbitMQCFieldKind.int32:
            self = .int32(field.value.i32)
        case RabbitMQCFieldKind.uint32:
            self = .uint32(field.value.u32)
        case RabbitMQCFieldKind.int64:
            self = .int64(field.value.i64)
        case RabbitMQCFieldKind.uint64:
            self = .uint64(field.value.u64)
        case RabbitMQCFieldKind.float:
            self = .float(field.value.f32)
        case RabbitMQCFieldKind.double:
            self = .double(field.value.f64)
        case RabbitMQCFieldKind.decimal:
            self = .decimal(AMQPDecimal(scale: field.value.decimal.decimals, value: field.value.decimal.value))
        case RabbitMQCFieldKind.longString:
            // AMQP long strings are byte strings; other clients put binary data in them.
            if let string = String(validatingRabbitMQC: field.value.bytes) {
                self = .string(string)
            } else {
                self = .bytes([UInt8](copyingRabbitMQC: field.value.bytes))
            }
        case RabbitMQCFieldKind.bytes:
            self = .bytes([UInt8](copyingRabbitMQC: field.value.bytes))
        case RabbitMQCFieldKind.timestamp:
            self = .timestamp(Date(timeIntervalSince1970: TimeInterval(field.value.u64)))
        case RabbitMQCFieldKind.table:
            self = .table(AMQPTable(decoding: field.value.table))
        case RabbitMQCFieldKind.array:
            var elements: [AMQPFieldValue] = []
            if let entries = field.value.array.entries, field.value.array.num_entries > 0 {
                let buffer = UnsafeBufferPointer(start: entries, count: Int(field.value.array.num_entries))
                elements.reserveCapacity(buffer.count)
                for element in buffer {
                    elements.append(AMQPFieldValue(decoding: element))
                }
            }
            self = .array(elements)
        default:
            // rabbitmq-c's decoder refuses unknown kinds, so only a hand-built structure (or `V`) lands here.
            self = .void
        }
    }
}

extension String {
    /// Copies rabbitmq-c bytes as UTF-8, replacing invalid sequences with U+FFFD.
    init(copyingRabbitMQC bytes: amqp_bytes_t) {
        self.init(decoding: rabbitMQCBuffer(bytes), as: UTF8.self)
    }

    /// Copies rabbitmq-c bytes if they are valid UTF-8.
    init?(validatingRabbitMQC bytes: amqp_bytes_t) {
        self.init(validating: rabbitMQCBuffer(bytes), as: UTF8.self)
    }
}

extension Array where Element == UInt8 {
    /// Copies rabbitmq-c bytes.
    init(copyingRabbitMQC bytes: amqp_bytes_t) {
        self.init(rabbitMQCBuffer(bytes))
    }
}

/// A view of rabbitmq-c bytes, valid as long as the C memory; `{0, NULL}` is the empty buffer.
private func rabbitMQCBuffer(_ bytes: amqp_bytes_t) -> UnsafeRawBufferPointer {
    guard bytes.len > 0, let base = bytes.bytes else {
        return UnsafeRawBufferPointer(start: nil, count: 0)
    }
    return UnsafeRawBufferPointer(start: base, count: bytes.len)
}

/// Runs `body` with a fresh rabbitmq-c pool that is emptied (its memory freed) when `body` returns.
///
/// - Parameter pageSize: The size of the pool's pages; larger allocations get blocks of their own.
func withRabbitMQCPool<Result, Failure: Error>(
    pageSize: Int = 4096, _ body: (UnsafeMutablePointer<amqp_pool_t>) throws(Failure) -> Result
) throws(Failure) -> Result {
    let pool = UnsafeMutablePointer<amqp_pool_t>.allocate(capacity: 1)
    pool.initialize(to: amqp_pool_t())
    init_amqp_pool(pool, pageSize)
    defer {
        empty_amqp_pool(pool)
        pool.deinitialize(count: 1)
        pool.deallocate()
    }
    return try body(pool)
}

/// Runs one of rabbitmq-c's serialisers into a buffer that grows until the output fits, and returns the output.
///
/// - Parameters:
///   - name: What is serialised, for the error message.
///   - retryStatuses: The statuses by which `encode` says that the buffer is too small.
///   - encode: Serialises into the buffer it is given; returns the number of bytes written or a negative
///     `amqp_status_enum`.
func rabbitMQCSerialise(
    describedAs name: String, growingOn retryStatuses: Set<Int32>, _ encode: (amqp_bytes_t) -> Int32
) throws(AMQPError) -> [UInt8] {
    var capacity = 4096
    while true {
        var buffer = [UInt8](repeating: 0, count: capacity)
        let status = buffer.withUnsafeMutableBytes { raw in
            encode(amqp_bytes_t(len: raw.count, bytes: raw.baseAddress))
        }
        if status >= 0 {
            buffer.removeSubrange(Int(status)...)
            return buffer
        }
        guard retryStatuses.contains(status), capacity < 1 << 26 else {
            throw AMQPError(
                .encodingFailed, "rabbitmq-c could not serialise \(name)", libraryStatus: status,
                libraryStatusText: String(cString: amqp_error_string2(status)))
        }
        capacity *= 2
    }
}

/// Test hook: the bytes rabbitmq-c's `amqp_encode_table` writes for a table built by ``RabbitMQCEncoder``, its
/// 4-byte length first.
func rabbitMQCWireFormat(of table: AMQPTable) throws(AMQPError) -> [UInt8] {
    try withRabbitMQCPool { (pool) throws(AMQPError) -> [UInt8] in
        var encoded = try RabbitMQCEncoder(pool: pool).table(table)
        return try rabbitMQCSerialise(describedAs: "a table", growingOn: [AMQP_STATUS_TABLE_TOO_BIG.rawValue]) {
            buffer in
            var offset = 0
            let status = amqp_encode_table(buffer, &encoded, &offset)
            return status == AMQP_STATUS_OK.rawValue ? Int32(offset) : status
        }
    }
}

/// Test hook: reads a serialised table (4-byte length first) with rabbitmq-c's `amqp_decode_table` and copies it.
///
/// - Throws: ``AMQPError/Code-swift.struct/decodingFailed`` when rabbitmq-c refuses the bytes or leaves some unread.
func rabbitMQCTable(fromWireFormat bytes: [UInt8]) throws(AMQPError) -> AMQPTable {
    var bytes = bytes
    return try withRabbitMQCPool { (pool) throws(AMQPError) -> AMQPTable in
        // The decoded table points into `bytes` instead of copying, so it is copied out inside this scope.
        let outcome = bytes.withUnsafeMutableBytes { raw -> (status: Int32, offset: Int, table: AMQPTable?) in
            var decoded = amqp_table_t()
            var offset = 0
            let encoded = amqp_bytes_t(len: raw.count, bytes: raw.baseAddress)
            let status = amqp_decode_table(encoded, pool, &decoded, &offset)
            guard status == AMQP_STATUS_OK.rawValue else { return (status, offset, nil) }
            return (status, offset, AMQPTable(decoding: decoded))
        }
        guard let table = outcome.table, outcome.offset == bytes.count else {
            throw AMQPError(
                .decodingFailed, "rabbitmq-c could not read a table (\(outcome.offset) of \(bytes.count) bytes)",
                libraryStatus: outcome.status, libraryStatusText: String(cString: amqp_error_string2(outcome.status)))
        }
        return table
    }
}

/// Test hook: sends a table through the path a real one takes (``RabbitMQCEncoder``, then `amqp_encode_table`) and
/// reads it back with `amqp_decode_table`.
func roundTripThroughWireFormat(_ table: AMQPTable) throws(AMQPError) -> AMQPTable {
    try rabbitMQCTable(fromWireFormat: rabbitMQCWireFormat(of: table))
}

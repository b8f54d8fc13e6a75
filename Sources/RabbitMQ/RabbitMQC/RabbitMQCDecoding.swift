internal import CRabbitMQ
import Foundation

// Reading rabbitmq-c's structures back into the library's values (tables, field values, strings, bytes), and the
// wire-format helpers the field-table tests use. Everything is copied: nothing keeps pointing into C memory.

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

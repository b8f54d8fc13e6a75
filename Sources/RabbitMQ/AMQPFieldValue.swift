import Foundation

/// One value of an AMQP field table or field array: a message header, a queue or exchange argument, a client property.
///
/// Every case is one field kind of AMQP 0-9-1 as RabbitMQ and rabbitmq-c spell them (the letter in each case's
/// documentation is the kind's tag on the wire). A value read from the broker keeps its exact kind, so it can be
/// sent back unchanged. Literals choose the common kinds:
///
/// ```swift
/// let arguments: AMQPTable = [
///     "x-message-ttl": .int32(60_000),   // spell out the kind the broker expects
///     "x-dead-letter-exchange": "dlx",   // a string literal is .string
///     "retries": 3,                      // an integer literal is .int64
///     "weights": [0.5, 1.5],             // an array literal is .array
///     "tracing": ["enabled": true],      // a dictionary literal is .table
///     "reason": nil,                     // nil is .void
/// ]
/// ```
///
/// Brokers differ in the kinds they understand; `int32` (`I`), `int64` (`l`), `string` (`S`), `bool` (`t`) and
/// `table` (`F`) are the safe choices for arguments other brokers or clients must read.
public enum AMQPFieldValue: Sendable, Hashable {
    /// A boolean, kind `t`.
    case bool(Bool)
    /// A signed 8-bit integer, kind `b`.
    case int8(Int8)
    /// An unsigned 8-bit integer, kind `B`.
    case uint8(UInt8)
    /// A signed 16-bit integer, kind `s`.
    case int16(Int16)
    /// An unsigned 16-bit integer, kind `u`.
    case uint16(UInt16)
    /// A signed 32-bit integer, kind `I`.
    case int32(Int32)
    /// An unsigned 32-bit integer, kind `i`.
    case uint32(UInt32)
    /// A signed 64-bit integer, kind `l`.
    case int64(Int64)
    /// An unsigned 64-bit integer, kind `L`.
    case uint64(UInt64)
    /// A 32-bit IEEE 754 floating-point number, kind `f`.
    case float(Float)
    /// A 64-bit IEEE 754 floating-point number, kind `d`.
    case double(Double)
    /// A decimal number (a value and a count of decimal places), kind `D`.
    case decimal(AMQPDecimal)
    /// A UTF-8 text, sent as a long string, kind `S`.
    ///
    /// A long string received from the broker becomes `.string` when its bytes are valid UTF-8 and ``bytes(_:)``
    /// otherwise.
    case string(String)
    /// Raw bytes, kind `x`.
    case bytes([UInt8])
    /// A point in time, kind `T`.
    ///
    /// AMQP counts whole seconds since 1970-01-01 00:00:00 UTC: the fraction of a second is dropped when the value is
    /// sent, and dates before 1970 cannot be sent at all.
    case timestamp(Date)
    /// A nested field table, kind `F`.
    case table(AMQPTable)
    /// A field array, kind `A`; its elements may be of different kinds.
    case array([AMQPFieldValue])
    /// No value, kind `V`.
    case void
}

extension AMQPFieldValue {
    /// The value as an `Int`, if it is an integer of any width or signedness that fits into `Int`.
    ///
    /// A ``uint64(_:)`` above `Int.max` gives `nil`, as does every kind that is not an integer (``bool(_:)``,
    /// ``timestamp(_:)``, ``decimal(_:)`` and the floating-point kinds included).
    public var intValue: Int? {
        switch self {
        case .int8(let value): return Int(exactly: value)
        case .uint8(let value): return Int(exactly: value)
        case .int16(let value): return Int(exactly: value)
        case .uint16(let value): return Int(exactly: value)
        case .int32(let value): return Int(exactly: value)
        case .uint32(let value): return Int(exactly: value)
        case .int64(let value): return Int(exactly: value)
        case .uint64(let value): return Int(exactly: value)
        default: return nil
        }
    }

    /// The text of a ``string(_:)``, or `nil` for every other kind.
    public var stringValue: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    /// The value of a ``bool(_:)``, or `nil` for every other kind.
    public var boolValue: Bool? {
        if case .bool(let value) = self { return value }
        return nil
    }

    /// The value of a ``double(_:)`` or a ``float(_:)`` (widened to `Double`), or `nil` for every other kind.
    public var doubleValue: Double? {
        switch self {
        case .double(let value): return value
        case .float(let value): return Double(value)
        default: return nil
        }
    }

    /// The nested table of a ``table(_:)``, or `nil` for every other kind.
    public var tableValue: AMQPTable? {
        if case .table(let value) = self { return value }
        return nil
    }

    /// The elements of an ``array(_:)``, or `nil` for every other kind.
    public var arrayValue: [AMQPFieldValue]? {
        if case .array(let value) = self { return value }
        return nil
    }

    /// The bytes of a ``bytes(_:)``, or the UTF-8 bytes of a ``string(_:)``; `nil` for every other kind.
    ///
    /// Strings count because AMQP long strings are byte strings: a sender's binary header that happens to be valid
    /// UTF-8 arrives as ``string(_:)``.
    public var bytesValue: [UInt8]? {
        switch self {
        case .bytes(let value): return value
        case .string(let value): return Array(value.utf8)
        default: return nil
        }
    }
}

extension AMQPFieldValue: ExpressibleByBooleanLiteral {
    /// Creates a ``bool(_:)`` from a `true` or `false` literal.
    ///
    /// - Parameter value: The literal's value.
    public init(booleanLiteral value: Bool) {
        self = .bool(value)
    }
}

extension AMQPFieldValue: ExpressibleByIntegerLiteral {
    /// Creates an ``int64(_:)`` from an integer literal; spell out another case (such as `.int32(60_000)`) when the
    /// broker expects a narrower kind.
    ///
    /// - Parameter value: The literal's value.
    public init(integerLiteral value: Int64) {
        self = .int64(value)
    }
}

extension AMQPFieldValue: ExpressibleByFloatLiteral {
    /// Creates a ``double(_:)`` from a floating-point literal.
    ///
    /// - Parameter value: The literal's value.
    public init(floatLiteral value: Double) {
        self = .double(value)
    }
}

extension AMQPFieldValue: ExpressibleByStringLiteral {
    /// Creates a ``string(_:)`` from a string literal.
    ///
    /// - Parameter value: The literal's text.
    public init(stringLiteral value: String) {
        self = .string(value)
    }
}

extension AMQPFieldValue: ExpressibleByArrayLiteral {
    /// Creates an ``array(_:)`` from an array literal.
    ///
    /// - Parameter elements: The literal's elements, in order; each keeps its own kind.
    public init(arrayLiteral elements: AMQPFieldValue...) {
        self = .array(elements)
    }
}

extension AMQPFieldValue: ExpressibleByDictionaryLiteral {
    /// Creates a nested ``table(_:)`` from a dictionary literal with string keys.
    ///
    /// Like a `Dictionary` literal, a key written twice is a programming error and stops the program.
    ///
    /// - Parameter elements: The literal's key-value pairs.
    public init(dictionaryLiteral elements: (String, AMQPFieldValue)...) {
        self = .table(AMQPTable(Dictionary(uniqueKeysWithValues: elements)))
    }
}

extension AMQPFieldValue: ExpressibleByNilLiteral {
    /// Creates ``void`` from `nil`.
    ///
    /// Where the expected type is `AMQPFieldValue?` (for instance `table["key"] = nil`), `nil` means "no value" and
    /// removes the entry; write `.void` to store a void value there.
    ///
    /// - Parameter nilLiteral: The empty value the compiler passes for `nil`.
    public init(nilLiteral: ()) {
        self = .void
    }
}

/// An AMQP decimal number (field kind `D`): an unsigned integer ``value`` with ``scale`` decimal places, so that the
/// number is `value / 10^scale`.
///
/// `AMQPDecimal(scale: 2, value: 1999)` is 19.99.
public struct AMQPDecimal: Sendable, Hashable {
    /// How many of the digits of ``value`` are after the decimal point.
    public var scale: UInt8
    /// The digits of the number, without its decimal point.
    public var value: UInt32

    /// Creates a decimal number worth `value / 10^scale`.
    ///
    /// - Parameters:
    ///   - scale: How many digits of `value` are after the decimal point.
    ///   - value: The digits of the number, without its decimal point.
    public init(scale: UInt8, value: UInt32) {
        self.scale = scale
        self.value = value
    }
}

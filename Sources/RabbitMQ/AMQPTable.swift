/// An AMQP field table: string keys mapped to ``AMQPFieldValue``s.
///
/// Field tables carry message headers (``AMQPProperties/headers``), the optional arguments of `queue.declare`,
/// `exchange.declare`, `queue.bind` and `basic.consume`, and client properties. Build one with a dictionary literal:
///
/// ```swift
/// let arguments: AMQPTable = ["x-queue-type": "quorum", "x-delivery-limit": .int32(5)]
/// ```
///
/// Keys must be 1 to 128 UTF-8 bytes long; a table with another key is refused with
/// ``AMQPError/Code-swift.struct/invalidArgument`` when it is sent, before anything reaches the broker. Like a
/// dictionary, a table has no order; it iterates as `(key:value:)` pairs.
public struct AMQPTable: Sendable, Hashable {
    /// The entries of the table.
    public var dictionary: [String: AMQPFieldValue]

    /// Creates an empty table.
    public init() {
        dictionary = [:]
    }

    /// Creates a table holding the entries of a dictionary.
    ///
    /// - Parameter dictionary: The keys and values of the table.
    public init(_ dictionary: [String: AMQPFieldValue]) {
        self.dictionary = dictionary
    }

    /// The value stored under a key, or `nil` if there is none; assigning `nil` removes the entry.
    ///
    /// - Parameter key: The entry's key.
    public subscript(key: String) -> AMQPFieldValue? {
        get { dictionary[key] }
        set { dictionary[key] = newValue }
    }

    /// How many entries the table holds.
    public var count: Int { dictionary.count }

    /// Whether the table holds no entry.
    public var isEmpty: Bool { dictionary.isEmpty }

    /// The keys of the table, in no particular order.
    public var keys: Dictionary<String, AMQPFieldValue>.Keys { dictionary.keys }
}

extension AMQPTable: ExpressibleByDictionaryLiteral {
    /// Creates a table from a dictionary literal.
    ///
    /// Like a `Dictionary` literal, a key written twice is a programming error and stops the program.
    ///
    /// - Parameter elements: The literal's key-value pairs.
    public init(dictionaryLiteral elements: (String, AMQPFieldValue)...) {
        self.init(Dictionary(uniqueKeysWithValues: elements))
    }
}

extension AMQPTable: Sequence {
    /// One entry of the table.
    public typealias Element = (key: String, value: AMQPFieldValue)

    /// Iterates over the entries of a table.
    public typealias Iterator = Dictionary<String, AMQPFieldValue>.Iterator

    /// Returns an iterator over the entries of the table, in no particular order.
    public func makeIterator() -> Iterator {
        dictionary.makeIterator()
    }

    /// The number of entries, so that `Array(table)` allocates once.
    public var underestimatedCount: Int { dictionary.count }
}

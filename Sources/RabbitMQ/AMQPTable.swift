// Placeholder until the field-table work lands.
public struct AMQPTable: Sendable, Hashable {}
public enum AMQPFieldValue: Sendable, Hashable {}

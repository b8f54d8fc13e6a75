// Placeholder until the properties work lands.
public struct AMQPProperties: Sendable, Hashable { public init() {} }

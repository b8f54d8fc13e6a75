/// An AMQP 0-9-1 method, identified by its class and method ids, such as `queue.declare` (50, 10).
///
/// Errors use it to say which method the broker refused.
public struct AMQPMethod: Hashable, Sendable, CustomStringConvertible {
    /// The AMQP class id (10 connection, 20 channel, 40 exchange, 50 queue, 60 basic, 85 confirm, 90 tx).
    public var classID: UInt16
    /// The method id within its class.
    public var methodID: UInt16

    /// Creates a method from its ids.
    ///
    /// - Parameters:
    ///   - classID: The AMQP class id, such as 50 for `queue`.
    ///   - methodID: The method id within the class, such as 10 for `queue.declare`.
    public init(classID: UInt16, methodID: UInt16) {
        self.classID = classID
        self.methodID = methodID
    }

    /// The method's name as the specification spells it (`exchange.declare`), or `class.method` ids when unknown.
    public var name: String {
        AMQPMethod.names[self] ?? "\(classID).\(methodID)"
    }

    /// The method's name.
    public var description: String { name }

    private static let names: [AMQPMethod: String] = {
        let table: [(UInt16, UInt16, String)] = [
            (10, 10, "connection.start"), (10, 11, "connection.start-ok"), (10, 20, "connection.secure"),
            (10, 21, "connection.secure-ok"), (10, 30, "connection.tune"), (10, 31, "connection.tune-ok"),
            (10, 40, "connection.open"), (10, 41, "connection.open-ok"), (10, 50, "connection.close"),
            (10, 51, "connection.close-ok"), (10, 60, "connection.blocked"), (10, 61, "connection.unblocked"),
            (20, 10, "channel.open"), (20, 11, "channel.open-ok"), (20, 20, "channel.flow"),
            (20, 21, "channel.flow-ok"), (20, 40, "channel.close"), (20, 41, "channel.close-ok"),
            (40, 10, "exchange.declare"), (40, 11, "exchange.declare-ok"), (40, 20, "exchange.delete"),
            (40, 21, "exchange.delete-ok"), (40, 30, "exchange.bind"), (40, 31, "exchange.bind-ok"),
            (40, 40, "exchange.unbind"), (40, 51, "exchange.unbind-ok"),
            (50, 10, "queue.declare"), (50, 11, "queue.declare-ok"), (50, 20, "queue.bind"),
            (50, 21, "queue.bind-ok"), (50, 30, "queue.purge"), (50, 31, "queue.purge-ok"),
            (50, 40, "queue.delete"), (50, 41, "queue.delete-ok"), (50, 50, "queue.unbind"),
            (50, 51, "queue.unbind-ok"),
            (60, 10, "basic.qos"), (60, 11, "basic.qos-ok"), (60, 20, "basic.consume"),
            (60, 21, "basic.consume-ok"), (60, 30, "basic.cancel"), (60, 31, "basic.cancel-ok"),
            (60, 40, "basic.publish"), (60, 50, "basic.return"), (60, 60, "basic.deliver"),
            (60, 70, "basic.get"), (60, 71, "basic.get-ok"), (60, 72, "basic.get-empty"),
            (60, 80, "basic.ack"), (60, 90, "basic.reject"), (60, 100, "basic.recover-async"),
            (60, 110, "basic.recover"), (60, 111, "basic.recover-ok"), (60, 120, "basic.nack"),
            (85, 10, "confirm.select"), (85, 11, "confirm.select-ok"),
            (90, 10, "tx.select"), (90, 11, "tx.select-ok"), (90, 20, "tx.commit"), (90, 21, "tx.commit-ok"),
            (90, 30, "tx.rollback"), (90, 31, "tx.rollback-ok"),
        ]
        return Dictionary(uniqueKeysWithValues: table.map { (AMQPMethod(classID: $0.0, methodID: $0.1), $0.2) })
    }()
}

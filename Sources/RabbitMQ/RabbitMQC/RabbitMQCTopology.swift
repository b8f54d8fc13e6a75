/// What the application declared through a connection, in order, so that recovery can declare it again on a new
/// connection: exchanges, queues (server-named ones included), and bindings. Passive declarations are checks, not
/// declarations, and are not recorded; deletions and unbindings remove what they undo.
struct RabbitMQCTopology {
    enum Entry {
        case exchange(name: String, type: String, durable: Bool, autoDelete: Bool, isInternal: Bool, arguments: AMQPTable)
        case queue(name: String, durable: Bool, exclusive: Bool, autoDelete: Bool, arguments: AMQPTable, serverNamed: Bool)
        case queueBinding(queue: String, exchange: String, routingKey: String, arguments: AMQPTable)
        case exchangeBinding(destination: String, source: String, routingKey: String, arguments: AMQPTable)
    }

    private(set) var entries: [Entry] = []

    mutating func record(_ entry: Entry) {
        // A repeated declaration replaces the earlier one in place, keeping the original order.
        if let index = entries.firstIndex(where: { $0.sameTarget(as: entry) }) {
            entries[index] = entry
        } else {
            entries.append(entry)
        }
    }

    mutating func removeExchange(_ name: String) {
        entries.removeAll { entry in
            switch entry {
            case .exchange(let exchange, _, _, _, _, _): exchange == name
            case .queueBinding(_, let exchange, _, _): exchange == name
            case .exchangeBinding(let destination, let source, _, _): destination == name || source == name
            case .queue: false
            }
        }
    }

    mutating func removeQueue(_ name: String) {
        entries.removeAll { entry in
            switch entry {
            case .queue(let queue, _, _, _, _, _): queue == name
            case .queueBinding(let queue, _, _, _): queue == name
            default: false
            }
        }
    }

    mutating func removeBinding(_ binding: Entry) {
        entries.removeAll { $0.sameTarget(as: binding) }
    }

    /// Gives a server-named queue its new name everywhere it is mentioned.
    mutating func renameQueue(_ old: String, to new: String) {
        entries = entries.map { entry in
            switch entry {
            case .queue(old, let durable, let exclusive, let autoDelete, let arguments, let serverNamed):
                .queue(
                    name: new, durable: durable, exclusive: exclusive, autoDelete: autoDelete, arguments: arguments,
                    serverNamed: serverNamed)
            case .queueBinding(old, let exchange, let routingKey, let arguments):
                .queueBinding(queue: new, exchange: exchange, routingKey: routingKey, arguments: arguments)
            default:
                entry
            }
        }
    }
}

extension RabbitMQCTopology.Entry {
    /// Whether two entries declare the same thing (the same exchange, queue or binding), whatever their flags.
    func sameTarget(as other: Self) -> Bool {
        switch (self, other) {
        case (.exchange(let a, _, _, _, _, _), .exchange(let b, _, _, _, _, _)):
            a == b
        case (.queue(let a, _, _, _, _, _), .queue(let b, _, _, _, _, _)):
            a == b
        case (.queueBinding(let q1, let x1, let k1, let a1), .queueBinding(let q2, let x2, let k2, let a2)):
            q1 == q2 && x1 == x2 && k1 == k2 && a1 == a2
        case (.exchangeBinding(let d1, let s1, let k1, let a1), .exchangeBinding(let d2, let s2, let k2, let a2)):
            d1 == d2 && s1 == s2 && k1 == k2 && a1 == a2
        default:
            false
        }
    }
}

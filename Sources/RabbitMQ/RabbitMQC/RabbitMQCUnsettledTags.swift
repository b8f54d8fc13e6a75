/// The delivery tags of a channel that the broker considers unacknowledged, lowest first.
///
/// Tags grow along a channel, so deliveries append and most acknowledgements settle the lowest; the few settled out
/// of order wait in a set until the lowest reaches them. Knowing the lowest unsettled tag lets the I/O thread turn a
/// run of acknowledgements into one `basic.ack` with `multiple`, which settles exactly the same deliveries.
struct RabbitMQCUnsettledTags {
    private var tags: [UInt64] = []
    private var head = 0
    private var settledOutOfOrder = Set<UInt64>()

    /// A delivery the broker awaits an acknowledgement for.
    mutating func delivered(_ tag: UInt64) {
        tags.append(tag)
    }

    /// One delivery settled (ack, nack or reject).
    mutating func settle(_ tag: UInt64) {
        guard head < tags.count, tag >= tags[head] else { return }
        if tags[head] == tag {
            head += 1
            advance()
        } else {
            settledOutOfOrder.insert(tag)
        }
    }

    /// Every delivery up to `tag` settled (`multiple`).
    mutating func settle(upTo tag: UInt64) {
        while head < tags.count && tags[head] <= tag { head += 1 }
        if !settledOutOfOrder.isEmpty { settledOutOfOrder = settledOutOfOrder.filter { $0 > tag } }
        advance()
    }

    /// The lowest unsettled tag, if any.
    var lowest: UInt64? {
        head < tags.count ? tags[head] : nil
    }

    /// Forgets everything (the channel's tags start over, after a recovery).
    mutating func reset() {
        tags = []
        head = 0
        settledOutOfOrder = []
    }

    private mutating func advance() {
        while head < tags.count, settledOutOfOrder.remove(tags[head]) != nil { head += 1 }
        if head == tags.count {
            tags.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 4096 && head * 2 >= tags.count {
            tags.removeFirst(head)
            head = 0
        }
    }
}

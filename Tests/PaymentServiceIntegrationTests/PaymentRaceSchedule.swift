import Foundation
import PaymentService

/// The race the fault and cluster tests publish: one payment per client at a steady rate, and each client's
/// registration a random 0 to `maxLag` seconds after its payment, all in the order they fall due.
struct PaymentRaceSchedule {
    /// One message of the race.
    struct Message {
        let due: ContinuousClock.Instant
        let queue: String
        let body: Data
        /// The payment or client id, also the message id.
        let id: String
        let isPayment: Bool
    }

    /// The payments' ids, `<name>-<index>`; their clients are `<name>-client-<index>`.
    let paymentIDs: [String]
    /// Every payment and registration, sorted by when it falls due.
    let messages: [Message]

    init(
        name: String, topology: PaymentTopology, payments: Int, perSecond: Double, maxLag: Int, seed: UInt64,
        start: ContinuousClock.Instant = .now
    ) throws {
        var generator = SeededGenerator(seed: seed)
        let encoder = JSONEncoder()
        var messages: [Message] = []
        var ids: [String] = []
        for index in 0..<payments {
            let client = "\(name)-client-\(index)"
            let payment = PaymentRequest(paymentId: "\(name)-\(index)", clientId: client, amount: "1.00", currency: "EUR")
            ids.append(payment.paymentId)
            let paidAt = start + .milliseconds(Int(Double(index) / perSecond * 1000))
            let lag = Duration.milliseconds(Int.random(in: 0...(maxLag * 1000), using: &generator))
            messages.append(
                Message(
                    due: paidAt, queue: topology.paymentsQueue, body: try encoder.encode(payment),
                    id: payment.paymentId, isPayment: true))
            messages.append(
                Message(
                    due: paidAt + lag, queue: topology.clientsQueue,
                    body: try encoder.encode(ClientRegistration(clientId: client)), id: client, isPayment: false))
        }
        paymentIDs = ids
        self.messages = messages.sorted { $0.due < $1.due }
    }
}

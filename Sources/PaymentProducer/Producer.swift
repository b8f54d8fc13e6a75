import ArgumentParser
import Foundation
import Logging
import PaymentCommandLine
import PaymentService

/// `producer`: publishes client registrations and payments, with confirms.
@main
struct Producer: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Publishes client registrations and payments to the payment service, with publisher confirms.",
        discussion: """
            Prints the id of every confirmed message on stdout; exits 0 only when every message was confirmed. With \
            --otlp-endpoint it exports traces, as service payment-producer, before it exits.
            """,
        subcommands: [Client.self, Payment.self])
}

extension Producer {
    struct Client: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Registers a client (to clients-processor).")

        @OptionGroup var connection: ConnectionOptions

        @OptionGroup var tracing: TracingOptions

        @Argument(help: "The client's id. With --count N, the ids are <id>-1 … <id>-N.")
        var id: String

        @Option(help: "The client's name.")
        var name: String?

        @Option(help: "How many clients to register.")
        var count = 1

        func validate() throws {
            guard count >= 1 else { throw ValidationError("--count must be at least 1") }
            let ids = count == 1 ? [id] : (1...count).map { "\(id)-\($0)" }
            for id in ids {
                if let problem = MessageValidation.problem(with: ClientRegistration(clientId: id)) {
                    throw ValidationError("invalid client id: \(problem.reason)")
                }
            }
        }

        func run() async throws {
            let ids = count == 1 ? [id] : (1...count).map { "\(id)-\($0)" }
            try await publish(
                ids.map { ClientRegistration(clientId: $0, name: name) }, connection: connection, tracing: tracing)
        }
    }

    struct Payment: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Requests a payment (to payment-processor).")

        @OptionGroup var connection: ConnectionOptions

        @OptionGroup var tracing: TracingOptions

        @Argument(help: "The id of the client who pays.")
        var clientId: String

        @Option(help: "The payment's id (default: a new UUID). With --count N, the ids are <id>-1 … <id>-N.")
        var paymentId: String?

        @Option(help: "The amount, a decimal string such as 10.50.")
        var amount = "10.00"

        @Option(help: "The ISO 4217 currency code.")
        var currency = "EUR"

        @Option(help: "How many payments to request.")
        var count = 1

        func validate() throws {
            guard count >= 1 else { throw ValidationError("--count must be at least 1") }
            for payment in payments() {
                if let problem = MessageValidation.problem(with: payment) {
                    throw ValidationError("invalid payment: \(problem.reason)")
                }
            }
        }

        func run() async throws {
            try await publish(payments(), connection: connection, tracing: tracing)
        }

        private func payments() -> [PaymentRequest] {
            (1...max(count, 1)).map { index in
                let id: String
                switch (paymentId, count) {
                case (let given?, 1): id = given
                case (let given?, _): id = "\(given)-\(index)"
                case (nil, _): id = UUID().uuidString.lowercased()
                }
                return PaymentRequest(paymentId: id, clientId: clientId, amount: amount, currency: currency)
            }
        }
    }
}

/// Publishes, prints every confirmed id on stdout, and fails unless every message was confirmed. With an OTLP
/// endpoint, the publish spans are exported before it returns: within 2 s, which a collector answers in a fraction
/// of, and which is all a collector that is down delays the exit by (the HTTP client retries a refused connection
/// until the export's deadline).
private func publish<Message>(
    _ messages: [Message], connection: ConnectionOptions, tracing: TracingOptions
) async throws {
    let logger = connection.bootstrapLogging(label: "producer")
    try await tracing.withTracing(serviceName: "payment-producer", logger: logger, exportGrace: .seconds(2)) {
        try await send(messages, connection: connection, logger: logger)
    }
}

private func send<Message>(_ messages: [Message], connection: ConnectionOptions, logger: Logger) async throws {
    let producer = EventProducer(
        connection: try connection.configuration(), topology: PaymentTopology(prefix: connection.namePrefix),
        logger: logger)
    let report: EventProducer.Report
    switch messages {
    case let registrations as [ClientRegistration]: report = try await producer.send(registrations)
    case let payments as [PaymentRequest]: report = try await producer.send(payments)
    default: fatalError("unsupported message type \(Message.self)")
    }
    for id in report.confirmed { print(id) }
    for failure in report.failed {
        logger.error("message not confirmed", metadata: ["id": "\(failure.id)", "error": "\(failure.error)"])
    }
    logger.info("published", metadata: ["confirmed": "\(report.confirmed.count)", "failed": "\(report.failed.count)"])
    if !report.failed.isEmpty {
        throw PaymentServiceError("\(report.failed.count) of \(messages.count) messages were not confirmed")
    }
}

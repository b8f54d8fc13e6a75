import Foundation
import Tracing

/// The publish path when spans or metrics are on: a PRODUCER span per publish, whose context travels in the
/// message's headers, ended when the broker confirms the message (in confirm mode) or once it is handed to the
/// connection's thread (otherwise).
extension AMQPChannel {
    func instrumentedPublish(
        _ body: Data, exchange: String, routingKey: String, properties: AMQPProperties, mandatory: Bool
    ) async throws -> AMQPPublishConfirmation? {
        let instruments = core.instruments
        let destination = MessagingSemantics.sendDestination(exchange: exchange, routingKey: routingKey)
        let started = ContinuousClock.now
        var properties = properties
        var span: (any Span)?
        if let tracer = instruments.tracer {
            let publishSpan = tracer.startSpan(
                "publish \(destination)", context: ServiceContext.current ?? .topLevel, ofKind: .producer)
            MessagingSemantics.setMessageAttributes(
                on: publishSpan, destination: destination, operation: "publish", type: "send", routingKey: routingKey,
                properties: properties, bodySize: body.count, endpoint: core.endpoint)
            var headers = properties.headers ?? AMQPTable()
            tracer.inject(publishSpan.context, into: &headers, using: AMQPHeadersInjector())
            properties.headers = headers
            span = publishSpan
        }
        let metrics = instruments.metrics
        let finish: @Sendable ((any Error)?) -> Void = { [span] error in
            if let span {
                if let error { MessagingSemantics.fail(span, with: error) }
                span.end()
            }
            metrics?.recordPublish(
                destination: destination, duration: .now - started,
                error: error.map(MessagingSemantics.errorType(of:)))
        }
        do {
            let confirmation = try await handOver(
                body, exchange: exchange, routingKey: routingKey, properties: properties, mandatory: mandatory,
                onSettle: { result in
                    if case .failure(let error) = result { finish(error) } else { finish(nil) }
                })
            if confirmation == nil { finish(nil) }
            return confirmation
        } catch {
            finish(error)
            throw error
        }
    }
}

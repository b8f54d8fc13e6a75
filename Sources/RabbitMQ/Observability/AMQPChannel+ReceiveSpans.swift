import Tracing

/// `basic.get` when spans or metrics are on: a CLIENT `receive` span around the fetch, linked to the context the
/// message carries.
extension AMQPChannel {
    func instrumentedGet(queue: String, noAck: Bool) async throws -> AMQPDelivery? {
        let instruments = core.instruments
        let started = ContinuousClock.now
        let span = instruments.tracer.map { tracer in
            tracer.startSpan("receive \(queue)", context: ServiceContext.current ?? .topLevel, ofKind: .client)
        }
        do {
            let delivery = try await fetch(queue: queue, noAck: noAck)
            let destination = delivery?.receiveDestination ?? queue
            if let span {
                if let delivery {
                    // Named once the message shows where it came from.
                    span.operationName = "receive \(destination)"
                    delivery.setAttributes(on: span, destination: destination, operation: "receive", type: "receive")
                    if let producer = delivery.traceContext {
                        span.addLink(SpanLink(context: producer, attributes: [:]))
                    }
                } else {
                    span.updateAttributes { attributes in
                        attributes[MessagingSemantics.system] = MessagingSemantics.systemValue
                        attributes[MessagingSemantics.destinationName] = queue
                        attributes[MessagingSemantics.operationName] = "receive"
                        attributes[MessagingSemantics.operationType] = "receive"
                    }
                }
                span.end()
            }
            if let metrics = instruments.metrics {
                metrics.recordOperation("receive", destination: destination, duration: .now - started, error: nil)
                if delivery != nil { metrics.recordConsumed(operation: "receive", destination: destination) }
            }
            return delivery
        } catch {
            if let span {
                MessagingSemantics.fail(span, with: error)
                span.end()
            }
            instruments.metrics?.recordOperation(
                "receive", destination: queue, duration: .now - started, error: MessagingSemantics.errorType(of: error))
            throw error
        }
    }
}

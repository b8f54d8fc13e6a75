import Tracing

/// The consumer side of tracing: the CONSUMER `process` span the application handles a delivery in, and the
/// CLIENT `settle` spans of its acknowledgements.
extension AMQPDelivery {
    /// Where the message came from, as the conventions name it: `{exchange}:{routing key}:{queue}`.
    var receiveDestination: String {
        MessagingSemantics.receiveDestination(exchange: exchange, routingKey: routingKey, queue: queue)
    }

    /// The trace context the message carries in its headers (its publisher's span), read with the bootstrapped
    /// tracer; nil when tracing is off, no tracer is bootstrapped, or the message carries none.
    public var traceContext: ServiceContext? {
        guard let tracer = channel.core.instruments.tracer, let headers = properties.headers else { return nil }
        var context = ServiceContext.topLevel
        tracer.extract(headers, into: &context, using: AMQPHeadersExtractor())
        return context.isEmpty ? nil : context
    }

    /// Runs `operation` as the handling of this delivery: inside a CONSUMER span `process {destination}` whose
    /// parent is the context the message carries, so that the handling joins its publisher's trace.
    ///
    /// The span is the current one while `operation` runs: what it publishes (a reply, a retry, an event) carries the
    /// same trace, and its ``ack(multiple:)`` is recorded as a `settle` span inside it. An error `operation` throws is
    /// recorded on the span (with `error.type`) and thrown on. With tracing off, or no tracer bootstrapped, the span
    /// is a no-op and `operation` just runs; with metrics on, its duration is `messaging.process.duration`.
    ///
    /// ```swift
    /// for try await delivery in consumer {
    ///     try await delivery.process { span in
    ///         try await handle(delivery)
    ///         try await delivery.ack()
    ///     }
    /// }
    /// ```
    ///
    /// - Parameters:
    ///   - isolation: The actor `operation` runs on; the caller's, by default.
    ///   - operation: The handling, given the span to add attributes or events to.
    /// - Returns: What `operation` returns.
    /// - Throws: What `operation` throws.
    public func process<Result>(
        isolation: isolated (any Actor)? = #isolation, _ operation: (any Span) async throws -> Result
    ) async throws -> Result {
        let instruments = channel.core.instruments
        guard instruments.isActive else {
            return try await operation(NoOpTracer.NoOpSpan(context: .topLevel))
        }
        let destination = receiveDestination
        let started = ContinuousClock.now
        let span: any Span
        if let tracer = instruments.tracer {
            span = tracer.startSpan(
                "process \(destination)", context: traceContext ?? ServiceContext.current ?? .topLevel,
                ofKind: .consumer)
            setAttributes(on: span, destination: destination, operation: "process", type: "process")
        } else {
            span = NoOpTracer.NoOpSpan(context: ServiceContext.current ?? .topLevel)
        }
        do {
            let result = try await ServiceContext.$current.withValue(
                span.context, operation: { try await operation(span) }, isolation: isolation)
            span.end()
            instruments.metrics?.recordProcess(destination: destination, duration: .now - started, error: nil)
            return result
        } catch {
            MessagingSemantics.fail(span, with: error)
            span.end()
            instruments.metrics?.recordProcess(
                destination: destination, duration: .now - started, error: MessagingSemantics.errorType(of: error))
            throw error
        }
    }

    /// Records an acknowledgement (`ack`, `nack` or `reject`) as a CLIENT `settle` span, inside the current span or,
    /// outside one, in the message's trace.
    func settle(_ operation: String, _ send: () throws -> Void) throws {
        let instruments = channel.core.instruments
        guard instruments.isActive else { return try send() }
        let destination = receiveDestination
        let started = ContinuousClock.now
        let span = instruments.tracer.map { tracer in
            tracer.startSpan(
                "\(operation) \(destination)", context: ServiceContext.current ?? traceContext ?? .topLevel,
                ofKind: .client)
        }
        if let span { setAttributes(on: span, destination: destination, operation: operation, type: "settle") }
        do {
            try send()
            span?.end()
            instruments.metrics?.recordOperation(
                operation, destination: destination, duration: .now - started, error: nil)
        } catch {
            if let span {
                MessagingSemantics.fail(span, with: error)
                span.end()
            }
            instruments.metrics?.recordOperation(
                operation, destination: destination, duration: .now - started,
                error: MessagingSemantics.errorType(of: error))
            throw error
        }
    }

    /// The message's attributes, and its delivery tag.
    func setAttributes(on span: any Span, destination: String, operation: String, type: String) {
        MessagingSemantics.setMessageAttributes(
            on: span, destination: destination, operation: operation, type: type, routingKey: routingKey,
            properties: properties, bodySize: body.count, endpoint: channel.core.endpoint)
        span.attributes[MessagingSemantics.deliveryTag] = Int(clamping: deliveryTag)
    }
}

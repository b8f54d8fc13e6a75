import Tracing

/// The OpenTelemetry messaging conventions for RabbitMQ (semantic conventions 1.44, with the 2026 destination
/// names): the attribute keys and values the spans and metrics carry.
enum MessagingSemantics {
    static let system = "messaging.system"
    static let systemValue = "rabbitmq"
    static let destinationName = "messaging.destination.name"
    static let operationName = "messaging.operation.name"
    static let operationType = "messaging.operation.type"
    static let routingKey = "messaging.rabbitmq.destination.routing_key"
    static let deliveryTag = "messaging.rabbitmq.message.delivery_tag"
    static let messageID = "messaging.message.id"
    static let conversationID = "messaging.message.conversation_id"
    static let bodySize = "messaging.message.body.size"
    static let consumerGroup = "messaging.consumer.group.name"
    static let errorType = "error.type"
    static let serverAddress = "server.address"
    static let serverPort = "server.port"

    /// How the conventions write the default exchange, whose name is empty.
    static let defaultExchange = "amq.default"

    /// `{exchange}:{routing key}`: where a publish goes.
    static func sendDestination(exchange: String, routingKey: String) -> String {
        "\(exchange.isEmpty ? defaultExchange : exchange):\(routingKey)"
    }

    /// `{exchange}:{routing key}:{queue}`: where a received message came from.
    static func receiveDestination(exchange: String, routingKey: String, queue: String) -> String {
        "\(exchange.isEmpty ? defaultExchange : exchange):\(routingKey):\(queue)"
    }

    /// The `error.type` of an error: an ``AMQPError``'s code, otherwise the error's type name.
    static func errorType(of error: any Error) -> String {
        if let error = error as? AMQPError { return error.code.description }
        if error is CancellationError { return "cancelled" }
        return String(reflecting: type(of: error))
    }

    /// Marks `span` failed with `error`: the error recorded, `error.type` set, status error.
    static func fail(_ span: any Span, with error: any Error) {
        span.recordError(error)
        span.attributes[errorType] = Self.errorType(of: error)
        span.setStatus(SpanStatus(code: .error))
    }

    /// The attributes every span of a message carries: system, destination, operation, routing key, ids and size.
    static func setMessageAttributes(
        on span: any Span, destination: String, operation: String, type: String, routingKey: String,
        properties: AMQPProperties, bodySize: Int, endpoint: AMQPConfiguration.Endpoint
    ) {
        span.updateAttributes { attributes in
            attributes[system] = systemValue
            attributes[destinationName] = destination
            attributes[operationName] = operation
            attributes[operationType] = type
            if !routingKey.isEmpty { attributes[Self.routingKey] = routingKey }
            if let id = properties.messageID { attributes[messageID] = id }
            if let correlation = properties.correlationID { attributes[conversationID] = correlation }
            attributes[Self.bodySize] = bodySize
            attributes[serverAddress] = endpoint.host
            attributes[serverPort] = endpoint.port
        }
    }
}

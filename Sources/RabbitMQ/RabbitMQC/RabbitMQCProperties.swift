internal import CRabbitMQ
import Foundation

extension RabbitMQCEncoder {
    /// Builds `amqp_basic_properties_t`, setting the `_flags` bit of every property that is not `nil` and no other.
    ///
    /// - Throws: ``AMQPError/Code-swift.struct/invalidArgument`` naming the property when a text property is longer
    ///   than 255 UTF-8 bytes or the timestamp is before 1970, and naming the key when a header key is invalid (see
    ///   ``table(_:describedAs:)``). Checking here matters: rabbitmq-c finds an oversized property only after the
    ///   `basic.publish` frame went out, which breaks the connection.
    func properties(_ properties: AMQPProperties) throws(AMQPError) -> amqp_basic_properties_t {
        var encoded = amqp_basic_properties_t()
        var flags: amqp_flags_t = 0

        func shortString(
            _ value: String?, _ field: WritableKeyPath<amqp_basic_properties_t, amqp_bytes_t>, _ flag: Int32,
            _ swiftName: String, _ amqpName: String
        ) throws(AMQPError) {
            guard let value else { return }
            encoded[keyPath: field] = try self.shortString(
                value, describedAs: "property \(swiftName) (AMQP \(amqpName))")
            flags |= amqp_flags_t(flag)
        }

        try shortString(
            properties.contentType, \.content_type, AMQP_BASIC_CONTENT_TYPE_FLAG, "contentType", "content-type")
        try shortString(
            properties.contentEncoding, \.content_encoding, AMQP_BASIC_CONTENT_ENCODING_FLAG, "contentEncoding",
            "content-encoding")
        if let headers = properties.headers {
            encoded.headers = try table(headers, describedAs: "headers")
            flags |= amqp_flags_t(AMQP_BASIC_HEADERS_FLAG)
        }
        if let deliveryMode = properties.deliveryMode {
            encoded.delivery_mode = deliveryMode.rawValue
            flags |= amqp_flags_t(AMQP_BASIC_DELIVERY_MODE_FLAG)
        }
        if let priority = properties.priority {
            encoded.priority = priority
            flags |= amqp_flags_t(AMQP_BASIC_PRIORITY_FLAG)
        }
        try shortString(
            properties.correlationID, \.correlation_id, AMQP_BASIC_CORRELATION_ID_FLAG, "correlationID",
            "correlation-id")
        try shortString(properties.replyTo, \.reply_to, AMQP_BASIC_REPLY_TO_FLAG, "replyTo", "reply-to")
        try shortString(properties.expiration, \.expiration, AMQP_BASIC_EXPIRATION_FLAG, "expiration", "expiration")
        try shortString(properties.messageID, \.message_id, AMQP_BASIC_MESSAGE_ID_FLAG, "messageID", "message-id")
        if let timestamp = properties.timestamp {
            encoded.timestamp = try Self.timestamp(timestamp, describedAs: "property timestamp (AMQP timestamp)")
            flags |= amqp_flags_t(AMQP_BASIC_TIMESTAMP_FLAG)
        }
        try shortString(properties.type, \.type, AMQP_BASIC_TYPE_FLAG, "type", "type")
        try shortString(properties.userID, \.user_id, AMQP_BASIC_USER_ID_FLAG, "userID", "user-id")
        try shortString(properties.appID, \.app_id, AMQP_BASIC_APP_ID_FLAG, "appID", "app-id")

        encoded._flags = flags
        return encoded
    }
}

extension AMQPProperties {
    /// Copies the properties whose `_flags` bit is set; the other fields of the C structure are not read, since
    /// rabbitmq-c leaves them uninitialised when it decodes a content header.
    ///
    /// Text that is not valid UTF-8 is repaired with U+FFFD; a delivery mode other than 1 or 2 reads as `nil`.
    init(decoding properties: amqp_basic_properties_t) {
        let flags = properties._flags
        // Most messages carry no properties at all.
        guard flags != 0 else {
            self.init()
            return
        }
        func isSet(_ flag: Int32) -> Bool {
            flags & amqp_flags_t(flag) != 0
        }
        func text(_ flag: Int32, _ bytes: amqp_bytes_t) -> String? {
            isSet(flag) ? String(copyingRabbitMQC: bytes) : nil
        }
        self.init(
            contentType: text(AMQP_BASIC_CONTENT_TYPE_FLAG, properties.content_type),
            contentEncoding: text(AMQP_BASIC_CONTENT_ENCODING_FLAG, properties.content_encoding),
            headers: isSet(AMQP_BASIC_HEADERS_FLAG) ? AMQPTable(decoding: properties.headers) : nil,
            deliveryMode: isSet(AMQP_BASIC_DELIVERY_MODE_FLAG)
                ? AMQPDeliveryMode(rawValue: properties.delivery_mode) : nil,
            priority: isSet(AMQP_BASIC_PRIORITY_FLAG) ? properties.priority : nil,
            correlationID: text(AMQP_BASIC_CORRELATION_ID_FLAG, properties.correlation_id),
            replyTo: text(AMQP_BASIC_REPLY_TO_FLAG, properties.reply_to),
            expiration: text(AMQP_BASIC_EXPIRATION_FLAG, properties.expiration),
            messageID: text(AMQP_BASIC_MESSAGE_ID_FLAG, properties.message_id),
            timestamp: isSet(AMQP_BASIC_TIMESTAMP_FLAG)
                ? Date(timeIntervalSince1970: TimeInterval(properties.timestamp)) : nil,
            type: text(AMQP_BASIC_TYPE_FLAG, properties.type),
            userID: text(AMQP_BASIC_USER_ID_FLAG, properties.user_id),
            appID: text(AMQP_BASIC_APP_ID_FLAG, properties.app_id)
        )
    }
}

/// Test hook: the `_flags` word the encoder builds for some properties.
func rabbitMQCPropertyFlags(of properties: AMQPProperties) throws(AMQPError) -> UInt32 {
    try withRabbitMQCPool { (pool) throws(AMQPError) -> UInt32 in
        try RabbitMQCEncoder(pool: pool).properties(properties)._flags
    }
}

/// Test hook: the bytes rabbitmq-c's `amqp_encode_properties` writes for properties built by ``RabbitMQCEncoder``
/// (the flags word, then the fields that are set), as in a content header frame.
func rabbitMQCWireFormat(of properties: AMQPProperties) throws(AMQPError) -> [UInt8] {
    try withRabbitMQCPool { (pool) throws(AMQPError) -> [UInt8] in
        var encoded = try RabbitMQCEncoder(pool: pool).properties(properties)
        return try rabbitMQCSerialise(
            describedAs: "message properties",
            // A full buffer shows up as BAD_AMQP_DATA for short strings and as TABLE_TOO_BIG for the headers.
            growingOn: [AMQP_STATUS_BAD_AMQP_DATA.rawValue, AMQP_STATUS_TABLE_TOO_BIG.rawValue]
        ) { buffer in
            amqp_encode_properties(UInt16(AMQP_BASIC_CLASS), &encoded, buffer)
        }
    }
}

/// Test hook: reads serialised `basic` properties with rabbitmq-c's `amqp_decode_properties` and copies them.
///
/// - Throws: ``AMQPError/Code-swift.struct/decodingFailed`` when rabbitmq-c refuses the bytes.
func rabbitMQCProperties(fromWireFormat bytes: [UInt8]) throws(AMQPError) -> AMQPProperties {
    var bytes = bytes
    return try withRabbitMQCPool { (pool) throws(AMQPError) -> AMQPProperties in
        // The decoded structure points into `bytes` instead of copying, so it is copied out inside this scope.
        let outcome = bytes.withUnsafeMutableBytes { raw -> (status: Int32, properties: AMQPProperties?) in
            var decoded: UnsafeMutableRawPointer?
            let status = amqp_decode_properties(
                UInt16(AMQP_BASIC_CLASS), pool, amqp_bytes_t(len: raw.count, bytes: raw.baseAddress), &decoded)
            guard status == AMQP_STATUS_OK.rawValue, let decoded else { return (status, nil) }
            let structure = decoded.assumingMemoryBound(to: amqp_basic_properties_t.self)
            return (status, AMQPProperties(decoding: structure.pointee))
        }
        guard let properties = outcome.properties else {
            throw AMQPError(
                .decodingFailed, "rabbitmq-c could not read message properties", libraryStatus: outcome.status,
                libraryStatusText: String(cString: amqp_error_string2(outcome.status)))
        }
        return properties
    }
}

/// Test hook: sends properties through the path of a real content header (``RabbitMQCEncoder``, then
/// `amqp_encode_properties`) and reads them back with `amqp_decode_properties`.
func roundTripThroughWireFormat(_ properties: AMQPProperties) throws(AMQPError) -> AMQPProperties {
    try rabbitMQCProperties(fromWireFormat: rabbitMQCWireFormat(of: properties))
}

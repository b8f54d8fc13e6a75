internal import CRabbitMQ

extension AMQPProperties {
    /// Checks what rabbitmq-c would get wrong only after part of a frame is out (header keys over 128 bytes, short
    /// strings over 255 bytes), so that a bad publish fails in the caller instead of poisoning the connection.
    ///
    /// Properties without headers and with short strings, the common case, cost a few comparisons.
    func validate() throws(AMQPError) {
        let strings = [contentType, contentEncoding, correlationID, replyTo, expiration, messageID, type, userID, appID]
        let fits = strings.allSatisfy { ($0?.utf8.count ?? 0) <= RabbitMQCEncoder.maximumShortStringLength }
        guard headers != nil || !fits else { return }
        try withRabbitMQCPool { (pool) throws(AMQPError) in
            _ = try RabbitMQCEncoder(pool: pool).properties(self)
        }
    }
}

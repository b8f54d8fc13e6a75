internal import CRabbitMQ

extension AMQPProperties {
    /// Checks what rabbitmq-c would get wrong only after part of a frame is out (header keys over 128 bytes, short
    /// strings over 255 bytes), so that a bad publish fails in the caller instead of poisoning the connection.
    ///
    /// Properties without headers and with short strings, the common case, cost a few comparisons.
    func validate() throws(AMQPError) {
        // Checked one by one, without building an array: this runs on every publish.
        func fits(_ value: String?) -> Bool { (value?.utf8.count ?? 0) <= RabbitMQCEncoder.maximumShortStringLength }
        let allFit =
            fits(contentType) && fits(contentEncoding) && fits(correlationID) && fits(replyTo) && fits(expiration)
            && fits(messageID) && fits(type) && fits(userID) && fits(appID)
        guard headers != nil || !allFit else { return }
        try withRabbitMQCPool { (pool) throws(AMQPError) in
            _ = try RabbitMQCEncoder(pool: pool).properties(self)
        }
    }
}

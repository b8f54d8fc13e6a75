extension AMQPError {
    /// The error for work given to a connection while it recovers from `cause`: retriable (`connectionLost`), and
    /// carrying the cause's broker and library details.
    static func recovering(cause: AMQPError) -> AMQPError {
        retriable("the connection is recovering from a failure (\(cause.message)); try again", cause: cause)
    }

    /// The error for a request, confirm or fetch that was in flight when the connection failed with `cause`.
    static func interrupted(cause: AMQPError) -> AMQPError {
        retriable("the connection failed before the broker answered (\(cause.message))", cause: cause)
    }

    private static func retriable(_ message: String, cause: AMQPError) -> AMQPError {
        AMQPError(
            .connectionLost, message, replyCode: cause.replyCode, replyText: cause.replyText,
            libraryStatus: cause.libraryStatus, libraryStatusText: cause.libraryStatusText)
    }
}

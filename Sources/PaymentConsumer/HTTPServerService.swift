import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle

/// The HTTP/1.1 server of ``HTTPEndpoints``, on SwiftNIO, run as a service of the consumer's group.
///
/// It listens until a graceful shutdown or a cancellation, then closes the listener and the connections still open
/// (kept alive and idle, in practice: every answer is computed at once). In the group it comes before the payment
/// service, which the group shuts down first: while the service drains, the server is still there to answer 503 to
/// the readiness probe.
struct HTTPServerService: Service {
    typealias Connection = NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>

    let host: String
    /// 0 for a free port, chosen by the system; the log line "http endpoints listening" names it.
    let port: Int
    let endpoints: HTTPEndpoints
    let logger: Logger

    func run() async throws {
        let server = try await listen()
        try await withTaskCancellationOrGracefulShutdownHandler {
            try await server.executeThenClose { connections in
                try await withThrowingDiscardingTaskGroup { group in
                    for try await connection in connections {
                        group.addTask { await serve(connection) }
                    }
                    // The listener is closed. Idle keep-alive connections would hold the group open until their
                    // clients hang up, which a scraper may never do: end them.
                    group.cancelAll()
                }
            }
        } onCancelOrGracefulShutdown: {
            // Ends the loop over new connections above.
            server.channel.close(promise: nil)
        }
        logger.info("http endpoints closed")
    }

    /// Binds the listening socket, and logs the port it got.
    private func listen() async throws -> NIOAsyncChannel<Connection, Never> {
        let server: NIOAsyncChannel<Connection, Never>
        do {
            server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .bind(host: host, port: port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        // Pipelining assistance keeps one request in hand at a time; error handling answers 400 to
                        // what does not parse as HTTP/1.
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                        return try Connection(wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            logger.error(
                "http endpoints could not listen",
                metadata: ["host": "\(host)", "port": "\(port)", "error": "\(error)"])
            throw error
        }
        logger.info(
            "http endpoints listening",
            metadata: [
                "host": "\(host)", "port": "\(server.channel.localAddress?.port ?? port)",
                "paths": "/metrics, /health/live, /health/ready",
            ])
        return server
    }

    /// Answers the requests of one connection in turn, until the client closes it, asks for it to be closed, or
    /// the server stops (the task is cancelled). A failure ends that connection only.
    private func serve(_ connection: Connection) async {
        do {
            try await connection.executeThenClose { requests, responses in
                var head: HTTPRequestHead?
                for try await part in requests {
                    switch part {
                    case .head(let request):
                        head = request
                    case .body:
                        // No endpoint takes a body: it is read and dropped, so that the next request can be read.
                        continue
                    case .end:
                        guard let request = head else { continue }
                        head = nil
                        let keepAlive = request.isKeepAlive
                        let response = endpoints.respond(to: request.method, uri: request.uri)
                        try await responses.write(contentsOf: parts(of: response, to: request, keepAlive: keepAlive))
                        if !keepAlive {
                            // Closing the output side first waits for the response to be written; the full close
                            // that follows would drop whatever the socket had not taken yet.
                            try await connection.channel.close(mode: .output)
                            return
                        }
                    }
                }
            }
        } catch {
            logger.debug("http connection ended", metadata: ["error": "\(error)"])
        }
    }

    /// The response as HTTP parts, in the request's HTTP version. A HEAD request gets GET's headers, its
    /// Content-Length included, without the body.
    private func parts(
        of response: HTTPEndpoints.Response, to request: HTTPRequestHead, keepAlive: Bool
    ) -> [HTTPServerResponsePart] {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: response.contentType)
        headers.add(name: "Content-Length", value: "\(response.body.count)")
        if let allow = response.allow { headers.add(name: "Allow", value: allow) }
        // Said only where it differs from the version's default: HTTP/1.1 keeps connections, HTTP/1.0 closes them.
        let closesByDefault = request.version == .http1_0
        if !keepAlive && !closesByDefault {
            headers.add(name: "Connection", value: "close")
        } else if keepAlive && closesByDefault {
            headers.add(name: "Connection", value: "keep-alive")
        }
        var parts: [HTTPServerResponsePart] = [
            .head(HTTPResponseHead(version: request.version, status: response.status, headers: headers))
        ]
        if request.method != .HEAD { parts.append(.body(.byteBuffer(ByteBuffer(bytes: response.body)))) }
        parts.append(.end(nil))
        return parts
    }
}

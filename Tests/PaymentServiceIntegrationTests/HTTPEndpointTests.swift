import Foundation
import PaymentService
import RabbitMQ
import RabbitMQTestSupport
import XCTest

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// `consumer --http-port`: the health probes follow the consumer's start-up and its connections' recovery, the
/// Prometheus counters move with the payments, and the server speaks HTTP/1.1 properly. Everything is on 127.0.0.1.
final class HTTPEndpointTests: PaymentScenarioTestCase {
    private static let metricsContentType = "text/plain; version=0.0.4; charset=utf-8"

    func testReadinessFollowsStartUpAndConnectionRecovery() async throws {
        let proxy = try LoopbackProxy(targetPort: try AMQPConfiguration(url: PaymentTestBroker.url).port)
        defer { proxy.close() }
        // Nothing gets through the proxy yet: the consumer is held at connecting, certainly not ready.
        proxy.pause()
        let consumer = try startHTTPConsumer(url: "amqp://guest:guest@127.0.0.1:\(proxy.port)/")
        let http = LoopbackHTTP(port: try await listeningPort(of: consumer))

        let live = try http.get("/health/live")
        XCTAssertEqual(live.status, 200, live.body)
        let starting = try http.get("/health/ready")
        XCTAssertEqual(starting.status, 503, starting.body)
        XCTAssertEqual(starting.headers["content-type"], "application/json")
        XCTAssertTrue(starting.body.contains("starting"), starting.body)
        XCTAssertEqual(consumer.logLines(containing: "payment consumer running"), 0, "ready before its time")

        proxy.resume()
        try await consumer.waitForLog("payment consumer running", seconds: 20)
        // Not eventually: the service is ready before it logs the line.
        let running = try http.get("/health/ready")
        XCTAssertEqual(running.status, 200, running.body)
        XCTAssertTrue(running.body.contains("consuming"), running.body)

        // Both connections cut, and their new attempts held silent: the consumer recovers until the proxy resumes.
        proxy.pause()
        proxy.dropConnections()
        let recovering = try await eventually(10, "the readiness probe to answer 503 during recovery") {
            () -> HTTPReply? in
            let reply = try http.get("/health/ready")
            return reply.status == 503 ? reply : nil
        }
        XCTAssertTrue(recovering.body.contains("is recovering"), recovering.body)
        XCTAssertEqual(try http.get("/health/live").status, 200, "a recovering consumer is alive")
        try await Task.sleep(for: .milliseconds(500))
        XCTAssertEqual(try http.get("/health/ready").status, 503, "ready again before the proxy resumed")

        proxy.resume()
        try await eventually(30, "the readiness probe to answer 200 after recovery", every: .milliseconds(100)) {
            () -> Void? in
            try http.get("/health/ready").status == 200 ? () : nil
        }
        // Both connections, in the service's own lines (the library logs "AMQP connection recovered" too).
        try await consumer.waitForLog("connection recovered", "connection=payment-consumer", count: 2, seconds: 5)
        // Stopped here, while the proxy still forwards: without its broker the consumer would not stop cleanly.
        await stop(consumer)
    }

    func testMetricsCountPaymentsOverProperHTTP() async throws {
        let consumer = try startHTTPConsumer(url: PaymentTestBroker.url)
        let http = LoopbackHTTP(port: try await listeningPort(of: consumer))
        try await consumer.waitForLog("payment consumer running", seconds: 20)

        let before = try http.get("/metrics")
        XCTAssertEqual(before.status, 200)
        XCTAssertEqual(before.headers["content-type"], Self.metricsContentType)
        XCTAssertEqual(Self.sample("payment_service_payments_processed_total", in: before.body), 0, before.body)

        try await register("http-client", with: consumer)
        try await produce(["payment", "http-client", "--payment-id", "http-payment"], printing: ["http-payment"])
        let after = try await eventually(15, "the processed counter to reach 1") { () -> String? in
            let body = try http.get("/metrics").body
            return Self.sample("payment_service_payments_processed_total", in: body) == 1 ? body : nil
        }
        XCTAssertEqual(Self.sample("payment_service_messages_received_total", in: after), 2, after)
        XCTAssertEqual(Self.sample("payment_service_clients_registered_total", in: after), 1, after)
        // The library's own metrics, which the consumer turns on with --http-port, are in the same registry.
        let consumed = Self.sample(
            "messaging_client_consumed_messages", labelled: ":\(topology.paymentsQueue)\"", in: after)
        XCTAssertEqual(consumed, 1, after)

        // Unknown paths, other methods.
        XCTAssertEqual(try http.get("/nowhere").status, 404)
        let post = try http.get("/metrics", method: "POST")
        XCTAssertEqual(post.status, 405)
        XCTAssertEqual(post.headers["allow"], "GET, HEAD")

        // Keep-alive: three requests on one connection, the last of which asks for it to be closed.
        let connection = try LoopbackHTTPConnection(port: http.port)
        try connection.send("GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        let first = try connection.readReply()
        XCTAssertEqual(first.status, 200)
        XCTAssertNil(first.headers["connection"], "HTTP/1.1 keeps the connection without saying so")
        // HEAD: GET's headers without the body, or the next reply would not parse.
        try connection.send("HEAD /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        let head = try connection.readReply(toHead: true)
        XCTAssertEqual(head.status, 200)
        XCTAssertEqual(head.headers["content-type"], Self.metricsContentType)
        XCTAssertGreaterThan(Int(head.headers["content-length"] ?? "") ?? 0, 0)
        try connection.send("GET /health/ready HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        let last = try connection.readReply()
        XCTAssertEqual(last.status, 200, last.body)
        XCTAssertEqual(last.headers["connection"], "close")
        XCTAssertTrue(try connection.isClosedByServer(), "the server kept the connection after Connection: close")
    }

    // MARK: - Helpers

    /// Starts a consumer with its HTTP endpoints on a free loopback port, without waiting for it.
    private func startHTTPConsumer(url: String) throws -> RunningProgram {
        try startConsumer(exactly: [
            "--url", url, "--name-prefix", prefix, "--retry-step", "200ms", "--summary-interval", "0s",
            "--hold-time", "0s", "--http-port", "0", "--http-host", "127.0.0.1",
        ])
    }

    /// The port of the consumer's "http endpoints listening" line.
    private func listeningPort(of consumer: RunningProgram) async throws -> Int {
        try await consumer.waitForLog("http endpoints listening", seconds: 15)
        let line = try XCTUnwrap(consumer.stderrLines.first { $0.contains("http endpoints listening") })
        let digits = line.components(separatedBy: " port=").dropFirst().first?.prefix { $0.isNumber }
        return try XCTUnwrap(digits.flatMap { Int($0) }, "no port in: \(line)")
    }

    /// The value of a sample in Prometheus text: `name 3` without `labelled`, else the first `name{…} 3` whose
    /// labels contain `labelled`.
    private static func sample(_ name: String, labelled: String? = nil, in text: String) -> Double? {
        text.split(whereSeparator: \.isNewline).lazy
            .compactMap { line -> Double? in
                guard let space = line.lastIndex(of: " ") else { return nil }
                let series = line[..<space]
                let matches =
                    if let labelled {
                        series.hasPrefix("\(name){") && series.contains(labelled)
                    } else {
                        series == name
                    }
                return matches ? Double(line[line.index(after: space)...]) : nil
            }
            .first
    }
}

/// One HTTP response, read off the socket.
struct HTTPReply {
    let status: Int
    /// Header names lower-cased.
    let headers: [String: String]
    let body: String
}

/// Requests to the consumer's endpoints, each on a connection of its own that asks to be closed.
struct LoopbackHTTP {
    let port: Int

    func get(_ path: String, method: String = "GET") throws -> HTTPReply {
        let connection = try LoopbackHTTPConnection(port: port)
        try connection.send("\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        return try connection.readReply()
    }
}

/// A small HTTP/1.1 client on a blocking socket to 127.0.0.1, so that a test controls what goes on the wire (a
/// system HTTP client may pool connections or follow proxy settings). Reads time out after 5 s.
final class LoopbackHTTPConnection {
    private let descriptor: Int32
    private var received: [UInt8] = []

    init(port: Int) throws {
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw HTTPClientError("socket: errno \(errno)") }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else {
            close(descriptor)
            throw HTTPClientError("connect to 127.0.0.1:\(port): errno \(errno)")
        }
    }

    deinit { close(descriptor) }

    func send(_ request: String) throws {
        let bytes = Array(request.utf8)
        var sent = 0
        while sent < bytes.count {
            let result = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress! + sent, bytes.count - sent) }
            guard result > 0 else { throw HTTPClientError("write: errno \(errno)") }
            sent += result
        }
    }

    /// Reads one response; `toHead` for the answer to a HEAD request, which has a Content-Length but no body.
    func readReply(toHead: Bool = false) throws -> HTTPReply {
        let separator: [UInt8] = Array("\r\n\r\n".utf8)
        var headEnd: Int?
        while headEnd == nil {
            headEnd = received.indices.dropLast(3).first { Array(received[$0..<$0 + 4]) == separator }
            if headEnd == nil { try fill() }
        }
        let head = String(decoding: received[..<headEnd!], as: UTF8.self).components(separatedBy: "\r\n")
        received.removeFirst(headEnd! + 4)
        let statusFields = head[0].split(separator: " ")
        guard statusFields.count >= 2, statusFields[0].hasPrefix("HTTP/1."), let status = Int(statusFields[1]) else {
            throw HTTPClientError("not an HTTP status line: \(head[0])")
        }
        var headers: [String: String] = [:]
        for line in head.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { throw HTTPClientError("bad header: \(line)") }
            let value = line[line.index(after: colon)...]
            headers[line[..<colon].lowercased()] = value.trimmingCharacters(in: .whitespaces)
        }
        guard let length = headers["content-length"].flatMap({ Int($0) }) else {
            throw HTTPClientError("no Content-Length in \(head)")
        }
        let bodyLength = toHead ? 0 : length
        while received.count < bodyLength { try fill() }
        let body = String(decoding: received[..<bodyLength], as: UTF8.self)
        received.removeFirst(bodyLength)
        return HTTPReply(status: status, headers: headers, body: body)
    }

    /// Whether the server closed the connection: the next read finds its end, with nothing more sent.
    func isClosedByServer() throws -> Bool {
        guard received.isEmpty else { return false }
        var byte: UInt8 = 0
        let count = read(descriptor, &byte, 1)
        if count < 0 { throw HTTPClientError("read: errno \(errno) (timed out?)") }
        return count == 0
    }

    private func fill() throws {
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        let count = read(descriptor, &buffer, buffer.count)
        guard count > 0 else {
            throw HTTPClientError(count == 0 ? "the server closed the connection mid-response" : "read: errno \(errno)")
        }
        received += buffer[..<count]
    }
}

/// The test's HTTP client failed.
struct HTTPClientError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

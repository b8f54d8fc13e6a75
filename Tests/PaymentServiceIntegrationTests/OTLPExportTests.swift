import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import PaymentService
import Synchronization
import XCTest

/// `--otlp-endpoint`: the built `consumer` and `producer` export their spans over OTLP/HTTP with protobuf to a
/// collector, here a receiver in the test on 127.0.0.1 that decodes what they post, and a payment is one trace across
/// the two processes. A collector that is down costs the payments nothing; an endpoint that is no URL is a usage error.
final class OTLPExportTests: PaymentScenarioTestCase {
    func testAPaymentIsOneTraceAtTheCollectorFromTheProducersPublishToTheConsumersProcessing() async throws {
        let receiver = try await OTLPReceiver.start()
        addTeardownBlock { await receiver.close() }
        let endpoint = "http://127.0.0.1:\(receiver.port)"
        let consumer = try await startConsumer(["--otlp-endpoint", endpoint])
        XCTAssertEqual(
            consumer.logLines(containing: "exporting traces", "\(endpoint)/v1/traces"), 1, consumer.stderrTail)

        // The registration through the environment variables, the payment through the flag.
        let clientID = "otlp-client-\(UUID().uuidString.prefix(8))"
        let registration = try await runProducer(
            ["client", clientID],
            environment: ["OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_SERVICE_NAME": "payment-tests-registrar"])
        XCTAssertEqual(registration.status, 0, registration.stderrTail)
        try await consumer.waitForLog("client registered", "client.id=\(clientID) ")
        let paymentID = "otlp-pay-\(UUID().uuidString.prefix(8))"
        try await produce(
            ["payment", clientID, "--payment-id", paymentID, "--otlp-endpoint", endpoint], printing: [paymentID])
        try await consumer.waitForLog("payment processed", "payment.id=\(paymentID) ")
        // The producer exported before it exited; the consumer exports what is left when it stops.
        await stop(consumer)

        let requests = receiver.requests
        XCTAssertGreaterThanOrEqual(requests.count, 3, "one export per producer run, at least one of the consumer")
        for request in requests {
            XCTAssertEqual(request.method, "POST")
            XCTAssertEqual(request.uri, "/v1/traces")
            XCTAssertEqual(request.contentType, "application/x-protobuf")
        }
        let spans = try requests.flatMap { try ExportedSpan.decode(exportTraceServiceRequest: $0.body) }
        XCTAssertEqual(
            Set(spans.map(\.serviceName)), ["payment-tests-registrar", "payment-producer", "payment-consumer"])

        let publishName = "publish amq.default:\(topology.paymentsQueue)"
        let publish = try XCTUnwrap(
            spans.first { $0.name == publishName && $0.attributes["messaging.message.id"] == paymentID },
            "no span \(publishName) of \(paymentID) among \(spans.map(\.name))")
        XCTAssertEqual(publish.serviceName, "payment-producer")
        XCTAssertEqual(publish.kind, ExportedSpan.producerKind)
        XCTAssertEqual(publish.traceID.count, 32)
        let process = try XCTUnwrap(
            spans.first { $0.name.hasPrefix("process ") && $0.attributes["payment.id"] == paymentID },
            "no process span of \(paymentID) among \(spans.map(\.name))")
        XCTAssertEqual(process.serviceName, "payment-consumer")
        XCTAssertEqual(process.kind, ExportedSpan.consumerKind)
        XCTAssertEqual(process.traceID, publish.traceID, "the payment is one trace across the two processes")
        XCTAssertEqual(process.parentSpanID, publish.spanID, "the processing is parented on the publish")
        // The registration is a trace of its own.
        let register = try XCTUnwrap(spans.first { $0.name == "publish amq.default:\(topology.clientsQueue)" })
        XCTAssertEqual(register.serviceName, "payment-tests-registrar")
        XCTAssertNotEqual(register.traceID, publish.traceID)
    }

    func testACollectorThatIsDownCostsThePaymentsNothing() async throws {
        // A port that was just free and is closed again: every export is refused.
        let closed = try await OTLPReceiver.start()
        let endpoint = "http://127.0.0.1:\(closed.port)"
        await closed.close()
        let consumer = try await startConsumer(["--otlp-endpoint", endpoint])
        let clientID = "otlp-down-\(UUID().uuidString.prefix(8))"
        try await register(clientID, with: consumer)

        let started = ContinuousClock.now
        let paymentID = "otlp-down-pay-\(UUID().uuidString.prefix(8))"
        let result = try await runProducer(
            ["payment", clientID, "--payment-id", paymentID, "--otlp-endpoint", endpoint])
        let took = ContinuousClock.now - started
        XCTAssertEqual(result.status, 0, result.stderrTail)
        XCTAssertEqual(result.stdoutLines, [paymentID])
        XCTAssertTrue(
            result.stderr.contains("Failed to export batch"), "the lost export is logged:\n\(result.stderrTail)")
        // The export is given 2 s (and 1 s to end once cancelled): the HTTP client retries a refused connection.
        XCTAssertLessThan(took, .seconds(4), "the producer's exit waits for a collector that is down")
        try await consumer.waitForLog("payment processed", "payment.id=\(paymentID) ", seconds: 5)
        let stopping = ContinuousClock.now
        let log = await stop(consumer)
        XCTAssertTrue(log.contains("Failed to export batch"), "the consumer's lost export is logged")
        // Its last export is given 5 s.
        XCTAssertLessThan(ContinuousClock.now - stopping, .seconds(8), "the consumer's stop waits for the collector")
        try await assertNothingLeft()
    }

    func testAnEndpointThatIsNoCollectorURLIsAUsageError() async throws {
        let producer = try await RunningProgram.run(
            "producer", ["payment", "client-1", "--otlp-endpoint", "otel-collector:4318"], seconds: 10)
        XCTAssertEqual(producer.status, 64, producer.stderrTail)
        XCTAssertTrue(
            producer.stderr.contains("invalid --otlp-endpoint: 'otel-collector:4318' has no http://"), producer.stderr)
        let consumer = try await RunningProgram.run("consumer", ["--otlp-endpoint", "http://"], seconds: 10)
        XCTAssertEqual(consumer.status, 64, consumer.stderrTail)
        XCTAssertTrue(consumer.stderr.contains("invalid --otlp-endpoint: 'http://' has no host"), consumer.stderr)
        let fromEnvironment = try await runProducer(
            ["client", "client-1"], environment: ["OTEL_EXPORTER_OTLP_ENDPOINT": "ftp://collector"])
        XCTAssertEqual(fromEnvironment.status, 64, fromEnvironment.stderrTail)
        XCTAssertTrue(fromEnvironment.stderr.contains("invalid OTEL_EXPORTER_OTLP_ENDPOINT: "), fromEnvironment.stderr)
    }

    /// Runs `producer` on the test's prefix with `environment` added to the test process's own, which
    /// ``RunningProgram`` always passes on unchanged.
    private func runProducer(_ arguments: [String], environment: [String: String]) async throws -> ProgramResult {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("otlp-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let files = [directory.appendingPathComponent("stdout"), directory.appendingPathComponent("stderr")]
        for file in files where !FileManager.default.createFile(atPath: file.path, contents: nil) {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: file.path])
        }
        let process = Process()
        process.executableURL = try PaymentPrograms.executable("producer")
        process.arguments = arguments + ["--url", PaymentTestBroker.url, "--name-prefix", prefix]
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let stdout = try FileHandle(forWritingTo: files[0])
        let stderr = try FileHandle(forWritingTo: files[1])
        defer {
            // The child has its own copies once it runs.
            try? stdout.close()
            try? stderr.close()
        }
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        do {
            try await eventually(30, "the producer to exit") { process.isRunning ? nil : () }
        } catch {
            process.terminate()
            throw error
        }
        let output = files.map { String(decoding: (try? Data(contentsOf: $0)) ?? Data(), as: UTF8.self) }
        return ProgramResult(
            status: process.terminationStatus, exited: process.terminationReason == .exit, stdout: output[0],
            stderr: output[1])
    }
}

/// A span as an OTLP/HTTP export carries it, decoded from the protobuf wire format by hand: swift-otel keeps its
/// generated message types to its own package.
struct ExportedSpan {
    static let producerKind: UInt64 = 4
    static let consumerKind: UInt64 = 5

    let serviceName: String?
    let traceID: String
    let spanID: String
    let parentSpanID: String
    let name: String
    let kind: UInt64
    /// The attributes with a string or integer value, as text.
    let attributes: [String: String]

    /// The spans of an `ExportTraceServiceRequest`: resource_spans = 1 { resource = 1 { attributes = 1 },
    /// scope_spans = 2 { spans = 2 } }.
    static func decode(exportTraceServiceRequest body: [UInt8]) throws -> [ExportedSpan] {
        var spans: [ExportedSpan] = []
        for resourceSpans in try ProtoFields(body).messages(1) {
            let fields = ProtoFields(resourceSpans)
            let resource = try fields.messages(1).first.map { try attributes(of: ProtoFields($0).messages(1)) }
            for scopeSpans in try fields.messages(2) {
                for span in try ProtoFields(scopeSpans).messages(2) {
                    spans.append(try decode(span: span, serviceName: resource?["service.name"]))
                }
            }
        }
        return spans
    }

    /// Span: trace_id = 1, span_id = 2, parent_span_id = 4, name = 5, kind = 6, attributes = 9.
    private static func decode(span: ArraySlice<UInt8>, serviceName: String?) throws -> ExportedSpan {
        let fields = ProtoFields(span)
        let hex = { (bytes: ArraySlice<UInt8>?) in (bytes ?? []).map { String(format: "%02x", $0) }.joined() }
        return ExportedSpan(
            serviceName: serviceName, traceID: hex(try fields.messages(1).first),
            spanID: hex(try fields.messages(2).first), parentSpanID: hex(try fields.messages(4).first),
            name: String(decoding: try fields.messages(5).first ?? [], as: UTF8.self),
            kind: try fields.varints(6).first ?? 0, attributes: try attributes(of: fields.messages(9)))
    }

    /// KeyValue: key = 1, value = 2 → AnyValue: string_value = 1, int_value = 3.
    private static func attributes(of keyValues: [ArraySlice<UInt8>]) throws -> [String: String] {
        var attributes: [String: String] = [:]
        for keyValue in keyValues {
            let fields = ProtoFields(keyValue)
            guard let key = try fields.messages(1).first, let value = try fields.messages(2).first else { continue }
            let any = ProtoFields(value)
            if let string = try any.messages(1).first {
                attributes[String(decoding: key, as: UTF8.self)] = String(decoding: string, as: UTF8.self)
            } else if let int = try any.varints(3).first {
                attributes[String(decoding: key, as: UTF8.self)] = "\(Int64(bitPattern: int))"
            }
        }
        return attributes
    }
}

/// The fields of one protobuf message: varints (wire type 0), length-delimited values (2), and fixed 64- and
/// 32-bit values (1 and 5), which are skipped.
struct ProtoFields {
    struct Malformed: Error {}

    let bytes: ArraySlice<UInt8>

    init(_ bytes: ArraySlice<UInt8>) { self.bytes = bytes }
    init(_ bytes: [UInt8]) { self.bytes = bytes[...] }

    /// The length-delimited values of field `number` (messages, strings and bytes), in order.
    func messages(_ number: UInt64) throws -> [ArraySlice<UInt8>] {
        try all().compactMap { $0.number == number ? $0.delimited : nil }
    }

    /// The varint values of field `number`, in order.
    func varints(_ number: UInt64) throws -> [UInt64] {
        try all().compactMap { $0.number == number ? $0.varint : nil }
    }

    private func all() throws -> [(number: UInt64, varint: UInt64?, delimited: ArraySlice<UInt8>?)] {
        var fields: [(number: UInt64, varint: UInt64?, delimited: ArraySlice<UInt8>?)] = []
        var index = bytes.startIndex
        func varint() throws -> UInt64 {
            var value: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                guard index < bytes.endIndex, shift < 64 else { throw Malformed() }
                let byte = bytes[index]
                index += 1
                value |= UInt64(byte & 0x7f) << shift
                if byte & 0x80 == 0 { return value }
                shift += 7
            }
        }
        while index < bytes.endIndex {
            let tag = try varint()
            switch tag & 7 {
            case 0: fields.append((tag >> 3, try varint(), nil))
            case 1, 5:
                index += tag & 7 == 1 ? 8 : 4
                guard index <= bytes.endIndex else { throw Malformed() }
            case 2:
                let length = Int(try varint())
                guard length <= bytes.endIndex - index else { throw Malformed() }
                fields.append((tag >> 3, nil, bytes[index..<index + length]))
                index += length
            default: throw Malformed()
            }
        }
        return fields
    }
}

/// An OTLP/HTTP collector on 127.0.0.1 that keeps every request it gets and answers each with an empty
/// `ExportTraceServiceResponse` (200, protobuf): full success.
final class OTLPReceiver: Sendable {
    typealias Connection = NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>

    struct Request: Sendable {
        let method: String
        let uri: String
        let contentType: String?
        let body: [UInt8]
    }

    let port: Int
    private let server: NIOAsyncChannel<Connection, Never>
    private let received: Inbox
    private let serving: Task<Void, Never>

    /// Where requests are kept; a class of its own, so the serving task can hold it before the receiver exists.
    private final class Inbox: Sendable {
        let requests = Mutex<[Request]>([])
    }

    /// What has been received so far, in order.
    var requests: [Request] { received.requests.withLock { $0 } }

    private init(server: NIOAsyncChannel<Connection, Never>) {
        self.server = server
        port = server.channel.localAddress?.port ?? 0
        let inbox = Inbox()
        received = inbox
        serving = Task {
            try? await server.executeThenClose { connections in
                try await withThrowingDiscardingTaskGroup { group in
                    for try await connection in connections {
                        group.addTask { await Self.serve(connection, into: inbox) }
                    }
                    // The listener is closed: end the connections the exporters keep alive.
                    group.cancelAll()
                }
            }
        }
    }

    /// Listens on a free port of 127.0.0.1.
    static func start() async throws -> OTLPReceiver {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    return try Connection(wrappingChannelSynchronously: channel)
                }
            }
        return OTLPReceiver(server: server)
    }

    /// Stops listening, ends the connections, and waits for both; the port is closed once this returns.
    func close() async {
        try? await server.channel.close()
        await serving.value
    }

    private static func serve(_ connection: Connection, into inbox: Inbox) async {
        try? await connection.executeThenClose { requests, responses in
            var head: HTTPRequestHead?
            var body: [UInt8] = []
            for try await part in requests {
                switch part {
                case .head(let request):
                    head = request
                    body = []
                case .body(var buffer):
                    body += buffer.readBytes(length: buffer.readableBytes) ?? []
                case .end:
                    guard let request = head else { continue }
                    inbox.requests.withLock {
                        $0.append(
                            Request(
                                method: request.method.rawValue, uri: request.uri,
                                contentType: request.headers.first(name: "Content-Type"), body: body))
                    }
                    var headers = HTTPHeaders()
                    headers.add(name: "Content-Type", value: "application/x-protobuf")
                    headers.add(name: "Content-Length", value: "0")
                    let response = HTTPResponseHead(version: request.version, status: .ok, headers: headers)
                    try await responses.write(contentsOf: [.head(response), .end(nil)])
                }
            }
        }
    }
}

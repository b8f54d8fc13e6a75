import Foundation
import InMemoryTracing
import RabbitMQ
import RabbitMQTestSupport
import Tracing
import XCTest

/// Spans against the real broker, into the test process's in-memory tracer: a PRODUCER span per publish whose
/// context travels in the headers, a CONSUMER `process` span parented on it, CLIENT `settle` and `receive` spans,
/// errors with `error.type`, and nothing at all with tracing off.
final class TracingTests: XCTestCase {
    private var tracer: InMemoryTracer { TestInstruments.tracer }
    private var connection: AMQPConnection!
    private var channel: AMQPChannel!
    private var queue = ""

    override func setUp() async throws {
        _ = tracer  // bootstrapped before the connection is made, which looks the tracer up
        connection = try await TestBroker.connect()
        channel = try await connection.openChannel()
        queue = "tracing-\(UInt32.random(in: 0...999_999))"
        _ = try await channel.declareQueue(queue, exclusive: true)
    }

    override func tearDown() async throws {
        try await connection?.close()
    }

    private func spans(named name: String) -> [FinishedInMemorySpan] {
        tracer.finishedSpans.filter { $0.operationName == name }
    }

    private func onlySpan(named name: String, file: StaticString = #filePath, line: UInt = #line) throws
        -> FinishedInMemorySpan
    {
        let found = spans(named: name)
        XCTAssertEqual(
            found.count, 1, "spans named \(name): \(tracer.finishedSpans.map(\.operationName))", file: file, line: line)
        return try XCTUnwrap(found.first, file: file, line: line)
    }

    private func string(_ span: FinishedInMemorySpan, _ key: String) -> String? {
        if case .string(let value) = span.attributes[key]?.toSpanAttribute() { return value }
        return nil
    }

    private func int(_ span: FinishedInMemorySpan, _ key: String) -> Int64? {
        if case .int64(let value) = span.attributes[key]?.toSpanAttribute() { return value }
        return nil
    }

    func testAConfirmedPublishIsAProducerSpanWhoseContextTravelsInTheHeaders() async throws {
        try await channel.enablePublisherConfirms()
        let properties = AMQPProperties(correlationID: "order-7", messageID: "m-1")
        // Named after this test's queue: other suites in the process record spans into the same tracer.
        try await tracer.withSpan("checkout \(queue)") { _ in
            try await channel.publish(Data("hello".utf8), routingKey: queue, properties: properties)
        }
        let parent = try onlySpan(named: "checkout \(queue)")
        let publish = try onlySpan(named: "publish amq.default:\(queue)")
        XCTAssertEqual(publish.kind, .producer)
        XCTAssertEqual(publish.traceID, parent.traceID)
        XCTAssertEqual(publish.parentSpanID, parent.spanID)
        XCTAssertEqual(string(publish, "messaging.system"), "rabbitmq")
        XCTAssertEqual(string(publish, "messaging.destination.name"), "amq.default:\(queue)")
        XCTAssertEqual(string(publish, "messaging.operation.name"), "publish")
        XCTAssertEqual(string(publish, "messaging.operation.type"), "send")
        XCTAssertEqual(string(publish, "messaging.rabbitmq.destination.routing_key"), queue)
        XCTAssertEqual(string(publish, "messaging.message.id"), "m-1")
        XCTAssertEqual(string(publish, "messaging.message.conversation_id"), "order-7")
        XCTAssertEqual(string(publish, "server.address"), "127.0.0.1")
        XCTAssertNil(publish.status)

        let message = try await XCTUnwrapAsync(try await channel.get(queue: queue, noAck: true))
        XCTAssertEqual(message.properties.headers?[InMemoryTracer.traceIDKey], .string(publish.traceID))
        XCTAssertEqual(message.properties.headers?[InMemoryTracer.spanIDKey], .string(publish.spanID))
    }

    func testTraceHeadersTheCallerSetAreNotOverwritten() async throws {
        let properties = AMQPProperties(headers: [InMemoryTracer.traceIDKey: .string("the-callers-trace")])
        try await tracer.withSpan("caller") { _ in
            try await channel.publish(Data("x".utf8), routingKey: queue, properties: properties)
        }
        let message = try await eventuallyGet()
        XCTAssertEqual(message.properties.headers?[InMemoryTracer.traceIDKey], .string("the-callers-trace"))
    }

    func testProcessIsAConsumerSpanParentedOnThePublishAndItsAckASettleSpanInside() async throws {
        try await tracer.withSpan("producer side") { _ in
            try await channel.publish(Data("work".utf8), routingKey: queue)
        }
        let publish = try onlySpan(named: "publish amq.default:\(queue)")
        let consumer = try await channel.consume(queue: queue)
        for try await delivery in consumer {
            try await delivery.process { span in
                span.attributes["handled"] = true
                try await delivery.ack()
            }
            break
        }
        let destination = "amq.default:\(queue):\(queue)"
        let process = try onlySpan(named: "process \(destination)")
        XCTAssertEqual(process.kind, .consumer)
        XCTAssertEqual(process.traceID, publish.traceID)
        XCTAssertEqual(process.parentSpanID, publish.spanID)
        XCTAssertEqual(string(process, "messaging.operation.type"), "process")
        XCTAssertEqual(string(process, "messaging.destination.name"), destination)
        XCTAssertNotNil(int(process, "messaging.rabbitmq.message.delivery_tag"))
        let ack = try onlySpan(named: "ack \(destination)")
        XCTAssertEqual(ack.kind, .client)
        XCTAssertEqual(ack.parentSpanID, process.spanID)
        XCTAssertEqual(string(ack, "messaging.operation.type"), "settle")
        XCTAssertEqual(string(ack, "messaging.operation.name"), "ack")
    }

    func testAContextWrittenAsBytesIsExtracted() async throws {
        // As the RabbitMQ .NET client writes it.
        let properties = AMQPProperties(headers: [
            InMemoryTracer.traceIDKey: .bytes(Array("trace-from-dotnet".utf8)),
            InMemoryTracer.spanIDKey: .bytes(Array("span-from-dotnet".utf8)),
        ])
        try await channel.publish(Data("x".utf8), routingKey: queue, properties: properties)
        let delivery = try await eventuallyGet()
        try await delivery.process { _ in try await delivery.reject(requeue: false) }
        let process = try onlySpan(named: "process amq.default:\(queue):\(queue)")
        XCTAssertEqual(process.traceID, "trace-from-dotnet")
        XCTAssertEqual(process.parentSpanID, "span-from-dotnet")
        XCTAssertEqual(spans(named: "reject amq.default:\(queue):\(queue)").first?.parentSpanID, process.spanID)
    }

    func testGetIsAReceiveSpanLinkedToThePublish() async throws {
        try await channel.publish(Data("x".utf8), routingKey: queue)
        let publish = try onlySpan(named: "publish amq.default:\(queue)")
        let delivery = try await eventuallyGet()
        try await delivery.nack(requeue: false)
        let receive = try XCTUnwrap(spans(named: "receive amq.default:\(queue):\(queue)").last)
        XCTAssertEqual(receive.kind, .client)
        XCTAssertEqual(string(receive, "messaging.operation.type"), "receive")
        XCTAssertEqual(receive.links.first?.context.inMemorySpanContext?.spanID, publish.spanID)
        XCTAssertEqual(try onlySpan(named: "nack amq.default:\(queue):\(queue)").traceID, publish.traceID)
    }

    func testFailuresAreRecordedWithTheirErrorType() async throws {
        try await channel.enablePublisherConfirms()
        let unroutable = "no-such-queue-\(queue)"
        do {
            try await channel.publish(Data("x".utf8), routingKey: unroutable, mandatory: true)
            XCTFail("an unroutable mandatory publish was confirmed")
        } catch let error as AMQPError {
            XCTAssertEqual(error.code, .messageReturned)
        }
        let publish = try onlySpan(named: "publish amq.default:\(unroutable)")
        XCTAssertEqual(string(publish, "error.type"), "messageReturned")
        XCTAssertEqual(publish.status?.code, .error)
        XCTAssertEqual(publish.errors.count, 1)

        try await channel.publish(Data("x".utf8), routingKey: queue)
        let delivery = try await eventuallyGet()
        struct HandlerFailed: Error {}
        do {
            try await delivery.process { _ in throw HandlerFailed() }
            XCTFail("process swallowed the error")
        } catch is HandlerFailed {}
        let process = try onlySpan(named: "process amq.default:\(queue):\(queue)")
        XCTAssertEqual(process.status?.code, .error)
        XCTAssertEqual(string(process, "error.type")?.hasSuffix("HandlerFailed"), true)
        try await delivery.ack()
    }

    func testWithTracingOffNothingIsRecordedAndNoContextIsInjected() async throws {
        let quiet = try await TestBroker.connect { $0.observability.tracing = false }
        let quietChannel = try await quiet.openChannel()
        try await tracer.withSpan("caller") { _ in
            try await quietChannel.publish(Data("x".utf8), routingKey: queue)
        }
        let message = try await eventuallyGet()
        XCTAssertNil(message.properties.headers?[InMemoryTracer.traceIDKey])
        XCTAssertTrue(spans(named: "publish amq.default:\(queue)").isEmpty)
        try await quiet.close()
    }

    /// The next message of the test's queue, acknowledged by the caller; waits for it to arrive.
    private func eventuallyGet() async throws -> AMQPDelivery {
        try await withTimeout(10, "a message in \(queue)") { [channel, queue] in
            while true {
                if let delivery = try await channel!.get(queue: queue) { return delivery }
                try await Task.sleep(for: .milliseconds(20))
            }
        }
    }
}

/// `XCTUnwrap` for an expression that awaits.
private func XCTUnwrapAsync<T>(_ value: T?, file: StaticString = #filePath, line: UInt = #line) async throws -> T {
    try XCTUnwrap(value, file: file, line: line)
}

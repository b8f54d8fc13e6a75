import Foundation
import MetricsTestKit
import RabbitMQ
import RabbitMQTestSupport
import XCTest

/// The library's metrics against the real broker, into the test process's in-memory metrics backend: sent and
/// consumed messages and operation durations under the conventions' names and low-cardinality dimensions, the
/// connection and channel gauges, and nothing with metrics off (the default).
final class ClientMetricsTests: XCTestCase {
    private var metrics: TestMetrics { TestInstruments.metrics }

    private func dimensions(_ operation: String, _ destination: String) -> [(String, String)] {
        [
            ("messaging.system", "rabbitmq"), ("messaging.operation.name", operation),
            ("messaging.destination.name", destination),
        ]
    }

    private func count(_ label: String, _ dimensions: [(String, String)]) -> Int64 {
        metrics.counterTotal(label: label, dimensions: dimensions)
    }

    private func timings(_ label: String, _ dimensions: [(String, String)]) -> Int {
        metrics.timers(label: label, dimensions: dimensions).flatMap(\.values).count
    }

    func testPublishesAndDeliveriesAreCountedUnderTheConventionsNames() async throws {
        _ = metrics
        let connection = try await TestBroker.connect { $0.observability.metrics = true }
        let channel = try await connection.openChannel()
        let queue = "metrics-\(UInt32.random(in: 0...999_999))"
        _ = try await channel.declareQueue(queue, exclusive: true)
        try await channel.enablePublisherConfirms()
        for index in 0..<3 {
            try await channel.publish(
                Data("\(index)".utf8), routingKey: queue, properties: AMQPProperties(messageID: "id-\(index)"))
        }
        let sent = "amq.default:\(queue)"
        XCTAssertEqual(count("messaging.client.sent.messages", dimensions("publish", sent)), 3)
        XCTAssertEqual(timings("messaging.client.operation.duration", dimensions("publish", sent)), 3)

        // Two by basic.get, one by a consumer handled in process(_:).
        let received = "amq.default:\(queue):\(queue)"
        for _ in 0..<2 {
            let delivery = try await withTimeout(10, "a message") {
                while true {
                    if let delivery = try await channel.get(queue: queue) { return delivery }
                    try await Task.sleep(for: .milliseconds(20))
                }
            }
            try await delivery.ack()
        }
        for try await delivery in try await channel.consume(queue: queue) {
            try await delivery.process { _ in try await delivery.ack() }
            break
        }
        XCTAssertEqual(count("messaging.client.consumed.messages", dimensions("receive", received)), 2)
        XCTAssertEqual(count("messaging.client.consumed.messages", dimensions("process", received)), 1)
        XCTAssertEqual(timings("messaging.process.duration", dimensions("process", received)), 1)
        XCTAssertEqual(timings("messaging.client.operation.duration", dimensions("ack", received)), 3)
        // No message id reaches a dimension.
        for counter in metrics.counters where counter.label.hasPrefix("messaging.") {
            XCTAssertFalse(counter.dimensions.contains { $0.1.hasPrefix("id-") }, "\(counter.dimensions)")
        }

        let connectionsWhileOpen = try XCTUnwrap(metrics.meters(label: "rabbitmq.client.connections").first?.lastValue)
        let channelsWhileOpen = try XCTUnwrap(metrics.meters(label: "rabbitmq.client.channels").first?.lastValue)
        try await connection.close()
        XCTAssertEqual(metrics.meters(label: "rabbitmq.client.connections").first?.lastValue, connectionsWhileOpen - 1)
        XCTAssertEqual(metrics.meters(label: "rabbitmq.client.channels").first?.lastValue, channelsWhileOpen - 1)
    }

    func testWithoutOptingInNothingIsRecorded() async throws {
        _ = metrics
        let connection = try await TestBroker.connect()
        let channel = try await connection.openChannel()
        let queue = "metrics-off-\(UInt32.random(in: 0...999_999))"
        _ = try await channel.declareQueue(queue, exclusive: true)
        try await channel.publish(Data("x".utf8), routingKey: queue)
        XCTAssertTrue(metrics.counters(label: "messaging.client.sent.messages").filter {
            $0.dimensions.contains { $0.1 == "amq.default:\(queue)" }
        }.isEmpty)
        try await connection.close()
    }
}

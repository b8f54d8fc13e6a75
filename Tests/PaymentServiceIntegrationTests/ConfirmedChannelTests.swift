import Foundation
import RabbitMQ
import XCTest

@testable import PaymentService

/// `ConfirmedChannel` against the broker: a refused publish (`basic.nack`) stays a retriable error, and the next
/// publish goes out on a new channel, which is how the service gets past RabbitMQ 3.10's channel that refuses every
/// publish to a quorum queue after a leader change. The broker is made to refuse with a full `reject-publish` queue.
final class ConfirmedChannelTests: XCTestCase {
    func testARefusedPublishReplacesTheChannelAndTheNextPublishUsesTheNewOne() async throws {
        let connection = try await PaymentTestBroker.connect(name: "payment-tests-confirmed-channel")
        let admin = try await connection.openChannel()
        let queue = "confirmed-channel-\(UInt32.random(in: 0...999_999))"
        _ = try await admin.declareQueue(
            queue, exclusive: true, arguments: ["x-max-length": .int32(1), "x-overflow": "reject-publish"])
        let confirmed = try await ConfirmedChannel.open(on: connection)
        let properties = AMQPProperties()

        let first = try await confirmed.startPublish(Data("1".utf8), routingKey: queue, properties: properties)
        try await confirmed.wait(for: first)
        XCTAssertEqual(first.generation, 0)

        let refused = try await confirmed.startPublish(Data("2".utf8), routingKey: queue, properties: properties)
        do {
            try await confirmed.wait(for: refused)
            XCTFail("a publish to a full reject-publish queue was confirmed")
        } catch let error as AMQPError {
            XCTAssertEqual(error.code, .publishNacked)
            XCTAssertTrue(error.isRetriable)
        }

        _ = try await admin.purgeQueue(queue)
        let next = try await confirmed.startPublish(Data("3".utf8), routingKey: queue, properties: properties)
        XCTAssertEqual(next.generation, 1, "the publish after the refusal went out on a new channel")
        try await confirmed.wait(for: next)
        let held = try await admin.declareQueue(queue, passive: true).messageCount
        XCTAssertEqual(held, 1)
        try await connection.close()
    }
}

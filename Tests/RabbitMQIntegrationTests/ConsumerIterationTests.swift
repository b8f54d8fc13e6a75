import Foundation
import RabbitMQ
import RabbitMQTestSupport
import XCTest

/// A consumer's deliveries are read by one iterator: a second one is refused instead of silently taking over.
final class ConsumerIterationTests: BrokerTestCase {
    func testASecondIteratorIsRefusedAndTheFirstKeepsReceiving() async throws {
        let queue = try await channel.declareTestQueue()
        let consumer = try await channel.consume(queue: queue)
        let first = Task { () -> String? in
            for try await delivery in consumer {
                try await delivery.ack()
                return String(decoding: delivery.body, as: UTF8.self)
            }
            return nil
        }
        try await Task.sleep(for: .milliseconds(100))

        // Before the refusal, this wait replaced the first iterator's and hung: the timeout makes that a failure.
        let second = await assertAMQPError(
            try await withTimeout(5, "the second iterator's answer") { () -> AMQPDelivery? in
                var iterator = consumer.makeAsyncIterator()
                return try await iterator.next()
            })
        XCTAssertEqual(second?.code, .invalidArgument)
        XCTAssertTrue(second?.message.contains("already being iterated") ?? false, "\(String(describing: second))")

        try await channel.publish(Data("for the first".utf8), routingKey: queue)
        let received = try await withTimeout(5, "the first iterator's delivery") { try await first.value }
        XCTAssertEqual(received, "for the first")
    }
}

import Foundation
import RabbitMQ
import RabbitMQTestSupport
import XCTest

/// Consuming a stream over AMQP 0-9-1, where the broker refuses what a queue accepts.
final class StreamConsumeTests: BrokerTestCase {
    /// Leaving a stream consumer's loop with deliveries still buffered must not nack them: a stream answers a nack
    /// with 540 NOT_IMPLEMENTED and closes the whole connection. Shows that the connection stays usable.
    func testAbandoningAStreamConsumerWithBufferedDeliveriesKeepsTheConnection() async throws {
        let stream = TestBroker.uniqueName("stream")
        _ = try await channel.declareQueue(stream, durable: true, arguments: ["x-queue-type": "stream"])
        try await channel.enablePublisherConfirms()
        for index in 0..<50 { try await channel.publish(Data("\(index)".utf8), routingKey: stream) }

        let consuming = try await connection.openChannel()
        try await consuming.setPrefetch(20)
        let first = try await withTimeout(5, "the first entry") { () -> String? in
            // The consumer lives only in here: once this returns it is released, with deliveries still buffered.
            let consumer = try await consuming.consume(queue: stream, arguments: ["x-stream-offset": "first"])
            for try await delivery in consumer {
                // Give the broker time to fill the buffer, then leave the loop with the rest unread.
                try await Task.sleep(for: .milliseconds(300))
                return String(decoding: delivery.body, as: UTF8.self)
            }
            return nil
        }
        XCTAssertEqual(first, "0")
        try await Task.sleep(for: .milliseconds(500))

        // A nack would have closed the connection by now; a fresh channel and a declaration prove it is alive.
        let check = try await connection.openChannel()
        let declared = try await check.declareQueue(stream, passive: true)
        XCTAssertEqual(declared.name, stream)
        try await check.deleteQueue(stream)
    }
}

import Foundation
import RabbitMQ
import RabbitMQTestSupport
import XCTest

final class ConsumeTests: BrokerTestCase {
    private func publish(_ count: Int, to queue: String) async throws {
        try await channel.enablePublisherConfirms()
        for index in 0..<count { try await channel.publish(Data("\(index)".utf8), routingKey: queue) }
    }

    func testDeliveriesCarryEverythingAndPrefetchBoundsThem() async throws {
        let queue = try await channel.declareTestQueue()
        try await publish(5, to: queue)
        let consuming = try await connection.openChannel()
        try await consuming.setPrefetch(2)
        let consumer = try await consuming.consume(queue: queue, tag: "prefetch-test")
        XCTAssertEqual(consumer.tag, "prefetch-test")

        let first = try await withTimeout(5, "the first delivery") { () -> AMQPDelivery? in
            for try await delivery in consumer { return delivery }
            return nil
        }
        let delivery = try XCTUnwrap(first)
        XCTAssertEqual(String(decoding: delivery.body, as: UTF8.self), "0")
        XCTAssertEqual(delivery.consumerTag, "prefetch-test")
        XCTAssertEqual(delivery.routingKey, queue)
        XCTAssertEqual(delivery.deliveryTag, 1)
        XCTAssertFalse(delivery.isRedelivered)

        // With two unacknowledged, the broker holds the other three back.
        try await Task.sleep(for: .milliseconds(300))
        let held = try await channel.declareQueue(queue, passive: true)
        XCTAssertEqual(held.messageCount, 3)
        try await consuming.close()
    }

    func testAckNackRejectAndRedelivery() async throws {
        let queue = try await channel.declareTestQueue()
        try await publish(4, to: queue)
        let consumer = try await channel.consume(queue: queue)
        try await withTimeout(10, "the deliveries") { [consumer] in
            var acked = 0
            for try await delivery in consumer {
                let body = String(decoding: delivery.body, as: UTF8.self)
                switch (body, delivery.isRedelivered) {
                case ("0", false): try await delivery.nack(requeue: true)
                case ("1", false): try await delivery.reject(requeue: true)
                case ("2", _): try await delivery.reject(requeue: false)
                default:
                    try await delivery.ack()
                    acked += 1
                }
                if acked == 3 { break }
            }
        }
        let remaining = try await channel.declareQueue(queue, passive: true)
        XCTAssertEqual(remaining.messageCount, 0)
    }

    func testMultipleAckSettlesEveryEarlierDelivery() async throws {
        let queue = try await channel.declareTestQueue()
        try await publish(10, to: queue)
        let consumer = try await channel.consume(queue: queue)
        let last = try await withTimeout(10, "ten deliveries") { [consumer] () -> AMQPDelivery? in
            var count = 0
            for try await delivery in consumer {
                count += 1
                if count == 10 { return delivery }
            }
            return nil
        }
        try await XCTUnwrap(last).ack(multiple: true)
        try await consumer.cancel()
        // Once cancelled, only settled messages stay gone; the queue would get unacknowledged ones back on close.
        let check = try await connection.openChannel()
        try await channel.close()
        let ready = try await check.messageCount(in: queue)
        XCTAssertEqual(ready, 0)
    }

    func testManyQuickAcknowledgementsSettleExactlyEveryDelivery() async throws {
        // Single acks queued together go out as one multiple ack when that is equivalent; one delivery left
        // unacknowledged in the middle must keep the others from being folded over it.
        let queue = try await channel.declareTestQueue()
        try await publish(500, to: queue)
        let consuming = try await connection.openChannel()
        try await consuming.setPrefetch(500)
        let consumer = try await consuming.consume(queue: queue)
        let kept = try await withTimeout(10, "500 deliveries") { () -> AMQPDelivery? in
            var kept: AMQPDelivery?
            var count = 0
            for try await delivery in consumer {
                count += 1
                if count == 250 { kept = delivery } else { try await delivery.ack() }
                if count == 500 { break }
            }
            return kept
        }
        try await consumer.cancel()
        try await consuming.close()
        // Closing the channel hands back exactly the one delivery that was never acknowledged.
        let ready = try await channel.messageCount(in: queue)
        XCTAssertEqual(ready, 1)
        let back = try await channel.waitForMessage(in: queue)
        XCTAssertEqual(back.body, kept?.body)
    }

    func testNackMultipleRequeuesAll() async throws {
        let queue = try await channel.declareTestQueue()
        try await publish(3, to: queue)
        let consumer = try await channel.consume(queue: queue)
        let last = try await withTimeout(10, "three deliveries") { [consumer] () -> AMQPDelivery? in
            var count = 0
            for try await delivery in consumer {
                count += 1
                if count == 3 { return delivery }
            }
            return nil
        }
        try await consumer.cancel()
        try await XCTUnwrap(last).nack(multiple: true, requeue: true)
        let again = try await channel.waitForMessage(in: queue)
        XCTAssertTrue(again.isRedelivered)
    }

    func testAutoAckConsumerNeedsNoAcks() async throws {
        let queue = try await channel.declareTestQueue()
        try await publish(20, to: queue)
        let consumer = try await channel.consume(queue: queue, noAck: true)
        let count = try await withTimeout(10, "twenty deliveries") { [consumer] in
            var count = 0
            for try await _ in consumer {
                count += 1
                if count == 20 { break }
            }
            return count
        }
        XCTAssertEqual(count, 20)
        let ready = try await channel.messageCount(in: queue)
        XCTAssertEqual(ready, 0)
    }

    func testClientCancelEndsTheSequenceNormally() async throws {
        let queue = try await channel.declareTestQueue()
        let consumer = try await channel.consume(queue: queue)
        let iteration = Task { () -> Int in
            var count = 0
            for try await delivery in consumer {
                count += 1
                try await delivery.ack()
            }
            return count
        }
        try await channel.publish(Data("one".utf8), routingKey: queue)
        try await Task.sleep(for: .milliseconds(200))
        try await consumer.cancel()
        let count = try await withTimeout(5, "the sequence to end") { try await iteration.value }
        XCTAssertEqual(count, 1)
        let consumers = try await channel.consumerCount(of: queue)
        XCTAssertEqual(consumers, 0)
    }

    func testQueueDeletionCancelsTheConsumerWithAnError() async throws {
        let queue = try await channel.declareTestQueue()
        let consumer = try await channel.consume(queue: queue)
        let other = try await connection.openChannel()
        try await other.deleteQueue(queue)
        let error = try await withTimeout(5, "the broker's cancel") { () -> AMQPError? in
            do {
                for try await _ in consumer {}
                return nil
            } catch let error as AMQPError {
                return error
            }
        }
        XCTAssertEqual(error?.code, .consumerCancelledByBroker)
        XCTAssertTrue(error?.message.contains(consumer.tag) ?? false)
        XCTAssertTrue(channel.isOpen)
    }

    func testExclusiveConsumerLocksOutOthers() async throws {
        let queue = try await channel.declareTestQueue()
        let exclusive = try await channel.consume(queue: queue, exclusive: true)
        let other = try await connection.openChannel()
        let error = await assertAMQPError(try await other.consume(queue: queue))
        XCTAssertEqual(error?.replyCode, 403)
        try await exclusive.cancel()
    }

    func testConsumerArgumentsReachTheBroker() async throws {
        let queue = try await channel.declareTestQueue()
        // x-priority must be an integer; a string makes the broker refuse, which proves the table is sent.
        let prioritised = try await channel.consume(queue: queue, arguments: ["x-priority": .int32(5)])
        let other = try await connection.openChannel()
        let error = await assertAMQPError(try await other.consume(queue: queue, arguments: ["x-priority": "high"]))
        XCTAssertEqual(error?.replyCode, 406)
        try await prioritised.cancel()
    }

    func testGetReturnsNilOnEmptyQueue() async throws {
        let queue = try await channel.declareTestQueue()
        let nothing = try await channel.get(queue: queue)
        XCTAssertNil(nothing)
        try await channel.publish(Data("x".utf8), routingKey: queue)
        let delivery = try await channel.waitForMessage(in: queue)
        try await delivery.ack()
        let emptyAgain = try await channel.get(queue: queue)
        XCTAssertNil(emptyAgain)
    }

    func testDroppingTheConsumerCancelsIt() async throws {
        let queue = try await channel.declareTestQueue()
        _ = try await channel.consume(queue: queue)
        try await withTimeout(5, "the consumer to go") { [channel] in
            while try await channel!.consumerCount(of: queue) > 0 {
                try await Task.sleep(for: .milliseconds(20))
            }
        }
    }

    func testCancellingTheIteratingTaskCancelsTheConsumer() async throws {
        let queue = try await channel.declareTestQueue()
        let consumer = try await channel.consume(queue: queue)
        let iteration = Task {
            for try await _ in consumer {}
        }
        try await Task.sleep(for: .milliseconds(100))
        iteration.cancel()
        try await withTimeout(5, "the consumer to go") { [channel] in
            while try await channel!.consumerCount(of: queue) > 0 {
                try await Task.sleep(for: .milliseconds(20))
            }
        }
    }
}

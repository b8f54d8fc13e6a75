import Foundation
import Synchronization
import XCTest

@testable import RabbitMQ

/// How deliveries cross from the I/O thread to the consuming task: appended during a read pass, the reader woken
/// once at its end, the end of the sequence after every appended delivery; and the names reused between deliveries.
final class DeliveryHandOverTests: XCTestCase {
    private func message(_ tag: UInt64) -> InboundMessage {
        InboundMessage(
            body: Data([UInt8(tag)]), properties: AMQPProperties(), exchange: "", routingKey: "q", deliveryTag: tag,
            isRedelivered: false, consumerTag: "c", remainingMessageCount: nil, epoch: 0)
    }

    func testAWaitingReaderGetsTheFirstDeliveryOfAPassOnlyWhenWoken() async throws {
        let buffer = DeliveryBuffer(noAck: true, giveBack: nil)
        let read = Mutex<[UInt64]>([])
        let reader = Task {
            while let delivery = try await buffer.next() { read.withLock { $0.append(delivery.deliveryTag) } }
        }
        try await waitUntilReaderWaits(buffer)
        XCTAssertEqual(buffer.append(message(1)), .enqueued)
        XCTAssertEqual(buffer.append(message(2)), .enqueued)
        // Not woken yet: the reader still waits, with nothing read.
        try await Task.sleep(for: .milliseconds(50))
        XCTAssertTrue(buffer.hasWaitingReader)
        XCTAssertEqual(read.withLock { $0 }, [])
        buffer.wakeReader()
        // One wake-up: the reader takes the first delivery, then the second without waiting again.
        try await waitUntilReaderWaits(buffer)
        XCTAssertEqual(read.withLock { $0 }, [1, 2])
        buffer.finish()
        try await reader.value
    }

    func testTheEndComesAfterDeliveriesAppendedInTheSamePass() async throws {
        let buffer = DeliveryBuffer(noAck: true, giveBack: nil)
        let reader = Task { () -> ([UInt64], String?) in
            var tags: [UInt64] = []
            do {
                while let delivery = try await buffer.next() { tags.append(delivery.deliveryTag) }
                return (tags, nil)
            } catch {
                return (tags, "\(error)")
            }
        }
        try await waitUntilReaderWaits(buffer)
        _ = buffer.append(message(7))
        _ = buffer.append(message(8))
        // The connection fails before the pass ends: the reader still gets both deliveries, then the error.
        buffer.finish(throwing: AMQPError(.connectionLost, "socket closed"))
        XCTAssertEqual(buffer.append(message(9)), .terminated)
        let (tags, error) = await reader.value
        XCTAssertEqual(tags, [7, 8])
        XCTAssertNotNil(error)
        XCTAssertTrue(error?.contains("socket closed") == true, error ?? "no error")
    }

    func testATerminatedBufferGivesBackWhatWasAppendedAndRefusesMore() async throws {
        let givenBack = Mutex<[UInt64]>([])
        let buffer = DeliveryBuffer(noAck: false) { message in givenBack.withLock { $0.append(message.deliveryTag) } }
        _ = buffer.append(message(1))
        _ = buffer.append(message(2))
        buffer.terminate()
        buffer.wakeReader()
        XCTAssertEqual(givenBack.withLock { $0 }, [1, 2])
        XCTAssertEqual(buffer.append(message(3)), .terminated)
    }

    func testNamesAreReusedForTheSameBytesAndMadeForNewOnes() {
        var names = RabbitMQCNameCache()
        func name(_ text: String) -> String {
            Array(text.utf8).withUnsafeBytes { names.string($0) }
        }
        let tag = "amq.ctag-6q2kPnDkNrLQJ0MLOyr3jw"
        let first = name(tag)
        let second = name(tag)
        XCTAssertEqual(first, tag)
        XCTAssertEqual(second, tag)
        // The same storage: the second delivery allocated no string.
        XCTAssertTrue(first.utf8.withContiguousStorageIfAvailable { $0.baseAddress }
            == second.utf8.withContiguousStorageIfAvailable { $0.baseAddress })
        XCTAssertEqual(name(""), "")
        XCTAssertEqual(name("payment-processor"), "payment-processor")
        // More names than it keeps: each still comes back right.
        for index in 0..<(RabbitMQCNameCache.capacity * 2) {
            XCTAssertEqual(name("routing-key-\(index)"), "routing-key-\(index)")
        }
        XCTAssertEqual(name(tag), tag)
        // Bytes that are not UTF-8 come back repaired, every time.
        let invalid: [UInt8] = [0x61, 0xFF, 0x62]
        XCTAssertEqual(invalid.withUnsafeBytes { names.string($0) }, "a\u{FFFD}b")
        XCTAssertEqual(invalid.withUnsafeBytes { names.string($0) }, "a\u{FFFD}b")
    }

    private func waitUntilReaderWaits(_ buffer: DeliveryBuffer) async throws {
        let deadline = ContinuousClock.now + .seconds(5)
        while !buffer.hasWaitingReader {
            guard ContinuousClock.now < deadline else { throw AMQPError(.timeout, "the reader never waited") }
            try await Task.sleep(for: .milliseconds(1))
        }
    }
}

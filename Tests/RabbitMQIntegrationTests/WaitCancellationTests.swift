import Foundation
import RabbitMQ
import RabbitMQTestSupport
import XCTest

/// Every wait of the library ends when its task is cancelled, and leaves nothing behind: a request whose reply is
/// late, a publish waiting for a confirm slot, a publish held by a blocked connection.
final class WaitCancellationTests: XCTestCase {
    override func tearDown() async throws {
        // The blocked-publish test raises a memory alarm; the tests that follow must not inherit it.
        _ = try? TestBroker.rabbitmqctl("set_vm_memory_high_watermark", "0.4")
    }

    /// A connection through a proxy that can hold the broker's answers back.
    private func connectThroughProxy() async throws -> (AMQPConnection, LoopbackProxy) {
        let proxy = try LoopbackProxy(targetPort: try TestBroker.configuration.port)
        let connection = try await TestBroker.connect {
            $0.port = proxy.port
            $0.recovery = .disabled
        }
        return (connection, proxy)
    }

    /// Cancels `task` and checks it ends with `CancellationError` within a second.
    private func assertEndsPromptlyOnCancellation<T: Sendable>(
        _ task: Task<T, any Error>, file: StaticString = #filePath, line: UInt = #line
    ) async throws {
        try await Task.sleep(for: .milliseconds(300))
        let cancelled = ContinuousClock.now
        task.cancel()
        let result = try await withTimeout(5, "the cancelled wait to end") { await task.result }
        XCTAssertLessThan(ContinuousClock.now - cancelled, .seconds(1), file: file, line: line)
        XCTAssertThrowsError(try result.get(), file: file, line: line) { error in
            XCTAssertTrue(error is CancellationError, "\(error)", file: file, line: line)
        }
    }

    func testACancelledRequestEndsAndTheChannelGoesOn() async throws {
        let (connection, proxy) = try await connectThroughProxy()
        defer { proxy.close() }
        let channel = try await connection.openChannel()
        proxy.pause()
        let declaring = Task { try await channel.declareQueue("", exclusive: true) }
        try await assertEndsPromptlyOnCancellation(declaring)
        proxy.resume()
        // The late reply is dropped, and the channel's next request gets its own answer.
        let info = try await withTimeout(5, "a request after the cancelled one") {
            try await channel.declareQueue("", exclusive: true)
        }
        XCTAssertTrue(info.name.hasPrefix("amq.gen-"), info.name)
        try await connection.close()
    }

    func testAConsumerStartedAfterItsCallerWasCancelledIsCancelledAtOnce() async throws {
        let (connection, proxy) = try await connectThroughProxy()
        defer { proxy.close() }
        let channel = try await connection.openChannel()
        let queue = try await channel.declareTestQueue()
        proxy.pause()
        let consuming = Task { try await channel.consume(queue: queue) }
        try await assertEndsPromptlyOnCancellation(consuming)
        proxy.resume()
        // The broker started the consumer anyway; nobody reads it, so the client cancels it at its consume-ok.
        try await channel.publish(Data("unread".utf8), routingKey: queue)
        try await withTimeout(5, "the abandoned consumer to be cancelled") {
            while try await channel.declareQueue(queue, passive: true).consumerCount > 0 {
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        try await withTimeout(5, "the message to be back in its queue") {
            while try await channel.declareQueue(queue, passive: true).messageCount != 1 {
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        try await connection.close()
    }

    func testACancelledWaitForAConfirmSlotTakesNoSlot() async throws {
        let (connection, proxy) = try await connectThroughProxy()
        defer { proxy.close() }
        let channel = try await connection.openChannel()
        let queue = try await channel.declareTestQueue()
        try await channel.enablePublisherConfirms(maxOutstanding: 1)
        proxy.pause()
        let first = try await channel.startPublish(Data("first".utf8), routingKey: queue)
        let second = Task { try await channel.publish(Data("second".utf8), routingKey: queue) }
        try await assertEndsPromptlyOnCancellation(second)
        proxy.resume()
        try await withTimeout(5, "the first confirm") { try await first?.wait() }
        // Had the cancelled publisher kept a slot, this one would wait for ever.
        try await withTimeout(5, "a publish after the cancelled one") {
            try await channel.publish(Data("third".utf8), routingKey: queue)
        }
        let count = try await channel.declareQueue(queue, passive: true).messageCount
        XCTAssertEqual(count, 2, "the cancelled publish was never sent")
        try await connection.close()
    }

    func testACancelledPublishHeldByABlockedConnectionEnds() async throws {
        let connection = try await TestBroker.connect { $0.blockedPublishTimeout = .seconds(60) }
        let channel = try await connection.openChannel()
        let queue = try await channel.declareTestQueue()
        _ = try TestBroker.rabbitmqctl("set_vm_memory_high_watermark", "0.0000001")
        try await withTimeout(20, "connection.blocked") {
            while connection.blockedReason == nil {
                try? await channel.publish(Data("during the alarm".utf8), routingKey: queue)
                try await Task.sleep(for: .milliseconds(200))
            }
        }
        let held = Task { try await channel.publish(Data("held".utf8), routingKey: queue) }
        try await assertEndsPromptlyOnCancellation(held)
        _ = try TestBroker.rabbitmqctl("set_vm_memory_high_watermark", "0.4")
        try await withTimeout(30, "connection.unblocked") {
            while connection.blockedReason != nil { try await Task.sleep(for: .milliseconds(100)) }
        }
        try await channel.publish(Data("after the alarm".utf8), routingKey: queue)
        try await connection.close()
    }
}

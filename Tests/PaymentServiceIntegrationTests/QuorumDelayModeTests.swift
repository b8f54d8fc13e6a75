import Foundation
import PaymentService
import RabbitMQ
import XCTest

/// What `--queue-type quorum` does to the delay mode: the delayed-message plugin keeps delayed messages on one node,
/// so `auto` picks the replicated TTL delay queues without asking the broker for the plugin, and an explicit plugin
/// mode (here its stand-in, since the plugin cannot be installed in CI) is kept but warned about.
final class QuorumDelayModeTests: PaymentScenarioTestCase {
    private static let pluginWarning = "keeps each delayed payment on one node only"

    func testAutoWithQuorumQueuesChoosesReplicatedTTLDelayQueues() async throws {
        let consumer = try await startConsumer(["--queue-type", "quorum"])
        XCTAssertEqual(consumer.logLines(containing: "delay mode: ttl", "--queue-type quorum"), 1, consumer.stderrTail)
        XCTAssertEqual(consumer.logLines(containing: "lacks the delayed-message plugin"), 0, "auto probed for the plugin")
        XCTAssertEqual(consumer.logLines(containing: Self.pluginWarning), 0)

        // Every delay queue is a quorum queue whose dead-lettering back to payment-reprocessor is at-least-once.
        let listing = try PaymentTestBroker.rabbitmqctl(
            "list_queues", "name", "type", "arguments", "--no-table-headers", "-q")
        let lines = listing.split(separator: "\n").map(String.init)
        for queue in topology.testDelayQueues {
            let line = try XCTUnwrap(lines.first { $0.hasPrefix(queue + "\t") }, "\(queue) missing:\n\(listing)")
            XCTAssertTrue(line.contains("\tquorum\t"), line)
            XCTAssertTrue(line.contains("at-least-once"), line)
            XCTAssertTrue(line.contains("reject-publish"), line)
        }
        let delayedExchangeExists = try await broker.exchangeExists(topology.delayedExchange)
        XCTAssertFalse(delayedExchangeExists, "auto with quorum queues declared \(topology.delayedExchange)")
        await stop(consumer)
    }

    func testPluginModeWithQuorumQueuesWarnsThatDelayedPaymentsLiveOnOneNode() async throws {
        let quorum = try await startConsumer(["--queue-type", "quorum", "--delay-mode", "plugin-stand-in"])
        XCTAssertEqual(quorum.logLines(containing: "warning", Self.pluginWarning), 1, quorum.stderrTail)
        XCTAssertEqual(quorum.logLines(containing: "--delay-mode ttl or auto"), 1)
        await stop(quorum)
    }

    func testPluginModeOnClassicQueuesDoesNotWarnAboutReplication() async throws {
        let classic = try await startConsumer(["--delay-mode", "plugin-stand-in"])
        XCTAssertEqual(classic.logLines(containing: "delay mode: plugin-stand-in"), 1, classic.stderrTail)
        XCTAssertEqual(classic.logLines(containing: Self.pluginWarning), 0)
        await stop(classic)
    }
}

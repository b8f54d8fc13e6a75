import XCTest

@testable import PaymentService

final class PaymentTopologyTests: XCTestCase {
    func testTheContractNamesWithoutAPrefix() {
        let topology = PaymentTopology()
        XCTAssertEqual(topology.prefix, "")
        XCTAssertEqual(topology.clientsQueue, "clients-processor")
        XCTAssertEqual(topology.paymentsQueue, "payment-processor")
        XCTAssertEqual(topology.retriesQueue, "payment-reprocessor")
        XCTAssertEqual(topology.parkingLot, "payment-parking-lot")
        XCTAssertEqual(topology.delayedExchange, "payment-delayed")
        XCTAssertEqual(topology.eventsExchange, "payment-events")
        XCTAssertEqual(topology.clientsLog, "payment-clients-log")
        XCTAssertEqual(topology.claimsLog, "payment-claims-log")
        XCTAssertEqual(topology.outcomesLog, "payment-outcomes-log")
        XCTAssertEqual(topology.delayQueue(for: .seconds(1)), "payment-retry-1000ms")
        XCTAssertEqual(topology.delayQueue(for: .milliseconds(200)), "payment-retry-200ms")
        XCTAssertEqual(topology.delayQueue(for: .seconds(10)), "payment-retry-10000ms")
    }

    func testThePrefixGoesInFrontOfEveryName() {
        let topology = PaymentTopology(prefix: "t1-")
        XCTAssertEqual(topology.clientsQueue, "t1-clients-processor")
        XCTAssertEqual(topology.paymentsQueue, "t1-payment-processor")
        XCTAssertEqual(topology.retriesQueue, "t1-payment-reprocessor")
        XCTAssertEqual(topology.parkingLot, "t1-payment-parking-lot")
        XCTAssertEqual(topology.delayedExchange, "t1-payment-delayed")
        XCTAssertEqual(topology.eventsExchange, "t1-payment-events")
        XCTAssertEqual(topology.claimsLog, "t1-payment-claims-log")
        XCTAssertEqual(topology.delayQueue(for: .milliseconds(400)), "t1-payment-retry-400ms")
        XCTAssertNotEqual(topology, PaymentTopology())
        XCTAssertEqual(topology, PaymentTopology(prefix: "t1-"))
    }

    func testTheHeaderNames() {
        XCTAssertEqual(PaymentTopology.parkingReasonHeader, "parking-reason")
        XCTAssertEqual(PaymentTopology.parkingSourceHeader, "parking-source-queue")
        XCTAssertEqual(PaymentTopology.attemptHeader, "payment-attempt")
    }

    func testDelaysAreNamedInWholeMillisecondsRoundedUp() {
        XCTAssertEqual(PaymentTopology.milliseconds(.zero), 0)
        XCTAssertEqual(PaymentTopology.milliseconds(.milliseconds(250)), 250)
        XCTAssertEqual(PaymentTopology.milliseconds(.seconds(3)), 3000)
        XCTAssertEqual(PaymentTopology.milliseconds(.microseconds(1500)), 2)
        XCTAssertEqual(PaymentTopology.milliseconds(.nanoseconds(1)), 1)
        XCTAssertEqual(PaymentTopology().delayQueue(for: .microseconds(200_001)), "payment-retry-201ms")
    }

    func testEveryDelayLevelOfAPolicyHasItsOwnQueue() {
        let topology = PaymentTopology(prefix: "x-")
        let names = RetryPolicy(step: .milliseconds(200), maxDelay: .seconds(10), maxAttempts: 10).delayLevels
            .map { topology.delayQueue(for: $0) }
        XCTAssertEqual(names, (1...10).map { "x-payment-retry-\($0 * 200)ms" })
    }

    func testTheDelayModesAsTheCommandLineSpellsThem() {
        XCTAssertEqual(DelayMode.allCases.map(\.rawValue), ["auto", "plugin", "ttl", "plugin-stand-in"])
        XCTAssertEqual(DelayMode(rawValue: "ttl"), .ttl)
        XCTAssertNil(DelayMode(rawValue: "TTL"))
        XCTAssertEqual(ResolvedDelayMode.plugin.rawValue, "plugin")
        XCTAssertEqual(ResolvedDelayMode.ttl.rawValue, "ttl")
        XCTAssertEqual(ResolvedDelayMode.pluginStandIn.rawValue, "plugin-stand-in")
    }
}

import XCTest

@testable import RabbitMQ

final class UnsettledTagsTests: XCTestCase {
    func testLowestFollowsSettlementsInAndOutOfOrder() {
        var tags = RabbitMQCUnsettledTags()
        XCTAssertNil(tags.lowest)
        for tag in 1...6 { tags.delivered(UInt64(tag)) }
        XCTAssertEqual(tags.lowest, 1)
        tags.settle(3)
        tags.settle(2)
        XCTAssertEqual(tags.lowest, 1, "out-of-order settlements leave the lowest")
        tags.settle(1)
        XCTAssertEqual(tags.lowest, 4, "settling the lowest skips those settled before")
        tags.settle(upTo: 5)
        XCTAssertEqual(tags.lowest, 6)
        tags.settle(6)
        XCTAssertNil(tags.lowest)
    }

    func testUnknownAndRepeatedSettlementsChangeNothing() {
        var tags = RabbitMQCUnsettledTags()
        tags.delivered(10)
        tags.delivered(11)
        tags.settle(5)
        tags.settle(10)
        tags.settle(10)
        XCTAssertEqual(tags.lowest, 11)
        tags.reset()
        XCTAssertNil(tags.lowest)
    }

    func testMultipleSettlementDropsOutOfOrderOnesBelowIt() {
        var tags = RabbitMQCUnsettledTags()
        for tag in 1...4 { tags.delivered(UInt64(tag)) }
        tags.settle(4)
        tags.settle(upTo: 2)
        XCTAssertEqual(tags.lowest, 3)
        tags.settle(3)
        XCTAssertNil(tags.lowest, "4 was settled earlier")
    }
}

import XCTest

@testable import PaymentService

/// The digests that stand for ids in memory: fixed across processes, and distinct for distinct ids.
final class IDDigestTests: XCTestCase {
    func testTheDigestIsAFixedFunctionOfTheId() {
        // Fixed values: a digest must not depend on the process (Swift's own hashing is seeded per process).
        let digest = IDDigest("payment-42")
        XCTAssertEqual(digest, IDDigest("payment-42"))
        XCTAssertEqual(IDDigest("").high, 0xcbf2_9ce4_8422_2325)
        XCTAssertNotEqual(digest.high, digest.low)
    }

    func testAMillionSimilarIdsHaveAMillionDigests() {
        var seen = Set<IDDigest>()
        seen.reserveCapacity(1_000_000)
        for index in 0..<1_000_000 { seen.insert(IDDigest("client-\(index)")) }
        XCTAssertEqual(seen.count, 1_000_000)
        // Same bytes in another order, and one more byte, differ too.
        XCTAssertNotEqual(IDDigest("ab"), IDDigest("ba"))
        XCTAssertNotEqual(IDDigest("a"), IDDigest("a\u{0}"))
    }
}

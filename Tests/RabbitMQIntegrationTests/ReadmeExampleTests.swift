import Foundation
import RabbitMQTestSupport
import XCTest

final class ReadmeExampleTests: XCTestCase {
    func testReadmeExampleRuns() async throws {
        _ = try await TestBroker.connect()  // skips or fails loudly, like every integration test, without a broker
        let received = try await withTimeout(10, "the README example") { try await greet(url: TestBroker.url) }
        XCTAssertEqual(received, "hello")
    }

    func testReadmeShowsTheCompiledExample() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let readme = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
        let source = try String(
            contentsOf: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
                .appendingPathComponent("ReadmeExample.swift"), encoding: .utf8)
        let example = try XCTUnwrap(
            source.components(separatedBy: "// README-EXAMPLE-BEGIN\n").last?
                .components(separatedBy: "// README-EXAMPLE-END").first)
        let block = try XCTUnwrap(
            readme.components(separatedBy: "```swift\n").dropFirst().first?.components(separatedBy: "```").first)
        XCTAssertEqual(block, example, "README.md's first Swift block differs from ReadmeExample.swift")
    }
}

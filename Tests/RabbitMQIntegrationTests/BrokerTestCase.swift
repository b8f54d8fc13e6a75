import Foundation
import RabbitMQ
import XCTest

/// A test with a fresh connection and channel to the test broker, closed afterwards.
class BrokerTestCase: XCTestCase {
    var connection: AMQPConnection!
    var channel: AMQPChannel!

    override func setUp() async throws {
        connection = try await TestBroker.connect()
        channel = try await connection.openChannel()
    }

    override func tearDown() async throws {
        try await connection?.close()
    }
}

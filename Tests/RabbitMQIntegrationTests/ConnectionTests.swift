import Foundation
import RabbitMQ
import XCTest

#if canImport(Glibc)
import Glibc
#endif

final class ConnectionTests: XCTestCase {
    func testConnectsWithURLAndNegotiates() async throws {
        let connection = try await TestBroker.connect { $0.heartbeat = .seconds(7) }
        XCTAssertTrue(connection.isOpen)
        XCTAssertEqual(connection.parameters.heartbeat, .seconds(7))
        XCTAssertEqual(connection.parameters.frameMax, 131_072)
        XCTAssertGreaterThan(connection.parameters.channelMax, 0)
        XCTAssertEqual(connection.serverProperties["product"]?.stringValue, "RabbitMQ")
        try await connection.close()
        XCTAssertFalse(connection.isOpen)
    }

    func testAnnouncesConnectionNameAndCapabilities() async throws {
        let name = TestBroker.uniqueName("named-connection")
        let connection = try await TestBroker.connect { $0.connectionName = name }
        defer { Task { try? await connection.close() } }
        let listing = try TestBroker.rabbitmqctl("list_connections", "client_properties", "--no-table-headers")
        let line = try XCTUnwrap(listing.split(separator: "\n").first { $0.contains(name) }, listing)
        for capability in [
            "consumer_cancel_notify", "connection.blocked", "publisher_confirms", "basic.nack",
            "authentication_failure_close",
        ] {
            XCTAssertTrue(line.contains("{\"\(capability)\",true}"), "\(capability) missing from \(line)")
        }
    }

    func testWrongPasswordIsAnAuthenticationError() async throws {
        let error = await assertAMQPError(try await TestBroker.connect { $0.password = "definitely-wrong" })
        XCTAssertEqual(error?.code, .authenticationFailed)
        XCTAssertEqual(error?.replyCode, 403)
        XCTAssertFalse(error?.description.contains("definitely-wrong") ?? true)
    }

    func testUnknownVirtualHostIsItsOwnError() async throws {
        let error = await assertAMQPError(try await TestBroker.connect { $0.virtualHost = "no-such-vhost" })
        XCTAssertEqual(error?.code, .virtualHostNotAccessible)
        XCTAssertEqual(error?.replyCode, 530)
        XCTAssertTrue(error?.message.contains("no-such-vhost") ?? false)
    }

    func testRefusedPortIsConnectionRefused() async throws {
        let port = try closedLoopbackPort()
        let error = await assertAMQPError(
            try await AMQPConnection.connect(configuration: AMQPConfiguration(host: "127.0.0.1", port: port)))
        XCTAssertEqual(error?.code, .connectionRefused)
        XCTAssertTrue(error?.message.contains("127.0.0.1:\(port)") ?? false, error?.message ?? "")
    }

    func testUnresolvableHostIsHostNotFound() async throws {
        // A label longer than 63 bytes fails name resolution locally, without asking any DNS server.
        let host = String(repeating: "x", count: 70) + ".invalid"
        let error = await assertAMQPError(
            try await AMQPConnection.connect(configuration: AMQPConfiguration(host: host)))
        XCTAssertEqual(error?.code, .hostNotFound)
    }

    func testSilentPeerHitsTheConnectTimeout() async throws {
        // A loopback listener that accepts and never speaks: the AMQP handshake must give up.
        let listener = try LoopbackListener()
        defer { listener.close() }
        let started = ContinuousClock.now
        let error = await assertAMQPError(
            try await AMQPConnection.connect(
                configuration: AMQPConfiguration(host: "127.0.0.1", port: listener.port, connectTimeout: .seconds(1))))
        XCTAssertEqual(error?.code, .connectTimeout)
        XCTAssertLessThan(ContinuousClock.now - started, .seconds(10))
    }

    func testClosedConnectionRefusesWorkWithClearError() async throws {
        let connection = try await TestBroker.connect()
        let channel = try await connection.openChannel()
        try await connection.close()
        let error = await assertAMQPError(try await channel.declareQueue(TestBroker.uniqueName("after-close")))
        XCTAssertTrue([.connectionClosed, .channelClosed].contains(error?.code), "\(String(describing: error))")
        let second = await assertAMQPError(try await connection.openChannel())
        XCTAssertEqual(second?.code, .connectionClosed)
    }

    func testManyChannelsOpenAndClose() async throws {
        let connection = try await TestBroker.connect()
        var channels: [AMQPChannel] = []
        for _ in 0..<20 { channels.append(try await connection.openChannel()) }
        XCTAssertEqual(Set(channels.map(\.id)).count, 20)
        for channel in channels { try await channel.close() }
        XCTAssertFalse(channels[0].isOpen)
        let reused = try await connection.openChannel()
        XCTAssertTrue(reused.isOpen)
        try await connection.close()
    }

    /// A port on 127.0.0.1 with nothing listening: bind one, read its number, close it.
    private func closedLoopbackPort() throws -> Int {
        let listener = try LoopbackListener()
        let port = listener.port
        listener.close()
        return port
    }
}

/// A TCP listener on 127.0.0.1 that never accepts: connections complete in the kernel and then hear nothing.
final class LoopbackListener {
    let descriptor: Int32
    let port: Int

    init() throws {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0, listen(descriptor, 8) == 0 else { throw AMQPError(.libraryError, "cannot listen") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        self.descriptor = descriptor
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    func close() {
        Glibc.close(descriptor)
    }
}

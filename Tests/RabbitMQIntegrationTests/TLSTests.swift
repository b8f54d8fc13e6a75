import Foundation
import RabbitMQ
import XCTest

/// `amqps://` against the local broker's TLS listener on 5671, which scripts/setup-tls.sh sets up with a throwaway
/// CA: a server certificate for "localhost", a client certificate for user "tls-client", and a second, unknown CA.
final class TLSTests: XCTestCase {
    private var directory: String {
        ProcessInfo.processInfo.environment["AMQP_TLS_DIR"] ?? "/etc/rabbitmq/tls-test"
    }

    private func file(_ name: String) throws -> String {
        let path = "\(directory)/\(name)"
        guard FileManager.default.isReadableFile(atPath: path) else {
            if TestBroker.isCI { throw AMQPError(.invalidConfiguration, "missing \(path): run scripts/setup-tls.sh") }
            throw XCTSkip("no test certificates in \(directory): run scripts/setup-tls.sh")
        }
        return path
    }

    private func tlsConfiguration(host: String = "localhost", ca: String = "ca.pem") throws -> AMQPConfiguration {
        var configuration = try TestBroker.configuration
        configuration.host = host
        configuration.port = 5671
        configuration.connectTimeout = .seconds(5)
        configuration.recovery = .disabled
        configuration.tls = AMQPConfiguration.TLS(caCertificatePath: try file(ca))
        return configuration
    }

    func testVerifiedConnectionWorks() async throws {
        let connection = try await AMQPConnection.connect(configuration: try tlsConfiguration(), logger: TestBroker.logger)
        let channel = try await connection.openChannel()
        let queue = try await channel.declareTestQueue("tls")
        try await channel.publish(Data("over TLS".utf8), routingKey: queue)
        let delivery = try await channel.waitForMessage(in: queue)
        XCTAssertEqual(String(decoding: delivery.body, as: UTF8.self), "over TLS")
        try await connection.close()
    }

    func testURLWithTLSParametersConnects() async throws {
        let ca = try file("ca.pem")
        let connection = try await AMQPConnection.connect(
            url: "amqps://guest:guest@localhost:5671/?cacertfile=\(ca)", logger: TestBroker.logger)
        XCTAssertTrue(connection.isOpen)
        try await connection.close()
    }

    func testUnknownCertificateAuthorityIsRefused() async throws {
        let error = await assertAMQPError(
            try await AMQPConnection.connect(
                configuration: try tlsConfiguration(ca: "other-ca.pem"), logger: TestBroker.logger))
        XCTAssertEqual(error?.code, .tlsFailure)
        XCTAssertNotNil(error?.libraryStatus)
    }

    func testHostnameMismatchIsRefused() async throws {
        // The certificate names "localhost"; reaching the same listener as 127.0.0.1 must not pass verification.
        let error = await assertAMQPError(
            try await AMQPConnection.connect(
                configuration: try tlsConfiguration(host: "127.0.0.1"), logger: TestBroker.logger))
        XCTAssertEqual(error?.code, .tlsFailure)
    }

    func testLoginByClientCertificate() async throws {
        var configuration = try tlsConfiguration()
        configuration.authentication = .external
        configuration.username = "tls-client"
        configuration.password = ""
        configuration.tls?.clientCertificatePath = try file("client.pem")
        configuration.tls?.clientKeyPath = try file("client.key")
        let name = TestBroker.uniqueName("certificate-login")
        configuration.connectionName = name
        let connection = try await AMQPConnection.connect(configuration: configuration, logger: TestBroker.logger)
        let channel = try await connection.openChannel()
        _ = try await channel.declareQueue(exclusive: true)
        // The broker took the identity from the certificate: the connection belongs to user tls-client.
        let listing = try TestBroker.rabbitmqctl("list_connections", "user", "client_properties", "--no-table-headers", "-q")
        let line = try XCTUnwrap(listing.split(separator: "\n").first { $0.contains(name) }, listing)
        XCTAssertTrue(line.hasPrefix("tls-client"), String(line))
        try await connection.close()
    }

    func testCertificateLoginWithoutACertificateIsRefused() async throws {
        var configuration = try tlsConfiguration()
        configuration.authentication = .external
        configuration.username = "tls-client"
        configuration.tls?.clientCertificatePath = nil
        configuration.tls?.clientKeyPath = nil
        // The configuration itself says what is missing, before any connection is made.
        let error = await assertAMQPError(
            try await AMQPConnection.connect(configuration: configuration, logger: TestBroker.logger))
        XCTAssertEqual(error?.code, .invalidConfiguration)
    }
}

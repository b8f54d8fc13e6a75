import XCTest

@testable import RabbitMQ

final class ConfigurationTests: XCTestCase {
    // MARK: - Defaults

    func testDefaults() throws {
        let configuration = AMQPConfiguration()
        XCTAssertEqual(configuration.host, "localhost")
        XCTAssertEqual(configuration.port, 5672)
        XCTAssertEqual(configuration.virtualHost, "/")
        XCTAssertEqual(configuration.username, "guest")
        XCTAssertEqual(configuration.password, "guest")
        XCTAssertEqual(configuration.heartbeat, .seconds(60))
        XCTAssertEqual(configuration.heartbeatSeconds, 60)
        XCTAssertEqual(configuration.connectTimeout, .seconds(10))
        XCTAssertEqual(configuration.connectTimeoutMilliseconds, 10_000)
        XCTAssertEqual(configuration.channelMax, 2047)
        XCTAssertEqual(configuration.frameMax, 131_072)
        XCTAssertNil(configuration.connectionName)
        XCTAssertEqual(configuration.authentication, .plain)
        XCTAssertNil(configuration.tls)
        XCTAssertNoThrow(try configuration.validate())
    }

    func testDefaultPortFollowsTLS() {
        XCTAssertEqual(AMQPConfiguration(tls: .systemTrust).port, 5671)
        XCTAssertEqual(AMQPConfiguration(port: 1234, tls: .systemTrust).port, 1234)
        XCTAssertEqual(AMQPConfiguration(port: 1234).port, 1234)
    }

    func testTLSDefaults() {
        let tls = AMQPConfiguration.TLS()
        XCTAssertNil(tls.caCertificatePath)
        XCTAssertNil(tls.clientCertificatePath)
        XCTAssertNil(tls.clientKeyPath)
        XCTAssertTrue(tls.verifyPeer)
        XCTAssertTrue(tls.verifyHostname)
        XCTAssertNil(tls.serverName)
        XCTAssertEqual(AMQPConfiguration.TLS.systemTrust, tls)
    }

    func testEmptyURLTakesEveryDefault() throws {
        XCTAssertEqual(try AMQPConfiguration(url: "amqp://"), AMQPConfiguration())
        XCTAssertEqual(try AMQPConfiguration(url: "amqp://localhost"), AMQPConfiguration())
    }

    // MARK: - URL parts

    func testFullURL() throws {
        let configuration = try AMQPConfiguration(
            url: "amqps://orders:p%40ss@rabbit.example.com:5674/payments"
                + "?heartbeat=30&connection_timeout=2500&channel_max=100&frame_max=8192"
                + "&auth_mechanism=external&connection_name=billing%20worker"
                + "&cacertfile=/etc/ca.pem&certfile=/etc/client.pem&keyfile=/etc/client.key"
                + "&verify=verify_peer&server_name_indication=broker.internal")
        let expected = AMQPConfiguration(
            host: "rabbit.example.com",
            port: 5674,
            virtualHost: "payments",
            username: "orders",
            password: "p@ss",
            heartbeat: .seconds(30),
            connectTimeout: .milliseconds(2500),
            channelMax: 100,
            frameMax: 8192,
            connectionName: "billing worker",
            authentication: .external,
            tls: AMQPConfiguration.TLS(
                caCertificatePath: "/etc/ca.pem",
                clientCertificatePath: "/etc/client.pem",
                clientKeyPath: "/etc/client.key",
                verifyPeer: true,
                verifyHostname: true,
                serverName: "broker.internal"
            )
        )
        XCTAssertEqual(configuration, expected)
    }

    func testTrailingSlashMeansDefaultVirtualHost() throws {
        let configuration = try AMQPConfiguration(url: "amqp://guest:guest@127.0.0.1:5672/")
        XCTAssertEqual(configuration.virtualHost, "/")
        XCTAssertEqual(configuration.host, "127.0.0.1")
        XCTAssertEqual(configuration.port, 5672)
        XCTAssertEqual(configuration.username, "guest")
        XCTAssertEqual(configuration.password, "guest")
    }

    func testNoPathMeansDefaultVirtualHost() throws {
        XCTAssertEqual(try AMQPConfiguration(url: "amqp://host").virtualHost, "/")
        XCTAssertEqual(try AMQPConfiguration(url: "amqp://host?heartbeat=5").virtualHost, "/")
        XCTAssertEqual(try AMQPConfiguration(url: "amqp://host/?heartbeat=5").virtualHost, "/")
    }

    func testEncodedSlashVirtualHost() throws {
        XCTAssertEqual(try AMQPConfiguration(url: "amqp://host/%2F").virtualHost, "/")
        XCTAssertEqual(try AMQPConfiguration(url: "amqp://host/%2f").virtualHost, "/")
        XCTAssertEqual(try AMQPConfiguration(url: "amqp://host/a%2Fb").virtualHost, "a/b")
    }

    func testNamedVirtualHost() throws {
        XCTAssertEqual(try AMQPConfiguration(url: "amqp://host/orders").virtualHost, "orders")
        XCTAssertEqual(try AMQPConfiguration(url: "amqp://host/orders?heartbeat=1").virtualHost, "orders")
        XCTAssertEqual(try AMQPConfiguration(url: "amqp://host/caf%C3%A9").virtualHost, "café")
    }

    func testPercentEncodedUserAndPassword() throws {
        let configuration = try AMQPConfiguration(url: "amqp://us%40er:p%3Ass@host")
        XCTAssertEqual(configuration.username, "us@er")
        XCTAssertEqual(configuration.password, "p:ss")
        XCTAssertEqual(configuration.host, "host")
    }

    func testUserInfoFollowsTheSpecification() throws {
        // No user info: both defaults.
        let none = try AMQPConfiguration(url: "amqp://host")
        XCTAssertEqual(none.username, "guest")
        XCTAssertEqual(none.password, "guest")
        // A user without ":password": the password is absent, so it takes the default.
        let userOnly = try AMQPConfiguration(url: "amqp://alice@host")
        XCTAssertEqual(userOnly.username, "alice")
        XCTAssertEqual(userOnly.password, "guest")
        // "user:" has a password, and it is empty.
        let emptyPassword = try AMQPConfiguration(url: "amqp://alice:@host")
        XCTAssertEqual(emptyPassword.username, "alice")
        XCTAssertEqual(emptyPassword.password, "")
        // ":@" gives an empty user and an empty password, as the specification's appendix says.
        let bothEmpty = try AMQPConfiguration(url: "amqp://:@host")
        XCTAssertEqual(bothEmpty.username, "")
        XCTAssertEqual(bothEmpty.password, "")
    }

    func testUnencodedAtAndColonInPasswordAreTolerated() throws {
        let configuration = try AMQPConfiguration(url: "amqp://alice:p@ss:w0rd@host:5673")
        XCTAssertEqual(configuration.username, "alice")
        XCTAssertEqual(configuration.password, "p@ss:w0rd")
        XCTAssertEqual(configuration.host, "host")
        XCTAssertEqual(configuration.port, 5673)
    }

    func testHostKeepsItsCase() throws {
        // The name may be compared with a certificate or sent as SNI, so it is passed on exactly as written.
        XCTAssertEqual(try AMQPConfiguration(url: "amqp://Rabbit.Example.COM").host, "Rabbit.Example.COM")
    }

    func testPercentEncodedHost() throws {
        // The specification's own example: "ho%61st" is "hoast".
        XCTAssertEqual(try AMQPConfiguration(url: "amqp://ho%61st").host, "hoast")
    }

    func testEmptyHostMeansLocalhost() throws {
        let configuration = try AMQPConfiguration(url: "amqp://user:pw@:5673/vh")
        XCTAssertEqual(configuration.host, "localhost")
        XCTAssertEqual(configuration.port, 5673)
        XCTAssertEqual(configuration.virtualHost, "vh")
    }

    func testEmptyPortMeansDefault() throws {
        XCTAssertEqual(try AMQPConfiguration(url: "amqp://host:").port, 5672)
        XCTAssertEqual(try AMQPConfiguration(url: "amqps://host:").port, 5671)
    }

    func testIPv6Host() throws {
        let withPort = try AMQPConfiguration(url: "amqp://[::1]:5673")
        XCTAssertEqual(withPort.host, "::1")
        XCTAssertEqual(withPort.port, 5673)

        let withoutPort = try AMQPConfiguration(url: "amqp://user:pw@[2001:db8::8a2e:370:7334]/vh")
        XCTAssertEqual(withoutPort.host, "2001:db8::8a2e:370:7334")
        XCTAssertEqual(withoutPort.port, 5672)
        XCTAssertEqual(withoutPort.virtualHost, "vh")

        XCTAssertEqual(try AMQPConfiguration(url: "amqp://[::ffff:192.0.2.1]").host, "::ffff:192.0.2.1")
        XCTAssertEqual(try AMQPConfiguration(url: "amqp://[1:2:3:4:5:6:7:8]").host, "1:2:3:4:5:6:7:8")
        XCTAssertEqual(try AMQPConfiguration(url: "amqp://[fe80::1%25eth0]:5673").host, "fe80::1%eth0")
    }

    func testAMQPSDefaultsToTLSOnPort5671() throws {
        let configuration = try AMQPConfiguration(url: "amqps://broker")
        XCTAssertEqual(configuration.port, 5671)
        XCTAssertEqual(configuration.tls, .systemTrust)

        let plain = try AMQPConfiguration(url: "amqp://broker")
        XCTAssertEqual(plain.port, 5672)
        XCTAssertNil(plain.tls)
    }

    func testSchemeIsCaseInsensitive() throws {
        XCTAssertNotNil(try AMQPConfiguration(url: "AMQPS://broker").tls)
        XCTAssertNil(try AMQPConfiguration(url: "Amqp://broker").tls)
    }

    // MARK: - Query parameters

    func testHeartbeatParameter() throws {
        XCTAssertEqual(try AMQPConfiguration(url: "amqp://h?heartbeat=5").heartbeat, .seconds(5))
        XCTAssertEqual(try AMQPConfiguration(url: "amqp://h?heartbeat=0").heartbeat, .zero)
        XCTAssertEqual(try AMQPConfiguration(url: "amqp://h?heartbeat=65535").heartbeatSeconds, 65535)
    }

    func testConnectionTimeoutIsInMilliseconds() throws {
        let configuration = try AMQPConfiguration(url: "amqp://h?connection_timeout=1500")
        XCTAssertEqual(configuration.connectTimeout, .milliseconds(1500))
        XCTAssertEqual(configuration.connectTimeoutMilliseconds, 1500)
    }

    func testChannelMaxAndFrameMaxParameters() throws {
        let configuration = try AMQPConfiguration(url: "amqp://h?channel_max=10&frame_max=4096")
        XCTAssertEqual(configuration.channelMax, 10)
        XCTAssertEqual(configuration.frameMax, 4096)

        let brokerLimits = try AMQPConfiguration(url: "amqp://h?channel_max=0&frame_max=0")
        XCTAssertEqual(brokerLimits.channelMax, 0)
        XCTAssertEqual(brokerLimits.frameMax, 0)
    }

    func testAuthMechanismParameter() throws {
        XCTAssertEqual(try AMQPConfiguration(url: "amqp://h?auth_mechanism=plain").authentication, .plain)
        XCTAssertEqual(try AMQPConfiguration(url: "amqp://h?auth_mechanism=PLAIN").authentication, .plain)
        let external = try AMQPConfiguration(
            url: "amqps://h?auth_mechanism=EXTERNAL&certfile=/c.pem&keyfile=/k.pem")
        XCTAssertEqual(external.authentication, .external)
    }

    func testRepeatedAuthMechanismTakesTheFirstSupported() throws {
        let configuration = try AMQPConfiguration(
            url: "amqps://h?auth_mechanism=amqplain&auth_mechanism=external&auth_mechanism=plain"
                + "&certfile=/c.pem&keyfile=/k.pem")
        XCTAssertEqual(configuration.authentication, .external)
        let plainFirst = try AMQPConfiguration(url: "amqp://h?auth_mechanism=plain&auth_mechanism=external")
        XCTAssertEqual(plainFirst.authentication, .plain)
    }

    func testConnectionNameParameter() throws {
        let configuration = try AMQPConfiguration(url: "amqp://h?connection_name=orders%20%26%20billing%40eu")
        XCTAssertEqual(configuration.connectionName, "orders & billing@eu")
    }

    func testPlusInQueryIsAPlusSign() throws {
        XCTAssertEqual(try AMQPConfiguration(url: "amqp://h?connection_name=a+b").connectionName, "a+b")
    }

    func testTLSFileParameters() throws {
        let tls = try XCTUnwrap(
            AMQPConfiguration(url: "amqps://h?cacertfile=%2Fetc%2Fca.pem&certfile=/etc/c.pem&keyfile=/etc/k.pem").tls)
        XCTAssertEqual(tls.caCertificatePath, "/etc/ca.pem")
        XCTAssertEqual(tls.clientCertificatePath, "/etc/c.pem")
        XCTAssertEqual(tls.clientKeyPath, "/etc/k.pem")
        XCTAssertTrue(tls.verifyPeer)
        XCTAssertTrue(tls.verifyHostname)
    }

    func testVerifyParameter() throws {
        let none = try XCTUnwrap(AMQPConfiguration(url: "amqps://h?verify=verify_none").tls)
        XCTAssertFalse(none.verifyPeer)
        XCTAssertFalse(none.verifyHostname)

        let peer = try XCTUnwrap(AMQPConfiguration(url: "amqps://h?verify=verify_peer").tls)
        XCTAssertTrue(peer.verifyPeer)
        XCTAssertTrue(peer.verifyHostname)
    }

    func testServerNameIndicationParameter() throws {
        let named = try XCTUnwrap(AMQPConfiguration(url: "amqps://10.0.0.5?server_name_indication=rabbit.internal").tls)
        XCTAssertEqual(named.serverName, "rabbit.internal")
        XCTAssertTrue(named.verifyHostname)

        let disabled = try XCTUnwrap(AMQPConfiguration(url: "amqps://h?server_name_indication=disable").tls)
        XCTAssertNil(disabled.serverName)
        XCTAssertFalse(disabled.verifyHostname)
        XCTAssertTrue(disabled.verifyPeer)

        // The order of the parameters does not matter.
        let later = try XCTUnwrap(
            AMQPConfiguration(url: "amqps://h?server_name_indication=disable&verify=verify_peer").tls)
        XCTAssertFalse(later.verifyHostname)
    }

    // MARK: - Durations on the wire

    func testHeartbeatRoundsUpToWholeSeconds() {
        XCTAssertEqual(AMQPConfiguration(heartbeat: .milliseconds(1)).heartbeatSeconds, 1)
        XCTAssertEqual(AMQPConfiguration(heartbeat: .milliseconds(1500)).heartbeatSeconds, 2)
        XCTAssertEqual(AMQPConfiguration(heartbeat: .seconds(7)).heartbeatSeconds, 7)
        XCTAssertEqual(AMQPConfiguration(heartbeat: .zero).heartbeatSeconds, 0)
    }

    func testConnectTimeoutRoundsUpToWholeMilliseconds() {
        XCTAssertEqual(AMQPConfiguration(connectTimeout: .nanoseconds(1)).connectTimeoutMilliseconds, 1)
        XCTAssertEqual(AMQPConfiguration(connectTimeout: .microseconds(2500)).connectTimeoutMilliseconds, 3)
        XCTAssertEqual(AMQPConfiguration(connectTimeout: .seconds(3)).connectTimeoutMilliseconds, 3000)
    }

    func testHugeDurationsDoNotTrap() {
        let huge = Duration.seconds(Int64.max)
        XCTAssertEqual(AMQPConfiguration(connectTimeout: huge).connectTimeoutMilliseconds, Int.max)
        XCTAssertThrowsError(try AMQPConfiguration(heartbeat: huge).validate())
    }

    // MARK: - URL errors

    func testUnsupportedSchemeIsNamed() {
        assertInvalid("http://host", mentions: "http")
        assertInvalid("amqp+ssl://host", mentions: "amqp+ssl")
        assertInvalid("host:5672", mentions: "host")
    }

    func testURLWithoutSchemeOrSlashes() {
        assertInvalid("localhost", mentions: "amqp://")
        assertInvalid("amqp:host", mentions: "//")
    }

    func testBadPortIsNamed() {
        assertInvalid("amqp://user:pw@host:0", mentions: "port 0")
        assertInvalid("amqp://user:pw@host:70000", mentions: "port 70000")
        assertInvalid("amqp://user:pw@host:abc", mentions: "'abc'")
        assertInvalid("amqp://user:pw@[::1]:-1", mentions: "'-1'")
    }

    func testBadPortWithoutUserInfoNamesThePortButNotItsText() {
        assertInvalid("amqp://localhost:0", mentions: "port after 'localhost'")
        assertInvalid("amqp://localhost:abc", mentions: "port after 'localhost'")
    }

    func testMalformedPercentEscape() {
        assertInvalid("amqp://us%zzer@host", mentions: "user name")
        assertInvalid("amqp://us%zzer@host", mentions: "%zz")
        assertInvalid("amqp://host/v%2", mentions: "virtual host")
        assertInvalid("amqp://host/v%2", mentions: "%2")
        assertInvalid("amqp://h?connection_name=a%G1", mentions: "connection_name")
        assertInvalid("amqp://user:pw%4@host", mentions: "password")
        assertInvalid("amqp://host/%FF", mentions: "UTF-8")
    }

    func testUnknownParameterIsNamed() {
        assertInvalid("amqp://h?hearbeat=5", mentions: "hearbeat")
        assertInvalid("amqp://h?heartbeat=5&channelmax=3", mentions: "channelmax")
    }

    func testParameterWithoutValueOrRepeated() {
        assertInvalid("amqp://h?heartbeat", mentions: "heartbeat")
        assertInvalid("amqp://h?heartbeat=", mentions: "empty")
        assertInvalid("amqp://h?heartbeat=1&heartbeat=2", mentions: "more than once")
    }

    func testTLSParameterOnPlainURL() {
        for parameter in [
            "cacertfile=/ca.pem", "certfile=/c.pem", "keyfile=/k.pem", "verify=verify_peer",
            "server_name_indication=h",
        ] {
            let name = String(parameter.prefix { $0 != "=" })
            assertInvalid("amqp://h?\(parameter)", mentions: name)
            assertInvalid("amqp://h?\(parameter)", mentions: "amqps://")
        }
    }

    func testBadNumberNamesTheParameter() {
        assertInvalid("amqp://h?heartbeat=70000", mentions: "heartbeat")
        assertInvalid("amqp://h?heartbeat=-1", mentions: "heartbeat")
        assertInvalid("amqp://h?heartbeat=1.5", mentions: "heartbeat")
        assertInvalid("amqp://h?connection_timeout=0", mentions: "connection_timeout")
        assertInvalid("amqp://h?connection_timeout=ten", mentions: "connection_timeout")
        assertInvalid("amqp://h?channel_max=65536", mentions: "channel_max")
        assertInvalid("amqp://h?frame_max=4095", mentions: "frame_max")
        assertInvalid("amqp://h?frame_max=4294967296", mentions: "frame_max")
    }

    func testBadEnumeratedValues() {
        assertInvalid("amqps://h?verify=maybe", mentions: "verify=maybe")
        assertInvalid("amqp://h?auth_mechanism=amqplain", mentions: "amqplain")
        // EXTERNAL without a client certificate cannot log in.
        assertInvalid("amqps://h?auth_mechanism=external", mentions: "EXTERNAL")
    }

    func testVirtualHostWithUnencodedSlash() {
        assertInvalid("amqp://host/a/b", mentions: "/a/b")
        assertInvalid("amqp://host//", mentions: "%2F")
    }

    func testMalformedHosts() {
        assertInvalid("amqp://::1", mentions: "brackets")
        assertInvalid("amqp://[::1", mentions: "']'")
        assertInvalid("amqp://[::1]x", mentions: "':port'")
        assertInvalid("amqp://u:p@[not-ipv6]", mentions: "not-ipv6")
        assertInvalid("amqp://[not-ipv6]", mentions: "not an IPv6 address")
        assertInvalid("amqp://u:p@[1:2:3:4:5:6:7:8:9]", mentions: "1:2:3:4:5:6:7:8:9")
        assertInvalid("amqp://u:p@[1:2:3:4:5:6:7]", mentions: "1:2:3:4:5:6:7")
        assertInvalid("amqp://u:p@[1:2:3:4::5:6:7:8]", mentions: "1:2:3:4::5:6:7:8")
        assertInvalid("amqp://u:p@[1::2::3]", mentions: "1::2::3")
        assertInvalid("amqp://u:p@[:::1]", mentions: ":::1")
        assertInvalid("amqp://u:p@[12345::1]", mentions: "12345::1")
        assertInvalid("amqp://u:p@[::256.0.0.1]", mentions: "256.0.0.1")
        assertInvalid("amqp://u:p@[::01.0.0.1]", mentions: "01.0.0.1")
        assertInvalid("amqp://u:p@[]", mentions: "[]")
        assertInvalid("amqp://u:p@[fe80::1%eth0]", mentions: "%25")
        assertInvalid("amqp://u:p@[fe80::1%25]", mentions: "zone")
        assertInvalid("amqp://ho%2Fst", mentions: "'/'")
    }

    func testCharactersThatCannotBeInAURL() {
        assertInvalid("amqp://host/ vh", mentions: "space")
        assertInvalid("amqp://host/vh#frag", mentions: "%23")
        assertInvalid("amqp://host/vh@x", mentions: "%40")
    }

    func testHeartbeatOutOfRange() {
        assertInvalid("amqp://h?heartbeat=65536", mentions: "heartbeat")
        assertInvalid(AMQPConfiguration(heartbeat: .seconds(65536)), mentions: "heartbeat")
        assertInvalid(AMQPConfiguration(heartbeat: .milliseconds(65_535_001)), mentions: "heartbeat")
        assertInvalid(AMQPConfiguration(heartbeat: .seconds(-1)), mentions: "negative")
        XCTAssertNoThrow(try AMQPConfiguration(heartbeat: .seconds(65535)).validate())
    }

    // MARK: - validate()

    func testValidateRules() {
        assertInvalid(AMQPConfiguration(host: ""), mentions: "host")
        assertInvalid(AMQPConfiguration(port: 0), mentions: "port 0")
        assertInvalid(AMQPConfiguration(port: 65536), mentions: "port 65536")
        assertInvalid(AMQPConfiguration(connectTimeout: .zero), mentions: "connect timeout")
        assertInvalid(AMQPConfiguration(connectTimeout: .seconds(-1)), mentions: "connect timeout")
        assertInvalid(AMQPConfiguration(frameMax: 4095), mentions: "frameMax 4095")
        XCTAssertNoThrow(try AMQPConfiguration(frameMax: 0).validate())
        XCTAssertNoThrow(try AMQPConfiguration(frameMax: 4096).validate())
        XCTAssertNoThrow(try AMQPConfiguration(channelMax: 0).validate())
    }

    func testShortStringLimits() {
        let longest = String(repeating: "é", count: 127)  // 254 bytes
        XCTAssertNoThrow(try AMQPConfiguration(virtualHost: longest + "x").validate())
        let tooLong = String(repeating: "é", count: 128)  // 256 bytes, 128 characters
        assertInvalid(AMQPConfiguration(virtualHost: tooLong), mentions: "virtual host is 256 bytes")
        assertInvalid(AMQPConfiguration(username: tooLong), mentions: "user name is 256 bytes")
        assertInvalid(AMQPConfiguration(connectionName: tooLong), mentions: "connection name is 256 bytes")
    }

    func testNULIsRejected() {
        assertInvalid(AMQPConfiguration(username: "a\u{0}b"), mentions: "user name")
        assertInvalid("amqp://user:pw%00x@host", mentions: "password")
        assertInvalid("amqp://host/v%00h", mentions: "virtual host")
    }

    func testExternalAuthenticationNeedsAClientCertificate() {
        assertInvalid(AMQPConfiguration(authentication: .external), mentions: "EXTERNAL")
        assertInvalid(
            AMQPConfiguration(authentication: .external, tls: .systemTrust), mentions: "clientCertificatePath")
        let tls = AMQPConfiguration.TLS(clientCertificatePath: "/c.pem", clientKeyPath: "/k.pem")
        XCTAssertNoThrow(try AMQPConfiguration(authentication: .external, tls: tls).validate())
    }

    func testTLSCertificateAndKeyComeTogether() {
        assertInvalid(AMQPConfiguration(tls: .init(clientCertificatePath: "/c.pem")), mentions: "clientKeyPath")
        assertInvalid(AMQPConfiguration(tls: .init(clientKeyPath: "/k.pem")), mentions: "clientCertificatePath")
        assertInvalid(AMQPConfiguration(tls: .init(caCertificatePath: "")), mentions: "caCertificatePath")
        assertInvalid(AMQPConfiguration(tls: .init(serverName: "")), mentions: "serverName")
        XCTAssertNoThrow(try AMQPConfiguration.TLS(clientCertificatePath: "/c.pem", clientKeyPath: "/k.pem").validate())
    }

    // MARK: - Descriptions

    func testDescriptionIsOneURLLine() {
        let configuration = AMQPConfiguration()
        XCTAssertEqual(
            configuration.description,
            "amqp://guest:***@localhost:5672/%2F?heartbeat=60&connection_timeout=10000&channel_max=2047"
                + "&frame_max=131072")
        XCTAssertFalse(configuration.description.contains("\n"))
    }

    func testDescriptionReadsBack() throws {
        var configuration = AMQPConfiguration(
            host: "::1",
            port: 5999,
            virtualHost: "a/b c",
            username: "us@er:1",
            password: "s3cr3t",
            heartbeat: .seconds(15),
            connectTimeout: .milliseconds(750),
            channelMax: 7,
            frameMax: 0,
            connectionName: "billing & co",
            authentication: .external,
            tls: .init(
                caCertificatePath: "/etc/ca file.pem", clientCertificatePath: "/c.pem", clientKeyPath: "/k.pem",
                verifyPeer: true, verifyHostname: true, serverName: "rabbit.internal")
        )
        var parsed = try AMQPConfiguration(url: configuration.description)
        XCTAssertEqual(parsed.password, "***")
        parsed.password = configuration.password
        XCTAssertEqual(parsed, configuration)

        configuration.tls = .init(verifyPeer: true, verifyHostname: false)
        configuration.authentication = .plain
        XCTAssertTrue(configuration.description.contains("server_name_indication=disable"), configuration.description)
        parsed = try AMQPConfiguration(url: configuration.description)
        parsed.password = configuration.password
        XCTAssertEqual(parsed, configuration)

        configuration.tls = .init(verifyPeer: false, verifyHostname: false)
        XCTAssertTrue(configuration.description.contains("verify=verify_none"), configuration.description)
        configuration.host = "fe80::1%eth0"
        parsed = try AMQPConfiguration(url: configuration.description)
        parsed.password = configuration.password
        XCTAssertEqual(parsed, configuration)
    }

    func testDebugDescriptionShowsFieldsButNotThePassword() {
        let configuration = AMQPConfiguration(password: "s3cr3t", connectionName: "worker", tls: .systemTrust)
        let text = configuration.debugDescription
        XCTAssertTrue(text.hasPrefix("AMQPConfiguration(host: \"localhost\", port: 5671"), text)
        XCTAssertTrue(text.contains("password: ***"), text)
        XCTAssertTrue(text.contains("connectionName: \"worker\""), text)
        XCTAssertTrue(text.contains("verifyPeer: true"), text)
        XCTAssertFalse(text.contains("s3cr3t"), text)
    }

    // MARK: - The password stays secret

    func testPasswordNeverShows() throws {
        let configuration = try AMQPConfiguration(url: "amqps://alice:s3cr3t@rabbit.internal/orders")
        XCTAssertEqual(configuration.password, "s3cr3t")

        XCTAssertFalse(configuration.description.contains("s3cr3t"), configuration.description)
        XCTAssertTrue(configuration.description.contains("alice:***@"), configuration.description)
        XCTAssertFalse(configuration.debugDescription.contains("s3cr3t"), configuration.debugDescription)
        XCTAssertFalse(String(reflecting: configuration).contains("s3cr3t"))
        XCTAssertFalse(String(describing: configuration).contains("s3cr3t"))
        XCTAssertFalse("\(configuration)".contains("s3cr3t"))
        XCTAssertFalse(String(describing: [configuration]).contains("s3cr3t"))
        XCTAssertFalse(String(describing: Optional(configuration)).contains("s3cr3t"))

        var dumped = ""
        dump(configuration, to: &dumped)
        XCTAssertFalse(dumped.contains("s3cr3t"), dumped)
        XCTAssertTrue(dumped.contains("password: \"***\""), dumped)
        XCTAssertTrue(dumped.contains("rabbit.internal"), dumped)

        let mirror = Mirror(reflecting: configuration)
        let password = mirror.children.first { $0.label == "password" }?.value as? String
        XCTAssertEqual(password, "***")
        // Every stored property, so none escapes the redacted mirror (17 since observability).
        XCTAssertEqual(mirror.children.count, 17)
        XCTAssertNotNil(mirror.children.first { $0.label == "recovery" })
        XCTAssertNotNil(mirror.children.first { $0.label == "observability" })
    }

    func testErrorsNeverShowThePassword() {
        let urls = [
            "amqp://alice:s3cr3t@host:abc",
            "amqp://alice:s3cr3t@host:0",
            "amqp://alice:s3cr3t%zz@host",
            "amqp://alice:s3cr3t%@host",
            "amqp://alice:s3cr3t%FF@host",
            "amqp://alice:s3cr3t%00@host",
            "amqp://alice:s3cr3t@host/a/b",
            "amqp://alice:s3cr3t@host?hearbeat=1",
            "amqp://alice:s3cr3t@host?heartbeat=x",
            "amqp://alice:s3cr3t@host?cacertfile=/ca.pem",
            "http://alice:s3cr3t@host",
            // The host was forgotten: "s3cr3t" reads as a port.
            "amqp://alice:s3cr3t",
            "amqp://alice:s3cr3t/vhost",
            // Unencoded delimiters inside the password.
            "amqp://alice:s3/cr3t@host",
            "amqp://alice:s3cr3t/@host",
            "amqp://alice:s3?cr3t@host",
            "amqp://alice:s3cr3t?@host",
            "amqp://alice:s3#cr3t@host",
            "amqp://alice:s3cr3t#@host",
            "amqp://alice:s3 cr3t@host",
            "amqp://[alice:s3cr3t]",
            "amqp://[alice:s3cr3t%25x]",
            "amqp://alice:s3cr3t@[::1",
        ]
        for url in urls {
            XCTAssertThrowsError(try AMQPConfiguration(url: url), url) { error in
                guard let error = error as? AMQPError else {
                    return XCTFail("\(url) threw \(type(of: error)), not AMQPError")
                }
                XCTAssertEqual(error.code, .invalidConfiguration, url)
                for text in [error.message, error.description, String(reflecting: error), "\(error)"] {
                    XCTAssertFalse(text.contains("s3cr3t"), "\(url): \(text)")
                    XCTAssertFalse(text.contains("cr3t"), "\(url): \(text)")
                }
            }
        }
    }

    func testValidationErrorsNeverShowThePassword() {
        let configurations = [
            AMQPConfiguration(host: "", password: "s3cr3t"),
            AMQPConfiguration(password: "s3cr3t\u{0}"),
            AMQPConfiguration(password: "s3cr3t", authentication: .external),
        ]
        for configuration in configurations {
            XCTAssertThrowsError(try configuration.validate()) { error in
                XCTAssertFalse("\(error)".contains("s3cr3t"), "\(error)")
            }
        }
    }

    // MARK: - Helpers

    /// Asserts that `url` is refused with `invalidConfiguration` and a message that contains `culprit`.
    private func assertInvalid(_ url: String, mentions culprit: String, line: UInt = #line) {
        XCTAssertThrowsError(try AMQPConfiguration(url: url), url, line: line) { error in
            checkInvalid(error, mentions: culprit, context: url, line: line)
        }
    }

    /// Asserts that `configuration.validate()` throws `invalidConfiguration` with a message that contains `culprit`.
    private func assertInvalid(_ configuration: AMQPConfiguration, mentions culprit: String, line: UInt = #line) {
        XCTAssertThrowsError(try configuration.validate(), configuration.debugDescription, line: line) { error in
            checkInvalid(error, mentions: culprit, context: configuration.debugDescription, line: line)
        }
    }

    private func checkInvalid(_ error: any Error, mentions culprit: String, context: String, line: UInt) {
        guard let error = error as? AMQPError else {
            return XCTFail("\(context) threw \(type(of: error)), not AMQPError", line: line)
        }
        XCTAssertEqual(error.code, .invalidConfiguration, context, line: line)
        XCTAssertTrue(
            error.message.contains(culprit), "\(context): \"\(error.message)\" does not mention \(culprit)",
            line: line)
    }
}

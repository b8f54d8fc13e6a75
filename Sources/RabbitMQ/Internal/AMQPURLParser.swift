/// Reads one AMQP URL into a configuration; see ``AMQPConfiguration/init(url:)`` for the rules.
///
/// It works on UTF-8 bytes rather than `Character`s: every delimiter is ASCII, and a `/` followed by a combining mark
/// would make one `Character` that is not equal to `/`.
struct AMQPURLParser {
    typealias Bytes = ArraySlice<UInt8>

    private let url: [UInt8]

    init(_ url: String) {
        self.url = Array(url.utf8)
    }

    func parse() throws -> AMQPConfiguration {
        if url.contains(where: { $0 <= ASCII.space || $0 == ASCII.delete }) {
            throw AMQPConfiguration.invalid(
                "the URL contains a space or a control character; percent-encode it (a space is %20)")
        }
        let (usesTLS, afterScheme) = try parseScheme()

        let authorityEnd =
            afterScheme.firstIndex { $0 == ASCII.slash || $0 == ASCII.question || $0 == ASCII.hash }
            ?? afterScheme.endIndex
        let authority = afterScheme[..<authorityEnd]
        let pathAndQuery = afterScheme[authorityEnd...]
        // A password with an unencoded '/', '?' or '#' ends the authority early and pushes its '@host' into the
        // path or the query; refusing every later '@' keeps the rest of that password out of the virtual host,
        // the parameters, and so out of any message or log line.
        if pathAndQuery.contains(ASCII.at) {
            throw AMQPConfiguration.invalid(
                "the URL has an '@' after the host: percent-encode '/', '?' and '#' in the user name and password, "
                    + "and write an '@' in the virtual host or a query parameter as %40")
        }
        if pathAndQuery.contains(ASCII.hash) {
            throw AMQPConfiguration.invalid(
                "the URL contains '#', but an AMQP URL has no fragment; write a '#' as %23")
        }

        var configuration = AMQPConfiguration(tls: usesTLS ? .systemTrust : nil)
        if let at = authority.lastIndex(of: ASCII.at) {
            try parseUserInfo(authority[..<at], into: &configuration)
            try parseHostAndPort(authority[(at + 1)...], hasUserInfo: true, into: &configuration)
        } else {
            try parseHostAndPort(authority, hasUserInfo: false, into: &configuration)
        }

        var query = pathAndQuery
        if pathAndQuery.first == ASCII.slash {
            let pathEnd = pathAndQuery.firstIndex(of: ASCII.question) ?? pathAndQuery.endIndex
            let segment = pathAndQuery[(pathAndQuery.startIndex + 1)..<pathEnd]
            if segment.contains(ASCII.slash) {
                throw AMQPConfiguration.invalid(
                    "the path '\(Self.shown(pathAndQuery[..<pathEnd]))' has more than one segment; "
                        + "write a '/' inside a virtual host name as %2F")
            }
            if !segment.isEmpty {
                configuration.virtualHost = try Self.decoded(segment, what: "the virtual host")
            }
            query = pathAndQuery[pathEnd...]
        }
        if query.first == ASCII.question {
            try parseQuery(query.dropFirst(), usesTLS: usesTLS, into: &configuration)
        }
        return configuration
    }

    private func parseScheme() throws -> (usesTLS: Bool, rest: Bytes) {
        let whole = url[...]
        guard let colon = whole.firstIndex(of: ASCII.colon) else {
            throw AMQPConfiguration.invalid("the URL has no scheme; it must start with amqp:// or amqps://")
        }
        let schemeBytes = whole[..<colon]
        let scheme = String(decoding: schemeBytes, as: UTF8.self)
        let usesTLS: Bool
        switch scheme.lowercased() {
        case "amqp":
            usesTLS = false
        case "amqps":
            usesTLS = true
        default:
            // Only text shaped like a scheme is quoted: anything else may be a user name and password without one.
            if Self.isSchemeSyntax(schemeBytes) && schemeBytes.count <= 32 {
                throw AMQPConfiguration.invalid("unsupported scheme '\(scheme)'; use amqp:// or amqps://")
            }
            throw AMQPConfiguration.invalid("the URL must start with amqp:// or amqps://")
        }
        let afterColon = whole[(colon + 1)...]
        guard afterColon.starts(with: [ASCII.slash, ASCII.slash]) else {
            throw AMQPConfiguration.invalid("'\(scheme):' must be followed by '//', as in \(scheme)://host")
        }
        return (usesTLS, afterColon.dropFirst(2))
    }

    private func parseUserInfo(_ userInfo: Bytes, into configuration: inout AMQPConfiguration) throws {
        if let colon = userInfo.firstIndex(of: ASCII.colon) {
            configuration.username = try Self.decoded(userInfo[..<colon], what: "the user name")
            configuration.password = try Self.decoded(userInfo[(colon + 1)...], what: "the password", isSecret: true)
        } else {
            // RabbitMQ's URI specification: an absent password takes the client's default, like an absent user.
            configuration.username = try Self.decoded(userInfo, what: "the user name")
        }
    }

    private func parseHostAndPort(
        _ hostAndPort: Bytes, hasUserInfo: Bool, into configuration: inout AMQPConfiguration
    ) throws {
        var portText: Bytes?
        let hostText: Bytes
        if hostAndPort.first == ASCII.openBracket {
            guard let close = hostAndPort.firstIndex(of: ASCII.closeBracket) else {
                throw AMQPConfiguration.invalid("an IPv6 address in the URL lacks its closing ']'")
            }
            configuration.host = try parseIPv6Literal(
                hostAndPort[(hostAndPort.startIndex + 1)..<close], mayQuote: hasUserInfo)
            let afterBracket = hostAndPort[(close + 1)...]
            if let first = afterBracket.first {
                guard first == ASCII.colon else {
                    throw AMQPConfiguration.invalid(
                        "only ':port' may follow the ']' of the IPv6 address [\(configuration.host)]")
                }
                portText = afterBracket.dropFirst()
            }
            hostText = hostAndPort[..<(close + 1)]
        } else {
            if let colon = hostAndPort.firstIndex(of: ASCII.colon) {
                hostText = hostAndPort[..<colon]
                let afterColon = hostAndPort[(colon + 1)...]
                if afterColon.contains(ASCII.colon) {
                    throw AMQPConfiguration.invalid(
                        "an IPv6 address must be enclosed in brackets, as in amqp://[::1]:5672")
                }
                portText = afterColon
            } else {
                hostText = hostAndPort
            }
            let host = try Self.decoded(hostText, what: "the host")
            if let bad = host.unicodeScalars.first(where: Self.isForbiddenInHostName) {
                throw AMQPConfiguration.invalid(
                    "the host '\(Self.shown(host))' contains \(Self.named(bad)), which no host name has")
            }
            // The specification gives an empty host the client's default.
            if !host.isEmpty {
                configuration.host = host
            }
        }
        // An empty port ("host:") is allowed by RFC 3986 and means the default, like an absent one.
        if let portText, !portText.isEmpty {
            configuration.port = try parsePort(portText, after: hostText, hasUserInfo: hasUserInfo)
        }
    }

    private func parsePort(_ text: Bytes, after hostText: Bytes, hasUserInfo: Bool) throws -> Int {
        let isDecimal = text.allSatisfy(ASCII.isDigit)
        if isDecimal, let port = Int(String(decoding: text, as: UTF8.self)), (1...65535).contains(port) {
            return port
        }
        guard hasUserInfo else {
            // With no '@', "user:s3cr3t" reads as host "user" and port "s3cr3t": the port may be a password whose
            // "@host" was forgotten, so it is described but never quoted.
            throw AMQPConfiguration.invalid(
                "the port after '\(Self.shown(hostText))' is not a number in 1...65535 (the URL has no '@', so if "
                    + "'\(Self.shown(hostText)):...' was meant as user:password, the '@host' part is missing)")
        }
        if isDecimal {
            throw AMQPConfiguration.invalid("port \(Self.shown(text)) is out of range; use 1...65535")
        }
        throw AMQPConfiguration.invalid("port '\(Self.shown(text))' is not a number; use 1...65535")
    }

    /// The host inside `[...]`: an IPv6 address, then optionally an RFC 6874 zone written `%25zone`.
    ///
    /// - Parameter mayQuote: Whether error messages may quote the literal; not when the URL has no user info,
    ///   because then `[user:password]` would be read as the literal.
    private func parseIPv6Literal(_ literal: Bytes, mayQuote: Bool) throws -> String {
        let quoted = mayQuote ? " '[\(Self.shown(literal))]'" : ""
        let zoneStart = literal.firstIndex(of: ASCII.percent)
        let address = literal[..<(zoneStart ?? literal.endIndex)]
        guard Self.isIPv6Address(address) else {
            throw AMQPConfiguration.invalid(
                "the host\(quoted) is not an IPv6 address; only IPv6 addresses go in brackets")
        }
        var host = String(decoding: address, as: UTF8.self)
        if let zoneStart {
            guard literal[zoneStart...].starts(with: Array("%25".utf8)), literal.endIndex - zoneStart > 3 else {
                throw AMQPConfiguration.invalid(
                    "the IPv6 zone of the host\(quoted) must be written %25 and a name, as in [fe80::1%25eth0]")
            }
            let zone = try Self.decoded(literal[(zoneStart + 3)...], what: "the IPv6 zone")
            guard zone.unicodeScalars.allSatisfy(ASCII.isUnreserved) else {
                throw AMQPConfiguration.invalid("the IPv6 zone '\(Self.shown(zone))' is not a valid zone name")
            }
            host += "%" + zone
        }
        return host
    }

    private func parseQuery(_ query: Bytes, usesTLS: Bool, into configuration: inout AMQPConfiguration) throws {
        var seen: Set<String> = []
        var mechanisms: [String] = []
        var verifyPeer = true
        var serverNameIndicationDisabled = false
        var tls = configuration.tls ?? .systemTrust

        for pair in query.split(separator: ASCII.ampersand) {
            let equals = pair.firstIndex(of: ASCII.equals)
            let name = try Self.decoded(pair[..<(equals ?? pair.endIndex)], what: "a query parameter name")
            guard Self.knownParameters.contains(name) else {
                // The value is left out: an unknown parameter may carry a secret, such as a key's password.
                throw AMQPConfiguration.invalid(
                    "unknown query parameter '\(Self.shown(name))'; the known ones are "
                        + Self.knownParameters.joined(separator: ", "))
            }
            guard let equals else {
                throw AMQPConfiguration.invalid("query parameter '\(name)' has no value; write \(name)=value")
            }
            if name != "auth_mechanism" && !seen.insert(name).inserted {
                throw AMQPConfiguration.invalid("query parameter '\(name)' appears more than once")
            }
            if Self.tlsParameters.contains(name) && !usesTLS {
                throw AMQPConfiguration.invalid(
                    "query parameter '\(name)' configures TLS, which needs an amqps:// URL, not amqp://")
            }
            let value = try Self.decoded(pair[(equals + 1)...], what: "the value of query parameter '\(name)'")
            if value.isEmpty {
                throw AMQPConfiguration.invalid("query parameter '\(name)' has an empty value")
            }

            switch name {
            case "heartbeat":
                let seconds = try Self.integer(
                    value, of: name, in: 0...65535, expected: "a whole number of seconds in 0...65535")
                configuration.heartbeat = .seconds(seconds)
            case "connection_timeout":
                let milliseconds = try Self.integer(
                    value, of: name, in: 1...Int.max, expected: "a whole number of milliseconds, at least 1")
                configuration.connectTimeout = .milliseconds(milliseconds)
            case "channel_max":
                let channels = try Self.integer(value, of: name, in: 0...65535, expected: "a whole number in 0...65535")
                configuration.channelMax = UInt16(channels)
            case "frame_max":
                let bytes = try Self.integer(
                    value, of: name, in: 0...Int(UInt32.max),
                    expected: "a number of bytes, 0 or \(AMQPConfiguration.minimumFrameMax)...\(UInt32.max)")
                if bytes != 0 && bytes < AMQPConfiguration.minimumFrameMax {
                    throw AMQPConfiguration.invalid(
                        "query parameter frame_max=\(bytes) is below AMQP's minimum of "
                            + "\(AMQPConfiguration.minimumFrameMax) bytes (0 means the broker's limit)")
                }
                configuration.frameMax = UInt32(bytes)
            case "auth_mechanism":
                mechanisms.append(value)
            case "connection_name":
                configuration.connectionName = value
            case "cacertfile":
                tls.caCertificatePath = value
            case "certfile":
                tls.clientCertificatePath = value
            case "keyfile":
                tls.clientKeyPath = value
            case "verify":
                switch value.lowercased() {
                case "verify_peer":
                    verifyPeer = true
                case "verify_none":
                    verifyPeer = false
                default:
                    throw AMQPConfiguration.invalid(
                        "query parameter verify=\(Self.shown(value)) must be verify_peer or verify_none")
                }
            case "server_name_indication":
                if value.lowercased() == "disable" {
                    serverNameIndicationDisabled = true
                } else if let bad = value.unicodeScalars.first(where: Self.isForbiddenInHostName) {
                    throw AMQPConfiguration.invalid(
                        "query parameter server_name_indication=\(Self.shown(value)) contains \(Self.named(bad)); "
                            + "give a host name or 'disable'")
                } else {
                    tls.serverName = value
                }
            default:
                // Every name in knownParameters has a case above.
                preconditionFailure("query parameter '\(name)' is known but not handled")
            }
        }

        if !mechanisms.isEmpty {
            let supported = mechanisms.lazy.compactMap { AMQPConfiguration.Authentication(rawValue: $0.lowercased()) }
            guard let mechanism = supported.first else {
                let listed = mechanisms.map { Self.shown($0) }.joined(separator: ", ")
                throw AMQPConfiguration.invalid(
                    "query parameter auth_mechanism offers no supported mechanism (\(listed)); use plain or external")
            }
            configuration.authentication = mechanism
        }
        if usesTLS {
            // Checking the name is part of verifying the peer, so verify_none turns both off, in any order.
            tls.verifyPeer = verifyPeer
            tls.verifyHostname = verifyPeer && !serverNameIndicationDisabled
            configuration.tls = tls
        }
    }

    /// The query parameters ``AMQPConfiguration/init(url:)`` understands, in the order error messages list them.
    private static let knownParameters = [
        "heartbeat", "connection_timeout", "channel_max", "frame_max", "auth_mechanism", "connection_name",
        "cacertfile", "certfile", "keyfile", "verify", "server_name_indication",
    ]

    /// The query parameters that only an `amqps` URL may carry.
    private static let tlsParameters: Set<String> = [
        "cacertfile", "certfile", "keyfile", "verify", "server_name_indication",
    ]

    private static func integer(
        _ value: String, of parameter: String, in range: ClosedRange<Int>, expected: String
    ) throws -> Int {
        if value.utf8.allSatisfy(ASCII.isDigit), let number = Int(value), range.contains(number) {
            return number
        }
        throw AMQPConfiguration.invalid("query parameter \(parameter)=\(shown(value)) must be \(expected)")
    }

    /// `bytes` with every `%XX` escape decoded, as UTF-8.
    ///
    /// - Parameters:
    ///   - what: The part being decoded, for the error message, such as "the user name".
    ///   - isSecret: Whether the text must stay out of error messages, even the faulty escape.
    private static func decoded(_ bytes: Bytes, what: String, isSecret: Bool = false) throws -> String {
        var result: [UInt8] = []
        result.reserveCapacity(bytes.count)
        var index = bytes.startIndex
        while index < bytes.endIndex {
            let byte = bytes[index]
            guard byte == ASCII.percent else {
                result.append(byte)
                index += 1
                continue
            }
            let escapeEnd = min(index + 3, bytes.endIndex)
            if escapeEnd - index == 3,
                let high = ASCII.hexValue(bytes[index + 1]),
                let low = ASCII.hexValue(bytes[index + 2])
            {
                result.append(high << 4 | low)
                index = escapeEnd
                continue
            }
            if isSecret {
                throw AMQPConfiguration.invalid("\(what) contains a malformed percent escape; write a '%' as %25")
            }
            let escape = String(decoding: bytes[index..<escapeEnd], as: UTF8.self)
            throw AMQPConfiguration.invalid(
                "\(what) contains the malformed percent escape '\(escape)'; write a '%' as %25")
        }
        guard let text = String(validating: result, as: UTF8.self) else {
            throw AMQPConfiguration.invalid("\(what) is not valid UTF-8 once percent-decoded")
        }
        return text
    }
}

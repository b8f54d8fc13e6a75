extension AMQPConfiguration {
    /// Creates a configuration from an `amqp://` or `amqps://` URL, as RabbitMQ's URI specification defines it, then
    /// checks it with ``validate()``.
    ///
    /// ```
    /// amqp[s]://[user[:password]@][host][:port][/vhost][?parameter=value&...]
    /// ```
    ///
    /// - The scheme is `amqp` (plain TCP, port 5672) or `amqps` (TLS with ``TLS/systemTrust`` settings, port 5671),
    ///   in any case.
    /// - The user name, password, host and virtual host are percent-decoded: `%2F` is `/`, `%40` is `@`, `%3A` is `:`.
    ///   Without user info the user and password are `guest`; with a user but no `:password` the password is also
    ///   the default, `guest`, because the specification treats an absent password like an absent user (`user:`
    ///   gives the empty password). The last `@` of the authority ends the user info and the first `:` in it ends the
    ///   user name, so an unencoded `@` or `:` in the password still works.
    /// - The host is a name, an IPv4 address, or an IPv6 address in brackets (`amqp://[::1]:5673`, with an optional
    ///   RFC 6874 zone such as `[fe80::1%25eth0]`); it is stored without brackets. An empty host means `localhost`.
    /// - The virtual host is the single path segment. No path, or `/` alone, means the default virtual host `/`
    ///   (RabbitMQ cannot use an empty virtual host name, so `amqp://host/` is read as pika reads it, not as the
    ///   empty name the specification gives). `/%2F` is `/` and `/orders` is `orders`; a second unencoded `/`, as in
    ///   `/a/b`, is an error.
    /// - Query parameters, from RabbitMQ's URI query parameters plus `connection_name`:
    ///   `heartbeat` (seconds, 0...65535, 0 disables), `connection_timeout` (milliseconds, at least 1),
    ///   `channel_max` (0...65535), `frame_max` (bytes, 0 or at least 4096), `auth_mechanism` (`plain` or `external`,
    ///   in any case; it may repeat, and the first supported one wins), `connection_name`, and, on `amqps` URLs only,
    ///   `cacertfile`, `certfile`, `keyfile`, `verify` (`verify_peer` or `verify_none`; `verify_none` turns off both
    ///   ``TLS/verifyPeer`` and ``TLS/verifyHostname``) and `server_name_indication` (a host name for
    ///   ``TLS/serverName``, or `disable` to turn off ``TLS/verifyHostname``). Names and values are percent-decoded;
    ///   `+` is a plus sign, not a space.
    ///
    /// To keep a typo from silently falling back to a default, these are errors: an unknown or repeated parameter
    /// (except `auth_mechanism`), a parameter without a value or with an empty one, and a TLS parameter on an
    /// `amqp://` URL. So that a password with an unencoded `/`, `?` or `#` can never be mistaken for a virtual host or
    /// a query parameter and then shown in a message or a log, an `@` after the host (`%40` is fine) and a `#`
    /// anywhere are errors too, as are spaces and control characters.
    ///
    /// This parser does not use Foundation's `URL`, whose handling of percent-encoded user info and of IPv6 hosts
    /// differs between platforms.
    ///
    /// - Parameter url: The URL, such as `amqps://orders:s3cr3t@rabbit.internal/payments?heartbeat=30`.
    /// - Throws: ``AMQPError`` with code ``AMQPError/Code-swift.struct/invalidConfiguration`` naming the part at fault
    ///   (the scheme, the port, the parameter, ...). No message contains the password: the port is quoted only
    ///   when the URL has user info, since in `amqp://user:s3cr3t` (host forgotten) the "port" is the password.
    public init(url: String) throws {
        self = try AMQPURLParser(url).parse()
        try validate()
    }

    /// The configuration as an AMQP URL whose password part is `shownPassword`, for ``description``.
    func urlString(password shownPassword: String) -> String {
        var text = tls == nil ? "amqp://" : "amqps://"
        text += URLEncoding.encode(username) + ":" + shownPassword + "@"
        if host.contains(":") {
            // Only an IPv6 address has a colon; its zone separator must travel as %25 inside the brackets.
            text += "[" + URLEncoding.encode(host, keeping: ":") + "]"
        } else {
            text += URLEncoding.encode(host)
        }
        text += ":\(port)/" + URLEncoding.encode(virtualHost)

        var parameters: [(name: String, value: String)] = [
            ("heartbeat", "\(heartbeatSeconds)"),
            ("connection_timeout", "\(connectTimeoutMilliseconds)"),
            ("channel_max", "\(channelMax)"),
            ("frame_max", "\(frameMax)"),
        ]
        if authentication != .plain {
            parameters.append(("auth_mechanism", authentication.rawValue))
        }
        if let connectionName {
            parameters.append(("connection_name", connectionName))
        }
        if let tls {
            if let path = tls.caCertificatePath { parameters.append(("cacertfile", path)) }
            if let path = tls.clientCertificatePath { parameters.append(("certfile", path)) }
            if let path = tls.clientKeyPath { parameters.append(("keyfile", path)) }
            // The URL's parameters cannot say everything TLS can: the verification switches win over serverName.
            if !tls.verifyPeer {
                parameters.append(("verify", "verify_none"))
            }
            if tls.verifyPeer && !tls.verifyHostname {
                parameters.append(("server_name_indication", "disable"))
            } else if let serverName = tls.serverName {
                parameters.append(("server_name_indication", serverName))
            }
        }
        let query = parameters.map { "\($0.name)=\(URLEncoding.encode($0.value, keeping: "/"))" }
        return text + "?" + query.joined(separator: "&")
    }
}

/// Reads one AMQP URL into a configuration; see ``AMQPConfiguration/init(url:)`` for the rules.
///
/// It works on UTF-8 bytes rather than `Character`s: every delimiter is ASCII, and a `/` followed by a combining mark
/// would make one `Character` that is not equal to `/`.
private struct AMQPURLParser {
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

    /// Whether `address` is an IPv6 address in RFC 4291 text form (eight groups, one `::` at most, an IPv4 tail).
    private static func isIPv6Address(_ address: Bytes) -> Bool {
        let text = Array(address)
        guard text.count >= 2 else {
            return false
        }
        var doubleColon: Int?
        for index in 0..<(text.count - 1) where text[index] == ASCII.colon && text[index + 1] == ASCII.colon {
            // ":::" matches twice, so it is rejected here too.
            if doubleColon != nil {
                return false
            }
            doubleColon = index
        }
        if let doubleColon {
            guard let head = groupCount(text[..<doubleColon], allowsIPv4Tail: false),
                let tail = groupCount(text[(doubleColon + 2)...], allowsIPv4Tail: true)
            else {
                return false
            }
            return head + tail <= 7
        }
        return groupCount(text[...], allowsIPv4Tail: true) == 8
    }

    /// How many 16-bit groups `part` (colon-separated hex groups, maybe ending in an IPv4 address) holds, or `nil`
    /// when it is malformed.
    private static func groupCount(_ part: ArraySlice<UInt8>, allowsIPv4Tail: Bool) -> Int? {
        if part.isEmpty {
            return 0
        }
        let groups = part.split(separator: ASCII.colon, omittingEmptySubsequences: false)
        var count = 0
        for (position, group) in groups.enumerated() {
            if allowsIPv4Tail && position == groups.count - 1 && group.contains(ASCII.dot) {
                guard isIPv4Address(group) else {
                    return nil
                }
                count += 2
            } else {
                guard (1...4).contains(group.count), group.allSatisfy({ ASCII.hexValue($0) != nil }) else {
                    return nil
                }
                count += 1
            }
        }
        return count
    }

    /// Whether `text` is a dotted-quad IPv4 address without leading zeros, as RFC 3986's `IPv4address` is.
    private static func isIPv4Address(_ text: ArraySlice<UInt8>) -> Bool {
        let octets = text.split(separator: ASCII.dot, omittingEmptySubsequences: false)
        return octets.count == 4
            && octets.allSatisfy { octet in
                guard (1...3).contains(octet.count), octet.allSatisfy(ASCII.isDigit),
                    octet.count == 1 || octet.first != ASCII.zero,
                    let value = Int(String(decoding: octet, as: UTF8.self))
                else {
                    return false
                }
                return value <= 255
            }
    }

    private static func isSchemeSyntax(_ text: Bytes) -> Bool {
        guard let first = text.first, ASCII.isLetter(first) else {
            return false
        }
        return text.allSatisfy {
            ASCII.isLetter($0) || ASCII.isDigit($0) || $0 == ASCII.plus || $0 == ASCII.minus || $0 == ASCII.dot
        }
    }

    /// Whether `scalar` cannot appear in a host name: spaces, controls, and URL delimiters that decoding let in.
    private static func isForbiddenInHostName(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value <= 0x20 || scalar.value == 0x7F || "/?#@[]:%\\\"<>^`{|}".unicodeScalars.contains(scalar)
    }

    /// A character in words, for messages about characters that do not print well.
    private static func named(_ scalar: Unicode.Scalar) -> String {
        scalar.value <= 0x20 || scalar.value == 0x7F
            ? "the control character U+\(String(repeating: "0", count: scalar.value < 0x10 ? 3 : 2))"
                + String(scalar.value, radix: 16, uppercase: true)
            : "'\(scalar)'"
    }

    /// `bytes` as text for an error message, cut short when long.
    private static func shown(_ bytes: Bytes) -> String {
        shown(String(decoding: bytes, as: UTF8.self))
    }

    /// `text` for an error message, cut short when long.
    private static func shown(_ text: String) -> String {
        text.count > 64 ? String(text.prefix(64)) + "…" : text
    }
}

/// Percent-encoding for ``AMQPConfiguration/description``.
private enum URLEncoding {
    /// `text` with every byte outside RFC 3986's unreserved set (and outside `keeping`) written as `%XX`.
    static func encode(_ text: String, keeping extra: String = "") -> String {
        let kept = Set(extra.utf8)
        var result = ""
        result.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            if ASCII.isUnreserved(byte) || kept.contains(byte) {
                result.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                result += "%" + String(byte >> 4, radix: 16, uppercase: true)
                result += String(byte & 0xF, radix: 16, uppercase: true)
            }
        }
        return result
    }
}

/// The ASCII bytes and classes URL parsing needs.
private enum ASCII {
    static let space = UInt8(ascii: " ")
    static let delete: UInt8 = 0x7F
    static let slash = UInt8(ascii: "/")
    static let question = UInt8(ascii: "?")
    static let hash = UInt8(ascii: "#")
    static let at = UInt8(ascii: "@")
    static let colon = UInt8(ascii: ":")
    static let percent = UInt8(ascii: "%")
    static let ampersand = UInt8(ascii: "&")
    static let equals = UInt8(ascii: "=")
    static let openBracket = UInt8(ascii: "[")
    static let closeBracket = UInt8(ascii: "]")
    static let dot = UInt8(ascii: ".")
    static let plus = UInt8(ascii: "+")
    static let minus = UInt8(ascii: "-")
    static let zero = UInt8(ascii: "0")

    static func isDigit(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }

    static func isLetter(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
    }

    /// RFC 3986's unreserved characters: letters, digits, `-`, `.`, `_` and `~`.
    static func isUnreserved(_ byte: UInt8) -> Bool {
        isLetter(byte) || isDigit(byte) || byte == minus || byte == dot || byte == UInt8(ascii: "_")
            || byte == UInt8(ascii: "~")
    }

    static func isUnreserved(_ scalar: Unicode.Scalar) -> Bool {
        scalar.isASCII && isUnreserved(UInt8(scalar.value))
    }

    static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

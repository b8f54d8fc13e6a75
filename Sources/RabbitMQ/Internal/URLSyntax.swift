/// The character-level rules the URL parser checks: IP address literals, scheme and host-name syntax, and how
/// refused input is shown in errors.
extension AMQPURLParser {
    /// Whether `address` is an IPv6 address in RFC 4291 text form (eight groups, one `::` at most, an IPv4 tail).
    static func isIPv6Address(_ address: Bytes) -> Bool {
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
    static func groupCount(_ part: ArraySlice<UInt8>, allowsIPv4Tail: Bool) -> Int? {
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
    static func isIPv4Address(_ text: ArraySlice<UInt8>) -> Bool {
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

    static func isSchemeSyntax(_ text: Bytes) -> Bool {
        guard let first = text.first, ASCII.isLetter(first) else {
            return false
        }
        return text.allSatisfy {
            ASCII.isLetter($0) || ASCII.isDigit($0) || $0 == ASCII.plus || $0 == ASCII.minus || $0 == ASCII.dot
        }
    }

    /// Whether `scalar` cannot appear in a host name: spaces, controls, and URL delimiters that decoding let in.
    static func isForbiddenInHostName(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value <= 0x20 || scalar.value == 0x7F || "/?#@[]:%\\\"<>^`{|}".unicodeScalars.contains(scalar)
    }

    /// A character in words, for messages about characters that do not print well.
    static func named(_ scalar: Unicode.Scalar) -> String {
        scalar.value <= 0x20 || scalar.value == 0x7F
            ? "the control character U+\(String(repeating: "0", count: scalar.value < 0x10 ? 3 : 2))"
                + String(scalar.value, radix: 16, uppercase: true)
            : "'\(scalar)'"
    }

    /// `bytes` as text for an error message, cut short when long.
    static func shown(_ bytes: Bytes) -> String {
        shown(String(decoding: bytes, as: UTF8.self))
    }

    /// `text` for an error message, cut short when long.
    static func shown(_ text: String) -> String {
        text.count > 64 ? String(text.prefix(64)) + "…" : text
}
}

/// Percent-encoding for ``AMQPConfiguration/description``.
enum URLEncoding {
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
enum ASCII {
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

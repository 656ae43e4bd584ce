/// Why a byte sequence is not a JSON document, and where.
public struct JSONParseError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Byte offset of the problem in the input.
    public let offset: Int
    public let reason: String

    public var description: String { "invalid JSON at byte \(offset): \(reason)" }
}

/// Strict RFC 8259 parser over UTF-8 bytes.
public enum JSONParser {
    /// Deepest nesting accepted; deeper input is rejected rather than recursing without bound.
    public static let maxDepth = 64

    public static func parse(_ bytes: some Collection<UInt8>) throws(JSONParseError) -> JSONValue {
        let array = Array(bytes)
        return try array.withUnsafeBufferPointer { (buffer) throws(JSONParseError) -> JSONValue in
            try parse(buffer: buffer)
        }
    }

    public static func parse(_ string: String) throws(JSONParseError) -> JSONValue {
        try parse(Array(string.utf8))
    }

    /// Parses and validates the whole document. Containers nested deeper than
    /// `materializeDepth` (the root container is depth 1) are validated but not built:
    /// they appear as empty containers of their type. Ingest reads only the envelope,
    /// and building the workout's tree there would be wasted work on the hot path.
    /// Duplicate keys are refused in skipped objects too, with the same error, so a
    /// document is accepted or refused the same way at any `materializeDepth`.
    public static func parse(buffer: UnsafeBufferPointer<UInt8>, materializeDepth: Int = .max)
        throws(JSONParseError) -> JSONValue
    {
        var reader = Reader(bytes: buffer, materializeDepth: materializeDepth)
        reader.skipWhitespace()
        let value = try reader.parseValue(depth: 0)
        reader.skipWhitespace()
        guard reader.index == buffer.count else {
            throw reader.error("unexpected data after the document")
        }
        return value
    }
}

private struct Reader {
    let bytes: UnsafeBufferPointer<UInt8>
    let materializeDepth: Int
    var index = 0
    /// Keys (content ranges, quotes excluded) of the skipped objects being read, innermost
    /// last: each skipped object compares a new key with its own keys only.
    var skippedKeys: [SkippedKey] = []
    /// How many entries of `skippedKeys` are in use (the rest are kept for reuse, so the
    /// array is not shrunk and regrown for every skipped object).
    var skippedCount = 0

    /// A key of a skipped object: where its content is, and its ``ShortKey`` when it is
    /// short ASCII without escapes (``ShortKey/long`` otherwise). Two such keys are the
    /// same key exactly when their ShortKeys are equal; the others are compared decoded.
    struct SkippedKey {
        var range: Range<Int>
        var short: ShortKey
    }

    init(bytes: UnsafeBufferPointer<UInt8>, materializeDepth: Int) {
        self.bytes = bytes
        self.materializeDepth = materializeDepth
    }

    func error(_ reason: String) -> JSONParseError {
        JSONParseError(offset: index, reason: reason)
    }

    var atEnd: Bool { index >= bytes.count }

    mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    mutating func parseValue(depth: Int) throws(JSONParseError) -> JSONValue {
        guard !atEnd else { throw error("unexpected end of input") }
        switch bytes[index] {
        case UInt8(ascii: "{"): return try parseObject(depth: depth + 1)
        case UInt8(ascii: "["): return try parseArray(depth: depth + 1)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"):
            try expectLiteral("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try expectLiteral("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try expectLiteral("null")
            return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return try parseNumber()
        default:
            throw error("unexpected character")
        }
    }

    mutating func expectLiteral(_ literal: StaticString) throws(JSONParseError) {
        let count = literal.utf8CodeUnitCount
        guard bytes.count - index >= count else { throw error("unexpected end of input") }
        let start = literal.utf8Start
        for offset in 0..<count where bytes[index + offset] != start[offset] {
            throw error("invalid literal")
        }
        index += count
    }

    mutating func parseObject(depth: Int) throws(JSONParseError) -> JSONValue {
        guard depth <= JSONParser.maxDepth else { throw error("nesting deeper than \(JSONParser.maxDepth)") }
        if depth > materializeDepth {
            try skipContainer(depth: depth)
            return .object(JSONObject())
        }
        index += 1  // {
        var members: [JSONObject.Member] = []
        members.reserveCapacity(8)
        skipWhitespace()
        if !atEnd, bytes[index] == UInt8(ascii: "}") {
            index += 1
            return .object(JSONObject(storage: members))
        }
        // Duplicate keys: while every key is short ASCII, one bit per key slot tells which
        // keys may repeat an earlier one; only those are compared (as strings, like the
        // others: String equality is canonical equivalence, "\u{212A}" == "K").
        var slotBits: UInt64 = 0
        var allShortASCII = true
        while true {
            skipWhitespace()
            guard !atEnd else { throw error("unexpected end of input") }
            guard bytes[index] == UInt8(ascii: "\"") else { throw error("expected a string key") }
            let keyOffset = index
            let (key, shortKey) = try parseKey()
            var mayRepeat = true
            if let shortKey, allShortASCII {
                let bit: UInt64 = 1 << UInt64(shortKey.slot & 63)
                mayRepeat = slotBits & bit != 0
                slotBits |= bit
            } else {
                allShortASCII = false
            }
            if mayRepeat {
                for member in members where member.key == key {
                    throw JSONParseError(offset: keyOffset, reason: "duplicate key \"\(key)\"")
                }
            }
            skipWhitespace()
            guard !atEnd, bytes[index] == UInt8(ascii: ":") else { throw error("expected ':'") }
            index += 1
            skipWhitespace()
            let value = try parseValue(depth: depth)
            members.append(JSONObject.Member(key: key, value: value))
            skipWhitespace()
            guard !atEnd else { throw error("unexpected end of input") }
            switch bytes[index] {
            case UInt8(ascii: ","): index += 1
            case UInt8(ascii: "}"):
                index += 1
                return .object(JSONObject(storage: members))
            default: throw error("expected ',' or '}'")
            }
        }
    }

    mutating func parseArray(depth: Int) throws(JSONParseError) -> JSONValue {
        guard depth <= JSONParser.maxDepth else { throw error("nesting deeper than \(JSONParser.maxDepth)") }
        if depth > materializeDepth {
            try skipContainer(depth: depth)
            return .array([])
        }
        index += 1  // [
        var elements: [JSONValue] = []
        skipWhitespace()
        if !atEnd, bytes[index] == UInt8(ascii: "]") {
            index += 1
            return .array(elements)
        }
        elements.reserveCapacity(4)
        while true {
            skipWhitespace()
            elements.append(try parseValue(depth: depth))
            skipWhitespace()
            guard !atEnd else { throw error("unexpected end of input") }
            switch bytes[index] {
            case UInt8(ascii: ","): index += 1
            case UInt8(ascii: "]"):
                index += 1
                return .array(elements)
            default: throw error("expected ',' or ']'")
            }
        }
    }

    /// A key, and its ``ShortKey`` when it is ASCII, without escapes, and short.
    mutating func parseKey() throws(JSONParseError) -> (String, ShortKey?) {
        let scanned = try scanString()
        if scanned.escaped { return (try parseEscapedString(start: scanned.start), nil) }
        if scanned.ascii, scanned.end - scanned.start <= ShortKey.maxCount {
            let key = shortKey(scanned.start, scanned.end)
            return (WellKnownStrings.string(for: key) ?? makeString(scanned.start, scanned.end), key)
        }
        return (try plainString(scanned), nil)
    }

    /// A string value.
    mutating func parseString() throws(JSONParseError) -> String {
        let scanned = try scanString()
        if scanned.escaped { return try parseEscapedString(start: scanned.start) }
        if scanned.ascii, scanned.end - scanned.start <= ShortKey.maxCount {
            let key = shortKey(scanned.start, scanned.end)
            return WellKnownStrings.string(for: key) ?? makeString(scanned.start, scanned.end)
        }
        return try plainString(scanned)
    }

    /// The string of the bytes `start..<end` (valid UTF-8).
    func makeString(_ start: Int, _ end: Int) -> String {
        String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self)
    }

    /// The string of a scanned string without escapes, its UTF-8 checked unless ASCII.
    func plainString(_ scanned: ScannedString) throws(JSONParseError) -> String {
        if !scanned.ascii {
            guard UTF8Check.isValid(UnsafeBufferPointer(rebasing: bytes[scanned.start..<scanned.end])) else {
                throw JSONParseError(offset: scanned.start, reason: "invalid UTF-8 in string")
            }
        }
        return makeString(scanned.start, scanned.end)
    }

    /// The ``ShortKey`` of the bytes `start..<end` (at most ``ShortKey/maxCount`` of them).
    func shortKey(_ start: Int, _ end: Int) -> ShortKey {
        let count = end - start
        let raw = UnsafeRawPointer(bytes.baseAddress!) + start
        func word(_ offset: Int) -> UInt64 {
            UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
        }
        if count > 16 { return ShortKey(count: count, words: (word(0), word(8), word(count - 8))) }
        if count > 8 { return ShortKey(count: count, words: (word(0), word(count - 8), 0)) }
        if bytes.count - start >= 8 {
            // Eight bytes are readable: keep the string's own.
            let mask: UInt64 = count == 8 ? ~0 : (1 << (8 * UInt64(count))) &- 1
            return ShortKey(count: count, words: (word(0) & mask, 0, 0))
        }
        var head: UInt64 = 0
        for offset in 0..<count { head |= UInt64(bytes[start + offset]) << (8 * UInt64(offset)) }
        return ShortKey(count: count, words: (head, 0, 0))
    }

    /// Where a string's bytes are (after the opening quote, before the closing one), and
    /// whether they are all ASCII; when `escaped`, `end` is its first `\`.
    struct ScannedString {
        var start: Int
        var end: Int
        var ascii: Bool
        var escaped: Bool
    }

    /// Scans a string from its opening quote up to the closing quote (`index` after it), or
    /// up to its first `\` (`index` there).
    @inline(__always)
    mutating func scanString() throws(JSONParseError) -> ScannedString {
        index += 1  // opening quote
        let start = index
        let n = bytes.count
        // Eight bytes at a time until one is `"`, `\` or a control character; the bytes
        // before it are or-ed together to tell ASCII from the rest.
        var seen: UInt64 = 0
        let raw = UnsafeRawPointer(bytes.baseAddress!)
        while n - index >= 8 {
            let word = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: index, as: UInt64.self))
            let special = Self.specialBytes(word)
            if special != 0 {
                let offset = special.trailingZeroBitCount >> 3
                seen |= word & ((1 << (8 * UInt64(offset))) &- 1)
                index += offset
                break
            }
            seen |= word
            index += 8
        }
        while index < n {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                index += 1
                return ScannedString(
                    start: start, end: index - 1, ascii: seen & 0x8080_8080_8080_8080 == 0, escaped: false)
            }
            if byte == UInt8(ascii: "\\") {
                return ScannedString(start: start, end: index, ascii: false, escaped: true)
            }
            if byte < 0x20 { throw error("control character in string") }
            seen |= UInt64(byte)
            index += 1
        }
        throw error("unterminated string")
    }

    /// The high bit of each byte of `x` (little-endian) that is `"`, `\` or below 0x20;
    /// exact up to the first such byte (bits above it may be spurious).
    @inline(__always)
    static func specialBytes(_ x: UInt64) -> UInt64 {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let quote = x ^ (ones &* 0x22)
        let backslash = x ^ (ones &* 0x5C)
        let below = (x &- ones &* 0x20) & ~x
        return (below | ((quote &- ones) & ~quote) | ((backslash &- ones) & ~backslash)) & (ones &* 0x80)
    }

    /// A string with escapes that starts at `start` (after the opening quote), `index` at
    /// its first `\` (what came before it is plain).
    mutating func parseEscapedString(start: Int) throws(JSONParseError) -> String {
        // Slow path: decode escapes into a byte buffer.
        var out = [UInt8](UnsafeBufferPointer(rebasing: bytes[start..<index]))
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "\""):
                index += 1
                let valid = out.withUnsafeBufferPointer { UTF8Check.isValid($0) }
                guard valid else { throw JSONParseError(offset: start, reason: "invalid UTF-8 in string") }
                return String(decoding: out, as: UTF8.self)
            case UInt8(ascii: "\\"):
                index += 1
                guard index < bytes.count else { throw error("unterminated string") }
                let escape = bytes[index]
                index += 1
                switch escape {
                case UInt8(ascii: "\""): out.append(0x22)
                case UInt8(ascii: "\\"): out.append(0x5C)
                case UInt8(ascii: "/"): out.append(0x2F)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try parseHex4()
                    if (0xD800...0xDBFF).contains(scalar) {
                        guard bytes.count - index >= 6, bytes[index] == UInt8(ascii: "\\"),
                            bytes[index + 1] == UInt8(ascii: "u")
                        else { throw error("unpaired surrogate") }
                        index += 2
                        let low = try parseHex4()
                        guard (0xDC00...0xDFFF).contains(low) else { throw error("unpaired surrogate") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00...0xDFFF).contains(scalar) {
                        throw error("unpaired surrogate")
                    }
                    guard let unicode = Unicode.Scalar(scalar) else { throw error("invalid escape") }
                    out.append(contentsOf: String(Character(unicode)).utf8)
                default:
                    throw error("invalid escape")
                }
            default:
                if byte < 0x20 { throw error("control character in string") }
                out.append(byte)
                index += 1
            }
        }
        throw error("unterminated string")
    }

    /// Validates one container without building it: the same grammar, string and
    /// number rules and depth limit as the building parser.
    mutating func skipContainer(depth: Int) throws(JSONParseError) {
        let isObject = bytes[index] == UInt8(ascii: "{")
        let keysBase = skippedCount
        defer { skippedCount = keysBase }
        let close = isObject ? UInt8(ascii: "}") : UInt8(ascii: "]")
        index += 1
        skipWhitespace()
        if !atEnd, bytes[index] == close {
            index += 1
            return
        }
        while true {
            skipWhitespace()
            if isObject {
                guard !atEnd else { throw error("unexpected end of input") }
                guard bytes[index] == UInt8(ascii: "\"") else { throw error("expected a string key") }
                let keyStart = index
                let plain = try skipString()
                let key = (keyStart + 1)..<(index - 1)
                let short =
                    plain && key.count <= ShortKey.maxCount ? shortKey(key.lowerBound, key.upperBound) : ShortKey.long
                var earlier = keysBase
                while earlier < skippedCount {
                    let other = skippedKeys[earlier]
                    let same =
                        short.count >= 0 && other.short.count >= 0
                        ? short == other.short : try sameKey(other.range, key)
                    if same {
                        index = keyStart
                        throw JSONParseError(offset: keyStart, reason: "duplicate key \"\(try parseString())\"")
                    }
                    earlier += 1
                }
                if skippedCount < skippedKeys.count {
                    skippedKeys[skippedCount] = SkippedKey(range: key, short: short)
                } else {
                    if skippedKeys.isEmpty { skippedKeys.reserveCapacity(32) }
                    skippedKeys.append(SkippedKey(range: key, short: short))
                }
                skippedCount += 1
                skipWhitespace()
                guard !atEnd, bytes[index] == UInt8(ascii: ":") else { throw error("expected ':'") }
                index += 1
                skipWhitespace()
            }
            try skipValue(depth: depth)
            skipWhitespace()
            guard !atEnd else { throw error("unexpected end of input") }
            if bytes[index] == UInt8(ascii: ",") {
                index += 1
            } else if bytes[index] == close {
                index += 1
                return
            } else {
                throw error(isObject ? "expected ',' or '}'" : "expected ',' or ']'")
            }
        }
    }

    mutating func skipValue(depth: Int) throws(JSONParseError) {
        guard !atEnd else { throw error("unexpected end of input") }
        switch bytes[index] {
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            guard depth + 1 <= JSONParser.maxDepth else { throw error("nesting deeper than \(JSONParser.maxDepth)") }
            try skipContainer(depth: depth + 1)
        case UInt8(ascii: "\""): try skipString()
        case UInt8(ascii: "t"): try expectLiteral("true")
        case UInt8(ascii: "f"): try expectLiteral("false")
        case UInt8(ascii: "n"): try expectLiteral("null")
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): _ = try parseNumber()
        default: throw error("unexpected character")
        }
    }

    /// Whether two already validated key strings are the same key, as the building parser
    /// decides it (String equality of the decoded keys). Plain ASCII keys compare by bytes.
    mutating func sameKey(_ a: Range<Int>, _ b: Range<Int>) throws(JSONParseError) -> Bool {
        func plain(_ range: Range<Int>) -> Bool {
            for i in range where bytes[i] == UInt8(ascii: "\\") || bytes[i] >= 0x80 { return false }
            return true
        }
        let aPlain = plain(a)
        let bPlain = plain(b)
        if aPlain && bPlain {
            guard a.count == b.count else { return false }
            for offset in 0..<a.count where bytes[a.lowerBound + offset] != bytes[b.lowerBound + offset] {
                return false
            }
            return true
        }
        let saved = index
        defer { index = saved }
        index = a.lowerBound - 1
        let first = try parseString()
        index = b.lowerBound - 1
        let second = try parseString()
        return first == second
    }

    /// A string validated (escapes, control characters, UTF-8) but not built; true when it
    /// is plain ASCII without escapes.
    @discardableResult
    mutating func skipString() throws(JSONParseError) -> Bool {
        let start = index
        let scanned = try scanString()
        guard scanned.escaped else {
            if !scanned.ascii {
                guard UTF8Check.isValid(UnsafeBufferPointer(rebasing: bytes[scanned.start..<scanned.end])) else {
                    // The string's first byte, as when the string is built (not its quote).
                    throw JSONParseError(offset: start + 1, reason: "invalid UTF-8 in string")
                }
            }
            return scanned.ascii
        }
        try skipEscapedString(start: start)
        return false
    }

    /// The rest of a skipped string that has escapes: `start` is its opening quote, `index`
    /// its first `\` (the bytes before it are not yet UTF-8 checked).
    mutating func skipEscapedString(start: Int) throws(JSONParseError) {
        var runStart = start + 1
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") {
                guard UTF8Check.isValid(UnsafeBufferPointer(rebasing: bytes[runStart..<index])) else {
                    // The string's first byte, as when the string is built (not its quote).
                    throw JSONParseError(offset: start + 1, reason: "invalid UTF-8 in string")
                }
                index += 1
                if byte == UInt8(ascii: "\"") { return }
                guard index < bytes.count else { throw error("unterminated string") }
                let escape = bytes[index]
                index += 1
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                    UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    break
                case UInt8(ascii: "u"):
                    let scalar = try parseHex4()
                    if (0xD800...0xDBFF).contains(scalar) {
                        guard bytes.count - index >= 6, bytes[index] == UInt8(ascii: "\\"),
                            bytes[index + 1] == UInt8(ascii: "u")
                        else { throw error("unpaired surrogate") }
                        index += 2
                        guard (0xDC00...0xDFFF).contains(try parseHex4()) else { throw error("unpaired surrogate") }
                    } else if (0xDC00...0xDFFF).contains(scalar) {
                        throw error("unpaired surrogate")
                    }
                default:
                    throw error("invalid escape")
                }
                runStart = index
                continue
            }
            if byte < 0x20 { throw error("control character in string") }
            index += 1
        }
        throw error("unterminated string")
    }

    mutating func parseHex4() throws(JSONParseError) -> UInt32 {
        guard bytes.count - index >= 4 else { throw error("unterminated string") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            let digit: UInt32
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(byte - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(byte - UInt8(ascii: "A") + 10)
            default: throw error("invalid \\u escape")
            }
            value = value << 4 | digit
            index += 1
        }
        return value
    }

    mutating func parseNumber() throws(JSONParseError) -> JSONValue {
        let start = index
        var isInteger = true
        if bytes[index] == UInt8(ascii: "-") { index += 1 }
        guard !atEnd else { throw error("unexpected end of input") }
        if bytes[index] == UInt8(ascii: "0") {
            index += 1
        } else if isDigit(bytes[index]) {
            while !atEnd, isDigit(bytes[index]) { index += 1 }
        } else {
            throw error("invalid number")
        }
        if !atEnd, bytes[index] == UInt8(ascii: ".") {
            isInteger = false
            index += 1
            guard !atEnd, isDigit(bytes[index]) else { throw error("invalid number") }
            while !atEnd, isDigit(bytes[index]) { index += 1 }
        }
        if !atEnd, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            isInteger = false
            index += 1
            if !atEnd, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard !atEnd, isDigit(bytes[index]) else { throw error("invalid number") }
            while !atEnd, isDigit(bytes[index]) { index += 1 }
        }
        if isInteger, index - start <= 18 {
            // Up to 18 digits always fit in Int64: no String needed.
            var value: Int64 = 0
            var i = start
            let negative = bytes[i] == UInt8(ascii: "-")
            if negative { i += 1 }
            while i < index {
                value = value &* 10 &+ Int64(bytes[i] &- UInt8(ascii: "0"))
                i += 1
            }
            return .int(negative ? -value : value)
        }
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
        if isInteger, let int = Int64(text) { return .int(int) }
        guard let double = Double(text), double.isFinite else {
            throw JSONParseError(offset: start, reason: "number out of range")
        }
        return .double(double)
    }

    @inline(__always) func isDigit(_ byte: UInt8) -> Bool {
        byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
    }
}

/// Strict UTF-8 validation (RFC 3629: no overlong forms, no surrogates, at most
/// U+10FFFF), with a fast path for ASCII runs.
enum UTF8Check {
    static func isValid(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        var i = 0
        let n = bytes.count
        while i < n {
            let b0 = bytes[i]
            if b0 < 0x80 {
                i += 1
                continue
            }
            func continuation(_ k: Int) -> Bool { i + k < n && bytes[i + k] & 0xC0 == 0x80 }
            switch b0 {
            case 0xC2...0xDF:
                guard continuation(1) else { return false }
                i += 2
            case 0xE0...0xEF:
                guard continuation(1), continuation(2) else { return false }
                let b1 = bytes[i + 1]
                if b0 == 0xE0 && b1 < 0xA0 { return false }  // overlong
                if b0 == 0xED && b1 > 0x9F { return false }  // surrogate
                i += 3
            case 0xF0...0xF4:
                guard continuation(1), continuation(2), continuation(3) else { return false }
                let b1 = bytes[i + 1]
                if b0 == 0xF0 && b1 < 0x90 { return false }  // overlong
                if b0 == 0xF4 && b1 > 0x8F { return false }  // above U+10FFFF
                i += 4
            default:
                return false
            }
        }
        return true
    }
}

/// An ASCII string of at most 24 bytes, identified by its bytes: the length and three
/// words that cover every byte (overlapping, or zero-padded when shorter).
struct ShortKey: Equatable {
    static let maxCount = 24
    /// The key of other strings, which are compared as strings instead.
    static let long = ShortKey(count: -1, words: (0, 0, 0))

    var count: Int
    var w0: UInt64
    var w1: UInt64
    var w2: UInt64

    init(count: Int, words: (UInt64, UInt64, UInt64)) {
        self.count = count
        (w0, w1, w2) = words
    }

    /// The key of `text`, when it is ASCII and short enough.
    init?(_ text: StaticString) {
        let count = text.utf8CodeUnitCount
        guard count <= Self.maxCount else { return nil }
        var bytes = [UInt8](repeating: 0, count: 24)
        for offset in 0..<count {
            let byte = text.utf8Start[offset]
            guard byte < 0x80 else { return nil }
            bytes[offset] = byte
        }
        func word(_ offset: Int) -> UInt64 {
            (0..<8).reduce(0) { $0 | UInt64(bytes[offset + $1]) << (8 * UInt64($1)) }
        }
        switch count {
        case 17...: self.init(count: count, words: (word(0), word(8), word(count - 8)))
        case 9...16: self.init(count: count, words: (word(0), word(count - 8), 0))
        default: self.init(count: count, words: (word(0), 0, 0))
        }
    }

    /// A slot number in 0..<256.
    var slot: Int {
        let mixed =
            (w0 &* 0x9E37_79B9_7F4A_7C15) ^ (w1 &* 0xC2B2_AE3D_27D4_EB4F) ^ (w2 &* 0x1656_67B1_9E37_79F9)
            ^ UInt64(count)
        return Int(truncatingIfNeeded: (mixed &* 0xFF51_AFD7_ED55_8CCD) >> 56)
    }
}

/// Keys and values that recur in the documents the gateway parses (webhook envelopes and
/// sessions, SPEC §2 and §3): the parser copies these strings instead of building (and
/// validating) them again for every occurrence. Only a cache: any other string is built
/// from its bytes, with the same value.
enum WellKnownStrings {
    static let all: [StaticString] = [
        // envelope (SPEC §2)
        "type", "timestamp", "data", "session", "id", "athleteId", "revision", "sessionType", "date",
        "startTime", "title", "description", "athlete", "workout", "deleted", "ENDURANCE",
        "session.created", "session.updated", "session.deleted",
        // athlete and workout (SPEC §3)
        "ftpWatts", "maxHr", "thresholdHr", "sport", "steps", "repeat", "kind", "name", "notes", "duration",
        "target", "secondaryTarget", "seconds", "meters", "zone", "min", "max", "minBpm", "maxBpm",
        "minWatts", "maxWatts", "minRpm", "maxRpm", "minSecondsPerKm", "maxSecondsPerKm",
        "minSecondsPer100m", "maxSecondsPer100m",
        "RUN", "BIKE", "SWIM", "WARMUP", "ACTIVE", "INTERVAL", "RECOVERY", "REST", "COOLDOWN", "TIME",
        "DISTANCE", "OPEN", "HEART_RATE", "HEART_RATE_ZONE", "POWER", "POWER_ZONE", "POWER_PERCENT_FTP",
        "PACE", "CADENCE",
    ]

    struct Entry {
        var key: ShortKey
        var string: String
    }

    /// The entries of ``all``, by ``slots``.
    static let entries: [Entry] = build().entries
    /// Open addressing over 256 slots: entry `i + 1` of ``entries``, or 0 for an empty slot.
    static let slots: [UInt8] = build().slots

    static func build() -> (entries: [Entry], slots: [UInt8]) {
        var slots = [UInt8](repeating: 0, count: 256)
        var entries: [Entry] = []
        for text in all {
            guard let key = ShortKey(text), !entries.contains(where: { $0.key == key }) else { continue }
            entries.append(Entry(key: key, string: text.description))
            var slot = key.slot
            while slots[slot] != 0 { slot = (slot + 1) & 255 }
            slots[slot] = UInt8(entries.count)
        }
        return (entries, slots)
    }

    /// The string of `key` when it is a well-known one.
    @inline(__always)
    static func string(for key: ShortKey) -> String? {
        var slot = key.slot
        while true {
            let entry = Int(slots[slot])
            if entry == 0 { return nil }
            if entries[entry - 1].key == key { return entries[entry - 1].string }
            slot = (slot + 1) & 255
        }
    }
}

extension JSONValue {
    /// Compact serialization, members in their stored order.
    public var serialized: String {
        String(decoding: serializedBytes, as: UTF8.self)
    }

    /// Compact serialization as UTF-8 bytes (for HTTP bodies).
    public var serializedBytes: [UInt8] {
        var writer = JSONByteWriter(capacity: 4096)
        writer.value(self)
        return writer.finish()
    }

    public func write(into out: inout String) {
        out += serialized
    }

    public func write(into out: inout [UInt8]) {
        var writer = JSONByteWriter(capacity: 1024)
        writer.value(self)
        writer.withBytes { out.append(contentsOf: $0) }
    }
}

/// Compact JSON written straight into one growable byte buffer, without building a
/// ``JSONValue`` first: the exporters stream their bodies through it.
///
/// Commas are placed by the writer: `key` starts a member, every value (scalar or
/// container) is either a member's value or an array element.
///
/// ```swift
/// var writer = JSONByteWriter(capacity: 256)
/// writer.beginObject()
/// writer.key("name")
/// writer.string(title)
/// writer.key("steps")
/// writer.beginArray()
/// writer.integer(1)
/// writer.endArray()
/// writer.endObject()
/// let bytes = writer.finish()  // {"name":"…","steps":[1]}
/// ```
///
/// Keys given as `StaticString` are written as they are: they must need no escaping
/// (the exporters' member names are plain ASCII).
public struct JSONByteWriter: ~Copyable {
    @usableFromInline var start: UnsafeMutablePointer<UInt8>
    @usableFromInline var count = 0
    @usableFromInline var capacity: Int
    /// Whether the next member or element needs a comma before it.
    @usableFromInline var needsComma = false

    /// An empty writer with room for `capacity` bytes (it grows as needed).
    public init(capacity: Int = 1024) {
        self.capacity = Swift.max(capacity, 64)
        start = .allocate(capacity: self.capacity)
    }

    deinit { start.deallocate() }

    /// The number of bytes written so far.
    public var byteCount: Int { count }

    /// Calls `body` with the bytes written so far (valid only during the call).
    public func withBytes<R, E: Error>(_ body: (UnsafeBufferPointer<UInt8>) throws(E) -> R) throws(E) -> R {
        try body(UnsafeBufferPointer(start: start, count: count))
    }

    /// The bytes written, as an array.
    public consuming func finish() -> [UInt8] {
        Array(UnsafeBufferPointer(start: start, count: count))
    }

    // MARK: structure

    public mutating func beginObject() {
        let p = reserve(2)
        p[0] = UInt8(ascii: ",")
        p[needsComma ? 1 : 0] = UInt8(ascii: "{")
        count += needsComma ? 2 : 1
        needsComma = false
    }

    public mutating func endObject() {
        reserve(1).pointee = UInt8(ascii: "}")
        count += 1
        needsComma = true
    }

    public mutating func beginArray() {
        let p = reserve(2)
        p[0] = UInt8(ascii: ",")
        p[needsComma ? 1 : 0] = UInt8(ascii: "[")
        count += needsComma ? 2 : 1
        needsComma = false
    }

    public mutating func endArray() {
        reserve(1).pointee = UInt8(ascii: "]")
        count += 1
        needsComma = true
    }

    /// `"name":` (with the comma before it when it is not the first member). `name` is
    /// written as is: it must need no escaping.
    @inlinable @inline(__always)
    public mutating func key(_ name: StaticString) {
        let first = reserve(name.utf8CodeUnitCount + 4)
        let p = Self.quotedLiteral(name, at: afterComma(first))
        p.pointee = UInt8(ascii: ":")
        count += p + 1 - first
        needsComma = false
    }

    /// `"name":"value"`, both written as they are (see ``key(_:)`` and ``plainString(_:)``).
    @inlinable @inline(__always)
    public mutating func member(_ name: StaticString, _ value: StaticString) {
        let first = reserve(name.utf8CodeUnitCount + value.utf8CodeUnitCount + 6)
        let colon = Self.quotedLiteral(name, at: afterComma(first))
        colon.pointee = UInt8(ascii: ":")
        count += Self.quotedLiteral(value, at: colon + 1) - first
        needsComma = true
    }

    /// `"name":` and an integer.
    @inlinable @inline(__always)
    public mutating func member(_ name: StaticString, integer value: Int) {
        key(name)
        digits(Int64(value))
        needsComma = true
    }

    /// `"name":` and a number (see ``number(_:)``).
    @inlinable @inline(__always)
    public mutating func member(_ name: StaticString, number value: Double) {
        key(name)
        numberText(value)
        needsComma = true
    }

    /// `"name":` and a string, escaped as needed.
    @inlinable @inline(__always)
    public mutating func member(_ name: StaticString, string value: String) {
        key(name)
        quoted(value)
        needsComma = true
    }

    /// `"name":` for any string key (escaped as needed).
    public mutating func dynamicKey(_ name: String) {
        comma()
        quoted(name)
        reserve(1).pointee = UInt8(ascii: ":")
        count += 1
        needsComma = false
    }

    /// `"name":` and the string `first + separator + second`, escaped as needed, without
    /// building it (`separator` must need no escaping).
    public mutating func member(
        _ name: StaticString, string first: String, _ separator: StaticString, _ second: String
    ) {
        key(name)
        reserve(1).pointee = UInt8(ascii: "\"")
        count += 1
        escaped(first)
        let n = separator.utf8CodeUnitCount
        Self.copy(separator.utf8Start, n, to: reserve(n))
        count += n
        escaped(second)
        reserve(1).pointee = UInt8(ascii: "\"")
        count += 1
        needsComma = true
    }

    // MARK: values

    /// A string value, escaped as needed.
    public mutating func string(_ value: String) {
        comma()
        quoted(value)
        needsComma = true
    }

    /// A string value written as is: it must need no escaping (enum names, units).
    @inlinable @inline(__always)
    public mutating func plainString(_ value: StaticString) {
        let first = reserve(value.utf8CodeUnitCount + 3)
        count += Self.quotedLiteral(value, at: afterComma(first)) - first
        needsComma = true
    }

    public mutating func integer(_ value: Int64) {
        comma()
        digits(value)
        needsComma = true
    }

    @inlinable
    public mutating func integer(_ value: Int) { integer(Int64(value)) }

    /// A number: an integer literal when it is whole and below 10^15 in magnitude (`600`,
    /// not `600.0`), else Swift's shortest round-trip form (`0.95`, `1e+20`). The same
    /// text as a ``JSONValue/double(_:)`` gets.
    public mutating func number(_ value: Double) {
        comma()
        numberText(value)
        needsComma = true
    }

    @usableFromInline
    mutating func numberText(_ value: Double) {
        if value.rounded(.towardZero) == value, Swift.abs(value) < 1e15 {
            digits(Int64(value))
        } else {
            var text = value.description
            text.withUTF8 { utf8 in
                reserve(utf8.count).update(from: utf8.baseAddress!, count: utf8.count)
                count += utf8.count
            }
        }
    }

    public mutating func bool(_ value: Bool) {
        literal(value ? "true" : "false")
    }

    public mutating func null() {
        literal("null")
    }

    /// Any parsed or built value.
    public mutating func value(_ value: JSONValue) {
        switch value {
        case .null: null()
        case .bool(let b): bool(b)
        case .int(let i): integer(i)
        case .double(let d): number(d)
        case .string(let s): string(s)
        case .array(let elements):
            beginArray()
            elements.withUnsafeBufferPointer { elements in
                for element in elements { self.value(element) }
            }
            endArray()
        case .object(let object):
            beginObject()
            object.storage.withUnsafeBufferPointer { members in
                for member in members {
                    dynamicKey(member.key)
                    self.value(member.value)
                }
            }
            endObject()
        }
    }

    // MARK: bytes

    /// Makes room for `extra` more bytes and returns where they go.
    @inlinable @inline(__always)
    mutating func reserve(_ extra: Int) -> UnsafeMutablePointer<UInt8> {
        if count + extra > capacity { grow(extra) }
        return start + count
    }

    @usableFromInline
    mutating func grow(_ extra: Int) {
        let newCapacity = Swift.max(capacity * 2, count + extra)
        let newStart = UnsafeMutablePointer<UInt8>.allocate(capacity: newCapacity)
        newStart.moveInitialize(from: start, count: count)
        start.deallocate()
        start = newStart
        capacity = newCapacity
    }

    /// `p`, or past a `,` written there when a member or element came before.
    @inlinable @inline(__always)
    func afterComma(_ p: UnsafeMutablePointer<UInt8>) -> UnsafeMutablePointer<UInt8> {
        guard needsComma else { return p }
        p.pointee = UInt8(ascii: ",")
        return p + 1
    }

    /// Writes `"text"` (as is: it must need no escaping) at `p`; returns the position after it.
    @inlinable @inline(__always)
    static func quotedLiteral(_ text: StaticString, at p: UnsafeMutablePointer<UInt8>) -> UnsafeMutablePointer<UInt8> {
        let n = text.utf8CodeUnitCount
        p.pointee = UInt8(ascii: "\"")
        copy(text.utf8Start, n, to: p + 1)
        p[n + 1] = UInt8(ascii: "\"")
        return p + n + 2
    }

    /// Copies `n` bytes; short copies (the keys and enum names) without a call to memcpy.
    @inlinable @inline(__always)
    static func copy(_ source: UnsafePointer<UInt8>, _ n: Int, to target: UnsafeMutablePointer<UInt8>) {
        let from = UnsafeRawPointer(source)
        let to = UnsafeMutableRawPointer(target)
        switch n {
        case 8...16:
            // Two overlapping words cover the bytes (every read stays inside them).
            let head = from.loadUnaligned(as: UInt64.self)
            let tail = from.loadUnaligned(fromByteOffset: n - 8, as: UInt64.self)
            to.storeBytes(of: head, as: UInt64.self)
            to.storeBytes(of: tail, toByteOffset: n - 8, as: UInt64.self)
        case 4..<8:
            let head = from.loadUnaligned(as: UInt32.self)
            let tail = from.loadUnaligned(fromByteOffset: n - 4, as: UInt32.self)
            to.storeBytes(of: head, as: UInt32.self)
            to.storeBytes(of: tail, toByteOffset: n - 4, as: UInt32.self)
        case 0..<4:
            for offset in 0..<n { target[offset] = source[offset] }
        default:
            target.update(from: source, count: n)
        }
    }

    @inline(__always)
    mutating func comma() {
        guard needsComma else { return }
        reserve(1).pointee = UInt8(ascii: ",")
        count += 1
    }

    mutating func literal(_ text: StaticString) {
        comma()
        let n = text.utf8CodeUnitCount
        reserve(n).update(from: text.utf8Start, count: n)
        count += n
        needsComma = true
    }

    /// The decimal digits of `value`, with a `-` when negative.
    @usableFromInline
    mutating func digits(_ value: Int64) {
        // At most 20 characters: a sign and 19 digits.
        let p = reserve(20)
        var magnitude = value.magnitude
        var digits = 1
        var rest = magnitude / 10
        while rest > 0 {
            digits += 1
            rest /= 10
        }
        var q = p
        if value < 0 {
            q.pointee = UInt8(ascii: "-")
            q += 1
        }
        var end = q + digits
        count += end - p
        repeat {
            end -= 1
            end.pointee = UInt8(ascii: "0") + UInt8(magnitude % 10)
            magnitude /= 10
        } while magnitude > 0
    }

    /// `s` quoted: `"` and `\` and control characters escaped, everything else (UTF-8
    /// included) copied as is.
    @usableFromInline
    mutating func quoted(_ s: String) {
        reserve(1).pointee = UInt8(ascii: "\"")
        count += 1
        escaped(s)
        reserve(1).pointee = UInt8(ascii: "\"")
        count += 1
    }

    /// The bytes of `s` between the quotes of a JSON string.
    mutating func escaped(_ s: String) {
        if let done: Void = s.utf8.withContiguousStorageIfAvailable({ escaped(utf8: $0) }) { return done }
        var s = s
        s.withUTF8 { escaped(utf8: $0) }
    }

    mutating func escaped(utf8: UnsafeBufferPointer<UInt8>) {
        // Worst case: every byte escaped as \u00XX.
        var p = reserve(utf8.count * 6)
        let first = p
        if Self.isClean(utf8) {
            if let base = utf8.baseAddress { Self.copy(base, utf8.count, to: p) }
            p += utf8.count
        } else {
            for byte in utf8 {
                switch byte {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"):
                    p[0] = UInt8(ascii: "\\")
                    p[1] = byte
                    p += 2
                case 0x0A:
                    p[0] = UInt8(ascii: "\\")
                    p[1] = UInt8(ascii: "n")
                    p += 2
                case 0x0D:
                    p[0] = UInt8(ascii: "\\")
                    p[1] = UInt8(ascii: "r")
                    p += 2
                case 0x09:
                    p[0] = UInt8(ascii: "\\")
                    p[1] = UInt8(ascii: "t")
                    p += 2
                case ..<0x20:
                    let hex: StaticString = "0123456789abcdef"
                    p[0] = UInt8(ascii: "\\")
                    p[1] = UInt8(ascii: "u")
                    p[2] = UInt8(ascii: "0")
                    p[3] = UInt8(ascii: "0")
                    p[4] = hex.utf8Start[Int(byte >> 4)]
                    p[5] = hex.utf8Start[Int(byte & 0x0F)]
                    p += 6
                default:
                    p.pointee = byte
                    p += 1
                }
            }
        }
        count += p - first
    }

    /// Whether no byte needs escaping (`"`, `\`, below 0x20); eight bytes at a time.
    static func isClean(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let base = bytes.baseAddress else { return true }
        let n = bytes.count
        if n < 8 {
            for byte in bytes where byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") {
                return false
            }
            return true
        }
        let raw = UnsafeRawPointer(base)
        var offset = 0
        while true {
            // The last word overlaps the previous one rather than reading past the end.
            let word = raw.loadUnaligned(fromByteOffset: Swift.min(offset, n - 8), as: UInt64.self)
            if hasSpecialByte(word) { return false }
            offset += 8
            if offset >= n { return true }
        }
    }

    /// SWAR: whether a byte of `x` is below 0x20, `"` or `\` (exact as a yes/no answer).
    @inline(__always)
    static func hasSpecialByte(_ x: UInt64) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        func hasZero(_ v: UInt64) -> Bool { (v &- ones) & ~v & highs != 0 }
        let below = (x &- ones &* 0x20) & ~x & highs != 0
        return below || hasZero(x ^ (ones &* 0x22)) || hasZero(x ^ (ones &* 0x5C))
    }
}

extension JSONValue {
    /// Appends `s` as a quoted JSON string.
    public static func writeString(_ s: String, into out: inout String) {
        var bytes: [UInt8] = []
        writeString(s, into: &bytes)
        out += String(decoding: bytes, as: UTF8.self)
    }

    /// Appends `s` as a quoted JSON string: `"` and `\` and control characters escaped,
    /// everything else (UTF-8 included) copied as is.
    public static func writeString(_ s: String, into out: inout [UInt8]) {
        var writer = JSONByteWriter(capacity: s.utf8.count + 2)
        writer.string(s)
        writer.withBytes { out.append(contentsOf: $0) }
    }
}

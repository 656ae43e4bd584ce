extension JSONValue {
    /// Compact serialization, members in their stored order.
    public var serialized: String {
        String(decoding: serializedBytes, as: UTF8.self)
    }

    /// Compact serialization as UTF-8 bytes (for HTTP bodies).
    public var serializedBytes: [UInt8] {
        var sink = JSONByteSink(capacity: 4096)
        defer { sink.deallocate() }
        sink.write(self)
        return Array(sink.bytes)
    }

    public func write(into out: inout String) {
        out += serialized
    }

    public func write(into out: inout [UInt8]) {
        var sink = JSONByteSink(capacity: 1024)
        defer { sink.deallocate() }
        sink.write(self)
        out.append(contentsOf: sink.bytes)
    }
}

/// A growable byte buffer for the serializer: room is checked once per value, not per byte.
struct JSONByteSink {
    private var start: UnsafeMutablePointer<UInt8>
    private var count = 0
    private var capacity: Int

    init(capacity: Int) {
        self.capacity = Swift.max(capacity, 16)
        start = .allocate(capacity: self.capacity)
    }

    func deallocate() { start.deallocate() }

    var bytes: UnsafeBufferPointer<UInt8> { UnsafeBufferPointer(start: start, count: count) }

    /// Makes room for `extra` more bytes and returns where they go.
    @inline(__always)
    mutating func reserve(_ extra: Int) -> UnsafeMutablePointer<UInt8> {
        if count + extra > capacity { grow(extra) }
        return start + count
    }

    private mutating func grow(_ extra: Int) {
        let newCapacity = Swift.max(capacity * 2, count + extra)
        let newStart = UnsafeMutablePointer<UInt8>.allocate(capacity: newCapacity)
        newStart.moveInitialize(from: start, count: count)
        start.deallocate()
        start = newStart
        capacity = newCapacity
    }

    @inline(__always)
    mutating func byte(_ value: UInt8) {
        reserve(1).pointee = value
        count += 1
    }

    mutating func literal(_ text: StaticString) {
        let n = text.utf8CodeUnitCount
        reserve(n).update(from: text.utf8Start, count: n)
        count += n
    }

    mutating func write(_ value: JSONValue) {
        switch value {
        case .null: literal("null")
        case .bool(let b): literal(b ? "true" : "false")
        case .int(let i): integer(i)
        case .double(let d):
            if d.rounded(.towardZero) == d, abs(d) < 1e15 {
                integer(Int64(d))
            } else {
                var text = d.description
                text.withUTF8 { utf8 in
                    reserve(utf8.count).update(from: utf8.baseAddress!, count: utf8.count)
                    count += utf8.count
                }
            }
        case .string(let s): string(s)
        case .array(let elements):
            byte(UInt8(ascii: "["))
            elements.withUnsafeBufferPointer { elements in
                for index in elements.indices {
                    if index > 0 { byte(UInt8(ascii: ",")) }
                    write(elements[index])
                }
            }
            byte(UInt8(ascii: "]"))
        case .object(let object):
            byte(UInt8(ascii: "{"))
            object.members.withUnsafeBufferPointer { members in
                for index in members.indices {
                    if index > 0 { byte(UInt8(ascii: ",")) }
                    string(members[index].key)
                    byte(UInt8(ascii: ":"))
                    write(members[index].value)
                }
            }
            byte(UInt8(ascii: "}"))
        }
    }

    mutating func integer(_ value: Int64) {
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
    mutating func string(_ s: String) {
        if let done: Void = s.utf8.withContiguousStorageIfAvailable({ string(utf8: $0) }) { return done }
        var s = s
        s.withUTF8 { string(utf8: $0) }
    }

    mutating func string(utf8: UnsafeBufferPointer<UInt8>) {
        // Worst case: every byte escaped as \u00XX, plus the quotes.
        var p = reserve(utf8.count * 6 + 2)
        let first = p
        p.pointee = UInt8(ascii: "\"")
        p += 1
        if Self.isClean(utf8) {
            if let base = utf8.baseAddress { p.update(from: base, count: utf8.count) }
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
        p.pointee = UInt8(ascii: "\"")
        p += 1
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
        var sink = JSONByteSink(capacity: s.utf8.count + 2)
        defer { sink.deallocate() }
        sink.string(s)
        out.append(contentsOf: sink.bytes)
    }
}

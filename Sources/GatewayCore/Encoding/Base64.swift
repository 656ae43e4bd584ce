/// Standard base64 (RFC 4648 §4, with padding). Small and allocation-light, for
/// webhook secrets and signatures, where the input is short and untrusted.
public enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    private static let decodeTable: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (i, c) in alphabet.enumerated() { table[Int(c)] = UInt8(i) }
        return table
    }()

    /// The two letters of every 12-bit value, as they lie in memory (first letter first).
    private static let pairTable: [UInt16] = {
        let letters = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        return (0..<4096).map { value in
            let pair = (letters[value >> 6], letters[value & 63])
            return withUnsafeBytes(of: pair) { $0.loadUnaligned(as: UInt16.self) }
        }
    }()

    /// Length of the padded encoding of `count` bytes.
    public static func encodedCount(_ count: Int) -> Int { (count + 2) / 3 * 4 }

    public static func encode(_ bytes: some Collection<UInt8>) -> String {
        let input = Array(bytes)
        return input.withUnsafeBufferPointer { buffer in
            String(unsafeUninitializedCapacity: encodedCount(buffer.count)) { out in
                guard let start = out.baseAddress else { return 0 }
                return encode(buffer, into: start) - start
            }
        }
    }

    /// Writes the padded encoding of `input` at `out` (room for `encodedCount` bytes)
    /// and returns the end: for callers that build a larger buffer around it.
    public static func encode(_ input: UnsafeBufferPointer<UInt8>, into out: UnsafeMutablePointer<UInt8>)
        -> UnsafeMutablePointer<UInt8>
    {
        let letters: StaticString = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
        let table = letters.utf8Start
        var p = out
        var i = 0
        let n = input.count
        // Six bytes at a time (while eight are readable): four 12-bit groups, two letters each.
        if n >= 8, let base = input.baseAddress {
            let raw = UnsafeRawPointer(base)
            pairTable.withUnsafeBufferPointer { pairs in
                while i + 8 <= n {
                    let v = UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: i, as: UInt64.self))
                    let o = UnsafeMutableRawPointer(p)
                    o.storeBytes(of: pairs[Int(v >> 52)], as: UInt16.self)
                    o.storeBytes(of: pairs[Int(v >> 40 & 0xFFF)], toByteOffset: 2, as: UInt16.self)
                    o.storeBytes(of: pairs[Int(v >> 28 & 0xFFF)], toByteOffset: 4, as: UInt16.self)
                    o.storeBytes(of: pairs[Int(v >> 16 & 0xFFF)], toByteOffset: 6, as: UInt16.self)
                    p += 8
                    i += 6
                }
            }
        }
        while i + 3 <= n {
            let v = UInt32(input[i]) << 16 | UInt32(input[i + 1]) << 8 | UInt32(input[i + 2])
            p[0] = table[Int(v >> 18 & 63)]
            p[1] = table[Int(v >> 12 & 63)]
            p[2] = table[Int(v >> 6 & 63)]
            p[3] = table[Int(v & 63)]
            p += 4
            i += 3
        }
        if n - i == 1 {
            let v = UInt32(input[i]) << 16
            p[0] = table[Int(v >> 18 & 63)]
            p[1] = table[Int(v >> 12 & 63)]
            p[2] = UInt8(ascii: "=")
            p[3] = UInt8(ascii: "=")
            p += 4
        } else if n - i == 2 {
            let v = UInt32(input[i]) << 16 | UInt32(input[i + 1]) << 8
            p[0] = table[Int(v >> 18 & 63)]
            p[1] = table[Int(v >> 12 & 63)]
            p[2] = table[Int(v >> 6 & 63)]
            p[3] = UInt8(ascii: "=")
            p += 4
        }
        return p
    }

    /// base64url without padding (RFC 4648 §5), as PKCE and OAuth state use it.
    public static func encodeURL(_ bytes: some Collection<UInt8>) -> String {
        var out = Array(encode(bytes).utf8)
        while out.last == UInt8(ascii: "=") { out.removeLast() }
        for i in out.indices {
            if out[i] == UInt8(ascii: "+") {
                out[i] = UInt8(ascii: "-")
            } else if out[i] == UInt8(ascii: "/") {
                out[i] = UInt8(ascii: "_")
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes padded or unpadded standard base64; nil on any invalid character
    /// or impossible length.
    public static func decode(_ text: some StringProtocol) -> [UInt8]? {
        var utf8 = Array(text.utf8)
        while utf8.last == UInt8(ascii: "=") { utf8.removeLast() }
        if utf8.count % 4 == 1 { return nil }
        var out = [UInt8]()
        out.reserveCapacity(utf8.count * 3 / 4)
        var accumulator: UInt32 = 0
        var bits = 0
        for c in utf8 {
            let v = decodeTable[Int(c)]
            if v == 0xFF { return nil }
            accumulator = accumulator << 6 | UInt32(v)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
            }
        }
        return out
    }
}

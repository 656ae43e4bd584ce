import GatewayCore
import Testing

/// The wide (six bytes at a time) base64 encoder against a bit-by-bit reference.
struct Base64Tests {
    static func reference(_ bytes: [UInt8]) -> String {
        let letters = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
        var bits: [Bool] = []
        for byte in bytes { for shift in (0..<8).reversed() { bits.append(byte >> UInt8(shift) & 1 == 1) } }
        var out = ""
        var index = 0
        while index < bits.count {
            var value = 0
            for k in 0..<6 { value = value << 1 | (index + k < bits.count && bits[index + k] ? 1 : 0) }
            out.append(letters[value])
            index += 6
        }
        while out.count % 4 != 0 { out.append("=") }
        return out
    }

    @Test func everyLengthMatchesTheReference() {
        var state: UInt64 = 0x1234_5678_9ABC_DEF0
        for length in 0...70 {
            let bytes = (0..<length).map { _ -> UInt8 in
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                return UInt8(truncatingIfNeeded: state >> 56)
            }
            let encoded = Base64.encode(bytes)
            #expect(encoded == Self.reference(bytes), "length \(length)")
            #expect(Base64.decode(encoded) == bytes)
        }
        #expect(Base64.encode(Array("foobar".utf8)) == "Zm9vYmFy")
        #expect(Base64.encode([0xFF, 0xFE, 0xFD, 0xFC, 0xFB, 0xFA, 0xF9, 0xF8]) == "//79/Pv6+fg=")
    }
}

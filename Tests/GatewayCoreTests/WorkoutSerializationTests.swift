import GatewayCore
import Testing

/// The serializer the exporters use for Garmin bodies and Wahoo plans: byte-identical to a
/// straightforward reference, whatever the string length (the escape scan reads 8 bytes
/// at a time) and wherever the character to escape is.
struct WorkoutSerializationTests {
    /// The reference: one byte at a time, the escapes of RFC 8259 used by the gateway.
    static func reference(_ value: JSONValue) -> String {
        switch value {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .int(let i): return String(i)
        case .double(let d):
            if d.rounded(.towardZero) == d, abs(d) < 1e15 { return String(Int64(d)) }
            return "\(d)"
        case .string(let s): return quoted(s)
        case .array(let elements): return "[" + elements.map(reference).joined(separator: ",") + "]"
        case .object(let object):
            return "{" + object.members.map { quoted($0.key) + ":" + reference($0.value) }.joined(separator: ",") + "}"
        }
    }

    static func quoted(_ s: String) -> String {
        var out: [UInt8] = [UInt8(ascii: "\"")]
        for byte in s.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out += [UInt8(ascii: "\\"), UInt8(ascii: "\"")]
            case UInt8(ascii: "\\"): out += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
            case 0x0A: out += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
            case 0x0D: out += [UInt8(ascii: "\\"), UInt8(ascii: "r")]
            case 0x09: out += [UInt8(ascii: "\\"), UInt8(ascii: "t")]
            case ..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out += [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0")]
                out += [hex[Int(byte >> 4)], hex[Int(byte & 0x0F)]]
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
        return String(decoding: out, as: UTF8.self)
    }

    @Test func stringsOfEveryLengthWithEveryEscapeAnywhere() {
        let specials: [Character] = ["\"", "\\", "\n", "\r", "\t", "\u{01}", "\u{1F}", " ", "~", "é", "😀"]
        for length in 0...40 {
            let plain = String(repeating: "a", count: length)
            var cases = [plain]
            for special in specials {
                for position in [0, length / 2, length] {
                    var text = Array(plain)
                    text.insert(special, at: position)
                    cases.append(String(text))
                }
            }
            for text in cases {
                let value = JSONValue.string(text)
                #expect(value.serialized == Self.reference(value), "\(Array(text.utf8))")
                var bytes: [UInt8] = [1, 2]
                JSONValue.writeString(text, into: &bytes)
                #expect(bytes == [1, 2] + Array(Self.quoted(text).utf8))
            }
        }
    }

    @Test func numbersAndNesting() {
        var object = JSONObject(capacity: 4)
        object.append(key: "ints", value: .array([0, 9, 10, -1, -10, .int(.max), .int(.min), .int(1_000_000)]))
        object.append(key: "doubles", value: .array([1.5, -0.25, 1e20, 3.0, -2.0, 0.1]))
        object.append(key: "empty", value: .object(JSONObject()))
        object.append(key: "nested", value: .array([[], [nil, true, false], ["k\u{7F}": "v\u{00}"]]))
        let value = JSONValue.object(object)
        #expect(value.serialized == Self.reference(value))
        #expect(value.serializedBytes == Array(Self.reference(value).utf8))
        var out: [UInt8] = Array("x".utf8)
        value.write(into: &out)
        #expect(out == Array(("x" + Self.reference(value)).utf8))
        // A large document grows the buffer several times.
        let big = JSONValue.array(Array(repeating: value, count: 500))
        #expect(big.serializedBytes == Array(Self.reference(big).utf8))
    }

    @Test func appendKeepsOrderLikeTheSubscript() {
        var appended = JSONObject(capacity: 2)
        appended.append(key: "b", value: 1)
        appended.append(key: "a", value: 2)
        var assigned = JSONObject()
        assigned["b"] = 1
        assigned["a"] = 2
        #expect(appended == assigned)
        #expect(appended.keys == ["b", "a"])
    }
}

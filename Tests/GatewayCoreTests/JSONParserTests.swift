import Testing

@testable import GatewayCore

@Test func parsesNestedDocument() throws {
    let value = try JSONParser.parse(#"{"a":[1,-2.5,"x\n\u00e9\ud83d\ude00",true,false,null],"b":{"c":{}}}"#)
    #expect(value["a"]?.arrayValue?.count == 6)
    #expect(value["a"]?.arrayValue?[0] == .int(1))
    #expect(value["a"]?.arrayValue?[1] == .double(-2.5))
    #expect(value["a"]?.arrayValue?[2] == .string("x\né😀"))
    #expect(value["b"]?["c"] == .object(JSONObject()))
}

@Test(arguments: [
    "", "{", "[1,]", "{\"a\":1,}", "{\"a\" 1}", "01", "1.", "-", "tru", "\"abc", "{\"a\":1}x", "[\"\\x\"]",
    "\"\\ud800\"", "\"a\u{01}\"", "{\"a\":1,\"a\":2}", "NaN", "1e999",
])
func rejectsInvalidJSON(_ text: String) {
    #expect(throws: JSONParseError.self) { try JSONParser.parse(text) }
}

@Test func rejectsInvalidUTF8() {
    #expect(throws: JSONParseError.self) { try JSONParser.parse([0x22, 0xC3, 0x28, 0x22]) }
}

@Test func rejectsDeepNesting() {
    let deep = String(repeating: "[", count: 65) + String(repeating: "]", count: 65)
    #expect(throws: JSONParseError.self) { try JSONParser.parse(deep) }
    let ok = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
    #expect((try? JSONParser.parse(ok)) != nil)
}

@Test func integersStayExact() throws {
    #expect(try JSONParser.parse("9007199254740993") == .int(9_007_199_254_740_993))
    #expect(try JSONParser.parse("2432232314") == .int(2_432_232_314))
    #expect(try JSONParser.parse("3.0").intValue == 3)
    #expect(try JSONParser.parse("1e2") == .double(100))
}

@Test func serializationRoundTrips() throws {
    let text = #"{"s":"q\"\\\n\t\u0001","n":[1,2.5,null,true],"o":{"k":"v"}}"#
    let value = try JSONParser.parse(text)
    #expect(try JSONParser.parse(value.serialized) == value)
    #expect(value.serialized == #"{"s":"q\"\\\n\t\u0001","n":[1,2.5,null,true],"o":{"k":"v"}}"#)
}

private func parse(_ text: String, depth: Int) throws(JSONParseError) -> JSONValue {
    let bytes = Array(text.utf8)
    return try bytes.withUnsafeBufferPointer { (b) throws(JSONParseError) -> JSONValue in
        try JSONParser.parse(buffer: b, materializeDepth: depth)
    }
}

@Test func shallowParseKeepsTypesAndValidatesTheRest() throws {
    let text = #"{"a":{"b":{"c":[1,{"d":"\u00e9"}],"e":"x"}},"f":2}"#
    let value = try parse(text, depth: 2)
    #expect(value["f"] == .int(2))
    #expect(value["a"]?["b"] == .object(JSONObject()))
    let deeper = try parse(text, depth: 3)
    #expect(deeper["a"]?["b"]?["e"] == .string("x"))
    #expect(deeper["a"]?["b"]?["c"] == .array([]))
    #expect(try parse(text, depth: .max) == (try JSONParser.parse(text)))
}

@Test(arguments: [
    #"{"a":{"b":[1,]}}"#, #"{"a":{"b":"\x"}}"#, #"{"a":{"b":01}}"#, #"{"a":{"b":"\ud800"}}"#, #"{"a":{"b" 1}}"#,
    #"{"a":{"b":tru}}"#, #"{"a":{"b":"unterminated}}"#, #"{"a":[{"b":1}"#,
])
func shallowParseRejectsInvalidSkippedParts(_ text: String) {
    #expect(throws: JSONParseError.self) { try parse(text, depth: 1) }
}

@Test func shallowParseRejectsInvalidUTF8InSkippedStrings() {
    let bytes: [UInt8] = Array(#"{"a":{"b":""#.utf8) + [0xED, 0xA0, 0x80] + Array(#""}}"#.utf8)
    #expect(throws: JSONParseError.self) {
        try bytes.withUnsafeBufferPointer { (b) throws(JSONParseError) in
            _ = try JSONParser.parse(buffer: b, materializeDepth: 1)
        }
    }
}

@Test func shallowParseKeepsTheDepthLimit() {
    let deep = "{\"a\":" + String(repeating: "[", count: 64) + String(repeating: "]", count: 64) + "}"
    #expect(throws: JSONParseError.self) { try parse(deep, depth: 1) }
}

@Test func utf8Validation() {
    func valid(_ bytes: [UInt8]) -> Bool { bytes.withUnsafeBufferPointer { UTF8Check.isValid($0) } }
    #expect(valid(Array("héllo wörld 😀 ✓".utf8)))
    #expect(!valid([0xC0, 0x80]))  // overlong NUL
    #expect(!valid([0xE0, 0x80, 0x80]))  // overlong
    #expect(!valid([0xED, 0xA0, 0x80]))  // surrogate
    #expect(!valid([0xF4, 0x90, 0x80, 0x80]))  // above U+10FFFF
    #expect(!valid([0xE2, 0x82]))  // truncated
    #expect(!valid([0x80]))  // lone continuation
    #expect(valid([0xF4, 0x8F, 0xBF, 0xBF]))  // U+10FFFF
}

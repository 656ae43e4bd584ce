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

import Testing

@testable import GatewayCore

// Inputs that libFuzzer found (docs/TESTING.md), each also in Tests/fuzz/corpus.

/// The body of Tests/fuzz/corpus/FuzzWebhook/regress-utf8-error-offset (what follows its
/// three header lines): a string whose first byte, at offset 8, is not UTF-8.
private let invalidUTF8Body: [UInt8] =
    Array(#"[[[[[[[""#.utf8) + [0x87, 0x87, 0x87, 0x87, 0x87, 0x87] + Array(#"[""\#n"#.utf8)

@Test func invalidUTF8IsReportedAtTheSameByteWhetherTheStringIsBuiltOrSkipped() {
    let expected = JSONParseError(offset: 8, reason: "invalid UTF-8 in string")
    // The string is in the 7th array: depth 7 and more build it, shallower parses skip it
    // (ingest builds depth 3).
    for depth in [1, 3, 7, 8, Int.max] {
        #expect(throws: expected) {
            try invalidUTF8Body.withUnsafeBufferPointer { try JSONParser.parse(buffer: $0, materializeDepth: depth) }
        }
    }
    #expect(throws: PlanEventError.malformedJSON("invalid JSON at byte 8: invalid UTF-8 in string")) {
        try invalidUTF8Body.withUnsafeBufferPointer { (body) throws(PlanEventError) in try PlanEvent.decode(body) }
    }
}

/// A duplicate key inside the workout (below the depth ingest builds) is refused at
/// ingest exactly as the full parse refuses it, so a 202 never leads to a push that
/// cannot read its own event.
@Test(arguments: [
    (#"{"a":1,"b":{"c":[{"d":1,"d":2}]}}"#, 24, "d"),
    (#"{"a":{"b":{"K":1,"\u004b":2}}}"#, 17, "K"),
    (#"{"a":{"b":{"K":1,"\u212A":2}}}"#, 17, "\u{212A}"),
    // Longer than a ShortKey, plain non-ASCII against an escape, and a near miss first.
    (
        #"{"a":{"b":{"a_rather_long_key_of_thirty_bytes":1,"x":2,"a_rather_long_key_of_thirty_bytes":3}}}"#, 55,
        "a_rather_long_key_of_thirty_bytes"
    ),
    (#"{"a":{"b":{"café":1,"cafe\u0301":2}}}"#, 21, "café"),
    (#"{"a":{"b":{"steps_twelve":1,"steps_twelvf":2,"steps_twelve":3}}}"#, 45, "steps_twelve"),
])
func duplicateKeysAreRefusedAtAnyDepth(document: String, offset: Int, key: String) throws {
    let bytes = Array(document.utf8)
    for depth in [0, 1, 2, 3, Int.max] {
        let error = #expect(throws: JSONParseError.self) {
            try bytes.withUnsafeBufferPointer { try JSONParser.parse(buffer: $0, materializeDepth: depth) }
        }
        #expect(error?.reason == "duplicate key \"\(key)\"", "depth \(depth)")
        #expect(error?.offset == offset, "depth \(depth)")
    }
    // Different keys that only look alike are not duplicates.
    let distinct = Array(#"{"a":{"b":{"k":1,"K":2,"kk":3,"\u006b\u006b\u006b":4}}}"#.utf8)
    for depth in [0, 1, 2, Int.max] {
        _ = try distinct.withUnsafeBufferPointer { try JSONParser.parse(buffer: $0, materializeDepth: depth) }
    }
}

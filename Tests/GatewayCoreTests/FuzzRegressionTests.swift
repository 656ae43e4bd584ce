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

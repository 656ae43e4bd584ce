// Fuzz target: the webhook ingest front door (docs/TESTING.md).
//
// Input: `<webhook-id>\n<webhook-timestamp>\n<webhook-signature>\n<body>`. A header whose
// line is missing is absent (nil); everything after the third newline is the body.
import FuzzSupport
import GatewayCore
import GatewayCrypto

/// An obviously-test HMAC key; the seed corpus is signed with it (docs/TESTING.md).
let fuzzSecretKey = Array("gatewayd-fuzz-test-secret".utf8)
/// The clock the verifier sees; seeds use timestamps near it. Tolerance: 300 s.
let fuzzNow: Int64 = 1_800_000_000
let fuzzTolerance: Int64 = 300

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzWebhookEntry(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    fuzzWebhook(UnsafeBufferPointer(start: data, count: size))
    return 0
}

func fuzzWebhook(_ input: UnsafeBufferPointer<UInt8>) {
    var headers: [String?] = [nil, nil, nil]
    var bodyStart = 0
    for index in 0..<3 {
        guard let newline = input[bodyStart...].firstIndex(of: UInt8(ascii: "\n")) else { break }
        headers[index] = String(decoding: input[bodyStart..<newline], as: UTF8.self)
        bodyStart = newline + 1
    }
    if headers[2] == nil { bodyStart = input.count }
    let body = UnsafeBufferPointer(rebasing: input[bodyStart...])
    checkEnvelope(body)
    checkSignature(id: headers[0], timestamp: headers[1], signature: headers[2], body: body)
}

/// `PlanEvent.decode` on the raw body (lazy below depth 3, as ingest does) agrees with
/// decoding the fully parsed document: same event, same invalid_event error, or both
/// malformed_json.
func checkEnvelope(_ body: UnsafeBufferPointer<UInt8>) {
    let lazy: Result<PlanEvent, PlanEventError> = Result { () throws(PlanEventError) in
        try PlanEvent.decode(body)
    }
    let full: Result<PlanEvent, PlanEventError>
    do {
        let root = try JSONParser.parse(buffer: body)
        full = Result { () throws(PlanEventError) in try PlanEvent.decode(root) }
    } catch {
        full = .failure(.malformedJSON(error.description))
    }
    switch (lazy, full) {
    case (.failure(.malformedJSON), .failure(.malformedJSON)):
        // Both refuse the JSON; the message may differ when a string has several faults
        // (the skipping parser checks UTF-8 before escapes, the building one after).
        break
    default:
        fuzzCheck(lazy == full, "lazy decode \(lazy) != full decode \(full)")
    }
    if case .success(.sessionUpsert(let upsert)) = lazy {
        fuzzCheck(!upsert.id.isEmpty && !upsert.athleteID.isEmpty && upsert.revision >= 0, "bad upsert \(upsert)")
    }
}

/// The verifier never crashes on any header values, and its answer matches the Standard
/// Webhooks rules computed independently here: after the fuzzed signature header gets a
/// correct `v1,` entry appended, the only possible refusals are missing headers and a bad
/// or stale timestamp.
func checkSignature(id: String?, timestamp: String?, signature: String?, body: UnsafeBufferPointer<UInt8>) {
    let verifier: WebhookVerifier
    let mac: HMACSHA256
    do {
        verifier = try WebhookVerifier(secrets: [WebhookSecret(key: fuzzSecretKey)], toleranceSeconds: fuzzTolerance)
        mac = try HMACSHA256(key: fuzzSecretKey)
    } catch {
        fatalError("fuzz secret refused: \(error)")
    }
    let raw = UnsafeRawBufferPointer(body)
    let result = verifier.verify(id: id, timestamp: timestamp, signature: signature, body: raw, now: fuzzNow)
    if result == nil {
        fuzzCheck(id?.isEmpty == false && timestamp?.isEmpty == false, "accepted without id or timestamp")
    }

    let expected: WebhookVerificationError?
    if id?.isEmpty ?? true {
        expected = .missingHeader("webhook-id")
    } else if timestamp?.isEmpty ?? true {
        expected = .missingHeader("webhook-timestamp")
    } else if let timestamp, timestamp.utf8.count > 18 || !timestamp.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) {
        expected = .invalidTimestamp
    } else if let timestamp, let seconds = Int64(timestamp), abs(fuzzNow - seconds) > fuzzTolerance {
        expected = .timestampOutOfTolerance
    } else {
        expected = nil
    }
    let signed = Array("\(id ?? "").\(timestamp ?? "").".utf8) + Array(body)
    let good = "v1," + Base64.encode(mac.authenticate(signed))
    let withGood = (signature.map { $0 + " " } ?? "") + good
    let second = verifier.verify(id: id, timestamp: timestamp, signature: withGood, body: raw, now: fuzzNow)
    fuzzCheck(
        second == expected,
        "with a valid entry appended: \(String(describing: second)), expected \(String(describing: expected))")
}

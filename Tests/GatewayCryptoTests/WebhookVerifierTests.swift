import GatewayCore
import Testing

@testable import GatewayCrypto

private let vectorSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
private let vectorID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
private let vectorTimestamp: Int64 = 1_614_265_330
private let vectorBody = Array(#"{"test": 2432232314}"#.utf8)
private let vectorSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

private func verify(
    _ verifier: WebhookVerifier, id: String? = vectorID, timestamp: String? = String(vectorTimestamp),
    signature: String? = vectorSignature, body: [UInt8] = vectorBody, now: Int64 = vectorTimestamp
) -> WebhookVerificationError? {
    body.withUnsafeBytes { verifier.verify(id: id, timestamp: timestamp, signature: signature, body: $0, now: now) }
}

private func randomSecret() -> String { "whsec_" + Base64.encode(SecureRandom.bytes(32)) }

@Test func publicTestVectorSigns() throws {
    let signer = try WebhookSigner(secret: WebhookSecret(vectorSecret))
    #expect(signer.signature(id: vectorID, timestamp: vectorTimestamp, body: vectorBody) == vectorSignature)
}

@Test func publicTestVectorVerifies() throws {
    let verifier = try WebhookVerifier(secrets: [WebhookSecret(vectorSecret)], toleranceSeconds: 300)
    #expect(verify(verifier) == nil)
}

@Test func anyOfSeveralSecretsVerifies() throws {
    let secrets = try [WebhookSecret(randomSecret()), WebhookSecret(vectorSecret), WebhookSecret(randomSecret())]
    let verifier = try WebhookVerifier(secrets: secrets, toleranceSeconds: 300)
    #expect(verify(verifier) == nil)
    let other = try WebhookVerifier(secrets: [WebhookSecret(randomSecret())], toleranceSeconds: 300)
    #expect(verify(other) == .invalidSignature)
}

@Test func toleranceAppliesOnBothSides() throws {
    let verifier = try WebhookVerifier(secrets: [WebhookSecret(vectorSecret)], toleranceSeconds: 300)
    #expect(verify(verifier, now: vectorTimestamp + 300) == nil)
    #expect(verify(verifier, now: vectorTimestamp - 300) == nil)
    #expect(verify(verifier, now: vectorTimestamp + 301) == .timestampOutOfTolerance)
    #expect(verify(verifier, now: vectorTimestamp - 301) == .timestampOutOfTolerance)
}

@Test func tamperedBodyOrIdFails() throws {
    let verifier = try WebhookVerifier(secrets: [WebhookSecret(vectorSecret)], toleranceSeconds: 300)
    #expect(verify(verifier, body: Array(#"{"test": 2432232315}"#.utf8)) == .invalidSignature)
    #expect(verify(verifier, id: vectorID + "x") == .invalidSignature)
}

@Test func malformedHeaders() throws {
    let verifier = try WebhookVerifier(secrets: [WebhookSecret(vectorSecret)], toleranceSeconds: 300)
    #expect(verify(verifier, id: nil) == .missingHeader("webhook-id"))
    #expect(verify(verifier, id: "") == .missingHeader("webhook-id"))
    #expect(verify(verifier, timestamp: nil) == .missingHeader("webhook-timestamp"))
    #expect(verify(verifier, signature: nil) == .missingHeader("webhook-signature"))
    #expect(verify(verifier, timestamp: "16142653x0") == .invalidTimestamp)
    #expect(verify(verifier, timestamp: "-1614265330") == .invalidTimestamp)
    #expect(verify(verifier, timestamp: "99999999999999999999999") == .invalidTimestamp)
    #expect(verify(verifier, signature: "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=") == .invalidSignature)
    #expect(verify(verifier, signature: "v1,!!!notbase64") == .invalidSignature)
    #expect(verify(verifier, signature: "v1") == .invalidSignature)
    #expect(verify(verifier, signature: "v1,AAAA") == .invalidSignature)
}

@Test func unknownVersionsAreSkippedAmongValidOnes() throws {
    let verifier = try WebhookVerifier(secrets: [WebhookSecret(vectorSecret)], toleranceSeconds: 300)
    #expect(verify(verifier, signature: "v2,abc v1,AAAA " + vectorSignature + " v1a,zzz") == nil)
}

@Test func secretParsing() {
    #expect(throws: CryptoError.self) { try WebhookSecret("whsec_") }
    #expect(throws: CryptoError.self) { try WebhookSecret("whsec_***") }
}

@Test func base64RoundTrip() {
    for n in 0..<40 {
        let bytes = SecureRandom.bytes(n)
        #expect(Base64.decode(Base64.encode(bytes)) == bytes)
    }
    #expect(Base64.encode(Array("foobar".utf8)) == "Zm9vYmFy")
    #expect(Base64.encode(Array("fooba".utf8)) == "Zm9vYmE=")
    #expect(Base64.decode("Zm9vYg==") == Array("foob".utf8))
    #expect(Base64.decode("Zm9vY") == nil)
}

@Test func constantTimeEquals() {
    #expect(ConstantTime.equals([1, 2, 3], [1, 2, 3]))
    #expect(!ConstantTime.equals([1, 2, 3], [1, 2, 4]))
    #expect(!ConstantTime.equals([1, 2, 3], [1, 2]))
    #expect(ConstantTime.equals("key", "key"))
}

@Test func base64URLHasNoPaddingAndURLSafeLetters() {
    // 0xfb 0xff → "+/8=" in standard base64.
    #expect(Base64.encode([0xFB, 0xFF]) == "+/8=")
    #expect(Base64.encodeURL([0xFB, 0xFF]) == "-_8")
    #expect(Base64.encodedCount(5) == 8)
}

import GatewayCore
import GatewayCrypto
import Testing

@Suite struct TokenBoxTests {
    let keyA = [UInt8](repeating: 0x11, count: 32)
    let keyB = (0..<32).map { UInt8($0) }

    @Test func roundTrip() throws {
        let box = try TokenBox(current: keyA)
        for text in ["", "a", "access-token-äöü-🙂", String(repeating: "x", count: 5000)] {
            let sealed = box.seal(text, context: "athlete-1/garmin/access")
            #expect(try box.open(sealed, context: "athlete-1/garmin/access") == text)
            if text.count > 100 { #expect(!sealed.contains(text)) }
        }
    }

    @Test func formatAndKeyID() throws {
        let box = try TokenBox(current: keyA)
        let sealed = box.seal("token", context: "c")
        let parts = sealed.split(separator: ".", omittingEmptySubsequences: false)
        #expect(parts.count == 3)
        #expect(parts[0] == "v1")
        #expect(parts[1] == Substring(box.currentKeyID))
        #expect(box.currentKeyID.count == 8)
        #expect(box.currentKeyID.allSatisfy { "0123456789abcdef".contains($0) })
        // keyid = first 8 hex digits of SHA-256(key).
        let digest = SHA256.hash(keyA)
        let hex = digest.prefix(4).map { String($0, radix: 16) }.map { $0.count == 1 ? "0" + $0 : $0 }.joined()
        #expect(box.currentKeyID == hex)
        #expect(TokenBox.keyID(of: sealed) == box.currentKeyID)
        #expect(TokenBox.keyID(of: "garbage") == nil)
        let payload = try #require(Base64.decode(parts[2]))
        #expect(payload.count == 12 + 5 + 16)
        // A fresh nonce each time.
        #expect(box.seal("token", context: "c") != sealed)
    }

    @Test func tamperingIsDetected() throws {
        let box = try TokenBox(current: keyA)
        let sealed = box.seal("refresh-token-value", context: "ctx")
        let parts = sealed.split(separator: ".").map(String.init)
        let payload = try #require(Base64.decode(parts[2]))
        for index in [0, 11, 12, payload.count - 17, payload.count - 1] {
            var changed = payload
            changed[index] ^= 0x01
            let forged = "v1.\(parts[1]).\(Base64.encode(changed))"
            #expect(throws: CryptoError.self) { try box.open(forged, context: "ctx") }
        }
        // Truncated and malformed values.
        #expect(throws: CryptoError.self) {
            try box.open("v1.\(parts[1]).\(Base64.encode(payload.prefix(20)))", context: "ctx")
        }
        #expect(throws: CryptoError.self) { try box.open("v2.\(parts[1]).\(parts[2])", context: "ctx") }
        #expect(throws: CryptoError.self) { try box.open("v1.\(parts[1]).%%%", context: "ctx") }
        #expect(throws: CryptoError.self) { try box.open("nonsense", context: "ctx") }
    }

    @Test func wrongContextFails() throws {
        let box = try TokenBox(current: keyA)
        let sealed = box.seal("token", context: "athlete-1/garmin/access")
        #expect(throws: CryptoError.self) { try box.open(sealed, context: "athlete-2/garmin/access") }
        #expect(throws: CryptoError.self) { try box.open(sealed, context: "") }
    }

    @Test func rotation() throws {
        let old = try TokenBox(current: keyA)
        let sealed = old.seal("token", context: "c")
        let rotated = try TokenBox(current: keyB, previous: [keyA])
        #expect(try rotated.open(sealed, context: "c") == "token")
        #expect(TokenBox.keyID(of: sealed) == old.currentKeyID)
        #expect(rotated.currentKeyID != old.currentKeyID)
        // Re-sealed values carry the new key id and the old box cannot open them.
        let resealed = rotated.seal("token", context: "c")
        #expect(TokenBox.keyID(of: resealed) == rotated.currentKeyID)
        #expect(throws: CryptoError.unknownKey(rotated.currentKeyID)) { try old.open(resealed, context: "c") }
    }

    @Test func unknownKeyIDFails() throws {
        let sealed = try TokenBox(current: keyA).seal("token", context: "c")
        let other = try TokenBox(current: keyB)
        #expect(throws: CryptoError.unknownKey(TokenBox.keyID(of: sealed)!)) { try other.open(sealed, context: "c") }
    }

    @Test func keysMustBe32Bytes() {
        #expect(throws: CryptoError.self) { try TokenBox(current: [UInt8](repeating: 1, count: 16)) }
        #expect(throws: CryptoError.self) { try TokenBox(current: keyA, previous: [[1, 2, 3]]) }
    }

    @Test func pkceRFC7636AppendixB() {
        // RFC 7636 Appendix B (also what Python's hashlib + urlsafe_b64encode give).
        #expect(
            PKCE.challenge(for: "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
                == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
    }

    @Test func verifierAndStateShape() {
        let alphabet = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        var seen = Set<String>()
        for _ in 0..<50 {
            let verifier = PKCE.makeVerifier()
            let state = PKCE.makeState()
            // 32 random bytes → 43 base64url characters, no padding (RFC 7636 §4.1: 43...128).
            #expect(verifier.count == 43)
            #expect(state.count == 43)
            #expect(verifier.allSatisfy { alphabet.contains($0) })
            #expect(state.allSatisfy { alphabet.contains($0) })
            #expect(PKCE.challenge(for: verifier).count == 43)
            seen.insert(verifier)
            seen.insert(state)
        }
        #expect(seen.count == 100)
    }
}

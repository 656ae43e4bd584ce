/// AES-256-GCM sealing of provider tokens at rest (SPEC §7). The sealed form carries
/// a key id, so the key can be rotated: `open` accepts any configured key, `seal`
/// uses the current one.
public struct TokenBox: Sendable {
    /// - Parameters:
    ///   - current: the 32-byte key that seals.
    ///   - previous: older 32-byte keys still accepted by `open` (rotation).
    public init(current: [UInt8], previous: [[UInt8]] = []) throws(CryptoError) {
        fatalError("TokenBox: not implemented yet")
    }

    /// Key id of the current key (first 8 hex digits of SHA-256 of the key).
    public var currentKeyID: String { fatalError("TokenBox: not implemented yet") }

    /// `v1.<keyid>.<base64(nonce 12 | ciphertext | tag 16)>`; `context` (e.g.
    /// "athlete/provider/field") is bound as additional authenticated data.
    public func seal(_ plaintext: String, context: String) -> String {
        fatalError("TokenBox: not implemented yet")
    }

    /// The plaintext, or an error if the key id is unknown, the tag does not verify,
    /// or the context differs.
    public func open(_ sealed: String, context: String) throws(CryptoError) -> String {
        fatalError("TokenBox: not implemented yet")
    }

    /// Key id of a sealed value, without opening it (for re-encryption after rotation).
    public static func keyID(of sealed: String) -> String? { fatalError("TokenBox: not implemented yet") }
}

/// PKCE (RFC 7636) S256 and OAuth state values.
public enum PKCE {
    /// 43–128 characters of base64url, from 32 random bytes.
    public static func makeVerifier() -> String { fatalError("PKCE: not implemented yet") }
    /// base64url(SHA-256(verifier)), no padding.
    public static func challenge(for verifier: String) -> String { fatalError("PKCE: not implemented yet") }
    /// 256-bit random state, base64url, no padding.
    public static func makeState() -> String { fatalError("PKCE: not implemented yet") }
}

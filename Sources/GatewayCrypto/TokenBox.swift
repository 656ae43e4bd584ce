private import COpenSSL
import GatewayCore

/// AES-256-GCM sealing of provider tokens at rest (SPEC §7). The sealed form carries
/// a key id, so the key can be rotated: `open` accepts any configured key, `seal`
/// uses the current one.
public struct TokenBox: Sendable {
    private static let version = "v1"
    private static let keySize = 32
    private static let nonceSize = 12
    private static let tagSize = 16

    private let current: [UInt8]
    public let currentKeyID: String
    /// Every key `open` accepts, by key id (the current one included).
    private let keys: [String: [UInt8]]

    /// - Parameters:
    ///   - current: the 32-byte key that seals.
    ///   - previous: older 32-byte keys still accepted by `open` (rotation).
    public init(current: [UInt8], previous: [[UInt8]] = []) throws(CryptoError) {
        guard current.count == TokenBox.keySize else {
            throw CryptoError.invalidSecret("token key must be 32 bytes, got \(current.count)")
        }
        var keys: [String: [UInt8]] = [:]
        for key in previous {
            guard key.count == TokenBox.keySize else {
                throw CryptoError.invalidSecret("previous token key must be 32 bytes, got \(key.count)")
            }
            keys[TokenBox.keyID(for: key)] = key
        }
        self.current = current
        currentKeyID = TokenBox.keyID(for: current)
        keys[currentKeyID] = current
        self.keys = keys
    }

    /// First 8 hex digits of SHA-256 of the key.
    private static func keyID(for key: [UInt8]) -> String {
        let hex = Array("0123456789abcdef")
        return String(SHA256.hash(key).prefix(4).flatMap { [hex[Int($0 >> 4)], hex[Int($0 & 15)]] })
    }

    /// `v1.<keyid>.<base64(nonce 12 | ciphertext | tag 16)>`; `context` (e.g.
    /// "athlete/provider/field") is bound as additional authenticated data.
    public func seal(_ plaintext: String, context: String) -> String {
        let nonce = SecureRandom.bytes(TokenBox.nonceSize)
        guard
            let (ciphertext, tag) = AESGCM.seal(
                Array(plaintext.utf8), key: current, nonce: nonce, aad: Array(context.utf8))
        else { preconditionFailure("AES-256-GCM encryption failed") }
        return "\(TokenBox.version).\(currentKeyID).\(Base64.encode(nonce + ciphertext + tag))"
    }

    /// The plaintext, or an error if the key id is unknown, the tag does not verify,
    /// or the context differs.
    public func open(_ sealed: String, context: String) throws(CryptoError) -> String {
        let parts = sealed.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == TokenBox.version else {
            throw CryptoError.openFailed("not a v1 sealed value")
        }
        let id = String(parts[1])
        guard let key = keys[id] else { throw CryptoError.unknownKey(id) }
        guard let raw = Base64.decode(parts[2]), raw.count >= TokenBox.nonceSize + TokenBox.tagSize else {
            throw CryptoError.openFailed("malformed payload")
        }
        let nonce = Array(raw.prefix(TokenBox.nonceSize))
        let tag = Array(raw.suffix(TokenBox.tagSize))
        let ciphertext = Array(raw[TokenBox.nonceSize..<(raw.count - TokenBox.tagSize)])
        guard
            let plaintext = AESGCM.open(ciphertext, tag: tag, key: key, nonce: nonce, aad: Array(context.utf8))
        else { throw CryptoError.openFailed("authentication failed (tampered, wrong key or wrong context)") }
        guard let text = String(validating: plaintext, as: UTF8.self) else {
            throw CryptoError.openFailed("plaintext is not UTF-8")
        }
        return text
    }

    /// Key id of a sealed value, without opening it (for re-encryption after rotation).
    public static func keyID(of sealed: String) -> String? {
        let parts = sealed.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == version, !parts[1].isEmpty else { return nil }
        return String(parts[1])
    }
}

/// AES-256-GCM through OpenSSL EVP, 12-byte nonce, 16-byte tag.
private enum AESGCM {
    static func seal(_ plaintext: [UInt8], key: [UInt8], nonce: [UInt8], aad: [UInt8]) -> ([UInt8], [UInt8])? {
        guard let ctx = EVP_CIPHER_CTX_new() else { return nil }
        defer { EVP_CIPHER_CTX_free(ctx) }
        guard EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), nil, nil, nil) == 1,
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, Int32(nonce.count), nil) == 1,
            EVP_EncryptInit_ex(ctx, nil, nil, key, nonce) == 1
        else { return nil }
        var length: Int32 = 0
        if !aad.isEmpty {
            guard EVP_EncryptUpdate(ctx, nil, &length, aad, Int32(aad.count)) == 1 else { return nil }
        }
        // One spare block: GCM is a stream mode, but never hand OpenSSL a zero-size buffer.
        var ciphertext = [UInt8](repeating: 0, count: plaintext.count + 16)
        var total: Int32 = 0
        if !plaintext.isEmpty {
            guard EVP_EncryptUpdate(ctx, &ciphertext, &length, plaintext, Int32(plaintext.count)) == 1 else {
                return nil
            }
            total = length
        }
        let finalOK = ciphertext.withUnsafeMutableBufferPointer { buffer in
            EVP_EncryptFinal_ex(ctx, buffer.baseAddress! + Int(total), &length)
        }
        guard finalOK == 1 else { return nil }
        total += length
        var tag = [UInt8](repeating: 0, count: 16)
        guard EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, &tag) == 1 else { return nil }
        return (Array(ciphertext.prefix(Int(total))), tag)
    }

    static func open(_ ciphertext: [UInt8], tag: [UInt8], key: [UInt8], nonce: [UInt8], aad: [UInt8]) -> [UInt8]? {
        guard let ctx = EVP_CIPHER_CTX_new() else { return nil }
        defer { EVP_CIPHER_CTX_free(ctx) }
        guard EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), nil, nil, nil) == 1,
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, Int32(nonce.count), nil) == 1,
            EVP_DecryptInit_ex(ctx, nil, nil, key, nonce) == 1
        else { return nil }
        var length: Int32 = 0
        if !aad.isEmpty {
            guard EVP_DecryptUpdate(ctx, nil, &length, aad, Int32(aad.count)) == 1 else { return nil }
        }
        var plaintext = [UInt8](repeating: 0, count: ciphertext.count + 16)
        var total: Int32 = 0
        if !ciphertext.isEmpty {
            guard EVP_DecryptUpdate(ctx, &plaintext, &length, ciphertext, Int32(ciphertext.count)) == 1 else {
                return nil
            }
            total = length
        }
        var expectedTag = tag
        guard EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, Int32(expectedTag.count), &expectedTag) == 1 else {
            return nil
        }
        // Verifies the tag: fails on any change to nonce, ciphertext, tag or AAD.
        let finalOK = plaintext.withUnsafeMutableBufferPointer { buffer in
            EVP_DecryptFinal_ex(ctx, buffer.baseAddress! + Int(total), &length)
        }
        guard finalOK == 1 else {
            ERR_clear_error()
            return nil
        }
        total += length
        return Array(plaintext.prefix(Int(total)))
    }
}

/// PKCE (RFC 7636) S256 and OAuth state values.
public enum PKCE {
    /// 43–128 characters of base64url, from 32 random bytes.
    public static func makeVerifier() -> String { base64URL(SecureRandom.bytes(32)) }
    /// base64url(SHA-256(verifier)), no padding.
    public static func challenge(for verifier: String) -> String { base64URL(SHA256.hash(Array(verifier.utf8))) }
    /// 256-bit random state, base64url, no padding.
    public static func makeState() -> String { base64URL(SecureRandom.bytes(32)) }

    private static func base64URL(_ bytes: [UInt8]) -> String { Base64.encodeURL(bytes) }
}

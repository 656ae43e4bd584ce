private import COpenSSL

/// HMAC-SHA256 with one reused EVP_MAC context.
///
/// OpenSSL 3's one-shot `HMAC()` fetches the algorithm and builds a context on
/// every call (about 1.7x slower on 2 KiB messages); this keeps the context and
/// re-initializes it with the stored key. Not thread-safe: one instance per thread.
public final class HMACSHA256 {
    public static let size = 32
    private let ctx: OpaquePointer

    public init(key: [UInt8]) throws(CryptoError) {
        guard let mac = EVP_MAC_fetch(nil, "HMAC", nil) else { throw CryptoError.openssl("EVP_MAC_fetch(HMAC)") }
        defer { EVP_MAC_free(mac) }
        guard let ctx = EVP_MAC_CTX_new(mac) else { throw CryptoError.openssl("EVP_MAC_CTX_new") }
        self.ctx = ctx
        // OSSL_PARAM keeps raw pointers to these strings: they must outlive EVP_MAC_init.
        let ok = "digest".withCString { name in
            "SHA256".withCString { digest in
                var params = [
                    OSSL_PARAM_construct_utf8_string(name, UnsafeMutablePointer(mutating: digest), 0),
                    OSSL_PARAM_construct_end(),
                ]
                return key.withUnsafeBufferPointer { k in
                    EVP_MAC_init(ctx, k.baseAddress ?? UnsafePointer(bitPattern: 1), k.count, &params)
                }
            }
        }
        guard ok == 1 else {
            EVP_MAC_CTX_free(ctx)
            throw CryptoError.openssl("EVP_MAC_init")
        }
    }

    deinit { EVP_MAC_CTX_free(ctx) }

    /// MAC of the concatenation of `parts`, without building the concatenation.
    public func authenticate(_ parts: UnsafeRawBufferPointer...) -> [UInt8] {
        // A NULL key re-initializes with the key set in init.
        EVP_MAC_init(ctx, nil, 0, nil)
        for part in parts where part.count > 0 {
            EVP_MAC_update(ctx, part.baseAddress!.assumingMemoryBound(to: UInt8.self), part.count)
        }
        var out = [UInt8](repeating: 0, count: HMACSHA256.size)
        var length = 0
        out.withUnsafeMutableBufferPointer { buffer in
            _ = EVP_MAC_final(ctx, buffer.baseAddress, &length, buffer.count)
        }
        return out
    }

    public func authenticate(_ message: [UInt8]) -> [UInt8] {
        message.withUnsafeBytes { authenticate($0) }
    }
}

public enum CryptoError: Error, Equatable, CustomStringConvertible {
    case openssl(String)
    case invalidSecret(String)
    /// A sealed value names a key id that is not configured (TokenBox).
    case unknownKey(String)
    /// A sealed value is malformed, was tampered with, or belongs to another context (TokenBox).
    case openFailed(String)

    public var description: String {
        switch self {
        case .openssl(let call): return "OpenSSL call failed: \(call)"
        case .invalidSecret(let why): return why
        case .unknownKey(let id): return "sealed with unknown key id \(id)"
        case .openFailed(let why): return "cannot open sealed value: \(why)"
        }
    }
}

public enum ConstantTime {
    /// Equal length and equal bytes, in time that depends only on the length.
    public static func equals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        if a.isEmpty { return true }
        return a.withUnsafeBytes { pa in
            b.withUnsafeBytes { pb in CRYPTO_memcmp(pa.baseAddress, pb.baseAddress, a.count) == 0 }
        }
    }

    public static func equals(_ a: String, _ b: String) -> Bool {
        equals(Array(a.utf8), Array(b.utf8))
    }
}

public enum SecureRandom {
    public static func bytes(_ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        let ok = out.withUnsafeMutableBufferPointer { RAND_bytes($0.baseAddress, Int32(count)) }
        precondition(ok == 1, "RAND_bytes failed")
        return out
    }
}

public enum LibraryVersions {
    public static var openssl: String { String(cString: OpenSSL_version(OPENSSL_VERSION)) }
}

private import COpenSSL

/// One-shot SHA-256 through OpenSSL's EVP_Digest (PKCE S256 checks, key ids).
public enum SHA256 {
    public static let size = 32

    public static func hash(_ bytes: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: size)
        var length: UInt32 = 0
        let ok = bytes.withUnsafeBufferPointer { input in
            out.withUnsafeMutableBufferPointer { output in
                EVP_Digest(
                    input.baseAddress ?? UnsafePointer(bitPattern: 1), input.count, output.baseAddress, &length,
                    EVP_sha256(), nil)
            }
        }
        precondition(ok == 1 && length == UInt32(size), "EVP_Digest(SHA-256) failed")
        return out
    }

    public static func hash(_ text: String) -> [UInt8] {
        hash(Array(text.utf8))
    }
}

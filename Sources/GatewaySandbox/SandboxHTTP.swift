import Foundation
import GatewayCore
import GatewayHTTP

/// A request copied out of libevent, so it stays usable after a scripted delay.
struct SandboxRequest {
    let method: HTTPMethod
    let path: String
    let query: [String: String]
    let authorization: String?
    let contentType: String?
    let body: [UInt8]

    init(_ request: HTTPRequest) {
        method = request.method
        path = request.path
        query = request.queryParameters
        authorization = request.header("Authorization")
        contentType = request.header("Content-Type")
        body = request.bodyBytes()
    }

    var isForm: Bool {
        contentType?.lowercased().hasPrefix("application/x-www-form-urlencoded") ?? false
    }

    var isJSON: Bool {
        contentType?.lowercased().hasPrefix("application/json") ?? false
    }

    /// The body as `application/x-www-form-urlencoded` fields (first value of a repeated key wins).
    var form: [String: String] { FormDecoding.decode(body) }

    /// The bearer token of the `Authorization` header.
    var bearerToken: String? {
        guard let authorization, authorization.count > 7,
            authorization.prefix(7).lowercased() == "bearer "
        else { return nil }
        return String(authorization.dropFirst(7)).trimmingCharacters(in: .whitespaces)
    }

    /// `client_id:client_secret` from HTTP Basic authentication, if present.
    var basicCredentials: (String, String)? {
        guard let authorization, authorization.count > 6, authorization.prefix(6).lowercased() == "basic ",
            let decoded = Base64.decode(authorization.dropFirst(6).trimmingCharacters(in: .whitespaces))
        else { return nil }
        let text = String(decoding: decoded, as: UTF8.self)
        guard let colon = text.firstIndex(of: ":") else { return nil }
        return (
            FormDecoding.decodeComponent(Substring(text[..<colon])),
            FormDecoding.decodeComponent(Substring(text[text.index(after: colon)...]))
        )
    }
}

/// What a handler answers: applied by the pipeline, or dropped for `dropAfterHandling`.
struct SandboxResponse {
    var status: Int
    var headers: [(String, String)] = []
    var body: [UInt8] = []

    static func json(_ status: Int, _ value: JSONValue, headers: [(String, String)] = []) -> SandboxResponse {
        SandboxResponse(
            status: status, headers: [("Content-Type", "application/json")] + headers, body: value.serializedBytes)
    }

    /// `{"error": code, "message": text}`, the sandbox's error shape for API calls.
    static func error(_ status: Int, _ code: String, _ message: String) -> SandboxResponse {
        json(status, ["error": .string(code), "message": .string(message)])
    }

    /// RFC 6749 §5.2 token error: `{"error": code, "error_description": text}`.
    static func oauthError(_ status: Int, _ code: String, _ description: String) -> SandboxResponse {
        json(status, ["error": .string(code), "error_description": .string(description)])
    }

    static func noContent() -> SandboxResponse { SandboxResponse(status: 204) }

    static func redirect(_ location: String) -> SandboxResponse {
        SandboxResponse(status: 302, headers: [("Location", location), ("Content-Type", "text/plain")])
    }

    static func text(_ status: Int, _ text: String) -> SandboxResponse {
        SandboxResponse(
            status: status, headers: [("Content-Type", "text/plain; charset=utf-8")], body: Array(text.utf8))
    }
}

/// `application/x-www-form-urlencoded` (WHATWG URL §5): `&`-separated `name=value`,
/// `+` is a space, `%XX` a byte.
enum FormDecoding {
    static func decode(_ body: [UInt8]) -> [String: String] {
        var result: [String: String] = [:]
        let text = String(decoding: body, as: UTF8.self)
        for pair in text.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = decodeComponent(parts[0])
            let value = parts.count > 1 ? decodeComponent(parts[1]) : ""
            if result[key] == nil { result[key] = value }
        }
        return result
    }

    static func decodeComponent(_ text: Substring) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var iterator = Array(text.utf8)[...]
        while let byte = iterator.popFirst() {
            switch byte {
            case UInt8(ascii: "+"):
                bytes.append(UInt8(ascii: " "))
            case UInt8(ascii: "%"):
                if iterator.count >= 2, let high = hexValue(iterator[iterator.startIndex]),
                    let low = hexValue(iterator[iterator.startIndex + 1])
                {
                    bytes.append(high << 4 | low)
                    iterator = iterator.dropFirst(2)
                } else {
                    bytes.append(byte)
                }
            default:
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    /// Percent-encodes everything but RFC 3986 unreserved characters (for redirect query values).
    static func encodeComponent(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                out += String(format: "%%%02X", byte)
            }
        }
        return out
    }
}

enum Base64URL {
    /// base64url without padding (RFC 4648 §5), as PKCE S256 uses it.
    static func encode(_ bytes: [UInt8]) -> String { Base64.encodeURL(bytes) }

    /// A random secret of `bytes` random bytes (tokens, codes).
    static func random(bytes: Int = 32) -> String {
        var generator = SystemRandomNumberGenerator()
        return encode((0..<bytes).map { _ in UInt8.random(in: 0...255, using: &generator) })
    }
}

import GatewayCore

/// A `whsec_...` secret: the base64 part after the prefix is the HMAC key.
public struct WebhookSecret: Sendable, Equatable {
    public let key: [UInt8]

    public init(_ text: String) throws(CryptoError) {
        let body = text.hasPrefix("whsec_") ? text.dropFirst(6) : Substring(text)
        guard let key = Base64.decode(body), !key.isEmpty else {
            throw CryptoError.invalidSecret("not a whsec_<base64> secret")
        }
        self.key = key
    }

    public init(key: [UInt8]) { self.key = key }
}

/// Why a webhook's signature headers were refused. Each maps to a 401 with its code.
public enum WebhookVerificationError: Error, Equatable, Sendable {
    case missingHeader(String)
    case invalidTimestamp
    case timestampOutOfTolerance
    case invalidSignature

    public var code: String {
        switch self {
        case .missingHeader: return "missing_header"
        case .invalidTimestamp: return "invalid_timestamp"
        case .timestampOutOfTolerance: return "timestamp_out_of_tolerance"
        case .invalidSignature: return "invalid_signature"
        }
    }

    public var message: String {
        switch self {
        case .missingHeader(let name): return "header \(name) is required"
        case .invalidTimestamp: return "webhook-timestamp must be Unix seconds"
        case .timestampOutOfTolerance: return "webhook-timestamp is outside the allowed tolerance"
        case .invalidSignature: return "no webhook-signature entry matches"
        }
    }
}

/// Standard Webhooks verification (https://www.standardwebhooks.com): HMAC-SHA256
/// over `{id}.{timestamp}.{body}`, several secrets at once for rotation, versions
/// other than v1 skipped, constant-time comparison. One instance per thread.
public final class WebhookVerifier {
    private let macs: [HMACSHA256]
    public let toleranceSeconds: Int64

    public init(secrets: [WebhookSecret], toleranceSeconds: Int64) throws(CryptoError) {
        var macs: [HMACSHA256] = []
        for secret in secrets { macs.append(try HMACSHA256(key: secret.key)) }
        self.macs = macs
        self.toleranceSeconds = toleranceSeconds
    }

    public func verify(
        id: String?, timestamp: String?, signature: String?, body: UnsafeRawBufferPointer, now: Int64
    ) -> WebhookVerificationError? {
        guard let id, !id.isEmpty else { return .missingHeader("webhook-id") }
        guard let timestamp, !timestamp.isEmpty else { return .missingHeader("webhook-timestamp") }
        guard let signature, !signature.isEmpty else { return .missingHeader("webhook-signature") }
        guard timestamp.utf8.count <= 18, timestamp.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }),
            let seconds = Int64(timestamp)
        else { return .invalidTimestamp }
        guard abs(now - seconds) <= toleranceSeconds else { return .timestampOutOfTolerance }

        // Space-separated `version,base64` entries; only v1 counts.
        var candidates: [[UInt8]] = []
        let bytes = signature.utf8
        var start = bytes.startIndex
        while start != bytes.endIndex {
            let end = bytes[start...].firstIndex(of: UInt8(ascii: " ")) ?? bytes.endIndex
            let entry = bytes[start..<end]
            start = end == bytes.endIndex ? end : bytes.index(after: end)
            guard let comma = entry.firstIndex(of: UInt8(ascii: ",")),
                entry[..<comma].elementsEqual("v1".utf8)
            else { continue }
            if let decoded = Base64.decode(Substring(entry[bytes.index(after: comma)...])),
                decoded.count == HMACSHA256.size
            {
                candidates.append(decoded)
            }
        }
        guard !candidates.isEmpty else { return .invalidSignature }
        var matched = false
        for mac in macs {
            let expected = Self.sign(mac: mac, id: id, timestamp: timestamp, body: body)
            for candidate in candidates where ConstantTime.equals(expected, candidate) {
                matched = true
            }
        }
        return matched ? nil : .invalidSignature
    }

    static func sign(mac: HMACSHA256, id: String, timestamp: String, body: UnsafeRawBufferPointer) -> [UInt8] {
        var id = id
        var timestamp = timestamp
        return id.withUTF8 { idBytes in
            timestamp.withUTF8 { tsBytes in
                withUnsafeBytes(of: UInt8(ascii: ".")) { dot in
                    mac.authenticate(
                        UnsafeRawBufferPointer(idBytes), dot, UnsafeRawBufferPointer(tsBytes), dot, body)
                }
            }
        }
    }
}

/// Signs outgoing webhooks (status callbacks to the plan app, test tools).
public final class WebhookSigner {
    private let mac: HMACSHA256

    public init(secret: WebhookSecret) throws(CryptoError) {
        mac = try HMACSHA256(key: secret.key)
    }

    /// The `webhook-signature` header value: `v1,<base64>`.
    public func signature(id: String, timestamp: Int64, body: [UInt8]) -> String {
        let mac = body.withUnsafeBytes {
            WebhookVerifier.sign(mac: self.mac, id: id, timestamp: String(timestamp), body: $0)
        }
        return "v1," + Base64.encode(mac)
    }
}

import GatewayCore
import GatewayHTTP

/// Where a provider lives and who we are to it (SPEC §4, config `[providers.*]`).
public struct ProviderEndpoints: Sendable, Equatable {
    public var kind: ProviderKind
    public var clientID: String
    public var clientSecret: String
    public var authorizeURL: String
    public var tokenURL: String
    public var apiBaseURL: String

    public init(
        kind: ProviderKind, clientID: String, clientSecret: String, authorizeURL: String, tokenURL: String,
        apiBaseURL: String
    ) {
        self.kind = kind
        self.clientID = clientID
        self.clientSecret = clientSecret
        self.authorizeURL = authorizeURL
        self.tokenURL = tokenURL
        self.apiBaseURL = apiBaseURL
    }
}

public struct OAuthTokens: Sendable, Equatable {
    public var accessToken: String
    public var refreshToken: String?
    public var expiresInSeconds: Int64?
    public var scope: String?
}

/// A provider call that did not succeed, classified as SPEC §5 needs it.
public enum ProviderCallError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The refresh token or code is no longer valid (`invalid_grant`, or 400 on refresh):
    /// the connection is revoked.
    case invalidGrant(String)
    /// 401 on an API call: refresh once and retry.
    case unauthorized
    /// 429: retry after this many seconds (nil: unknown).
    case rateLimited(retryAfterSeconds: Int?)
    /// Another 4xx: permanent for this request.
    case rejected(status: Int, message: String)
    /// 5xx: transient; the outcome of a non-idempotent call is unknown.
    case server(status: Int)
    /// No response; `outcomeUnknown` tells whether the request may have been processed.
    case transport(HTTPClientError)
    /// A 2xx whose body is not what the contract says.
    case badResponse(String)

    public var isTransient: Bool {
        switch self {
        case .rateLimited, .server, .transport: return true
        case .invalidGrant, .unauthorized, .rejected, .badResponse: return false
        }
    }

    public var description: String {
        switch self {
        case .invalidGrant(let why): return "invalid_grant: \(why)"
        case .unauthorized: return "401 unauthorized"
        case .rateLimited(let after): return "429 rate limited" + (after.map { ", retry after \($0) s" } ?? "")
        case .rejected(let status, let message): return "\(status): \(message)"
        case .server(let status): return "provider error \(status)"
        case .transport(let error): return error.description
        case .badResponse(let why): return "unexpected response: \(why)"
        }
    }
}

/// Admits provider calls: a per-provider concurrency limit and rate window
/// (SPEC §5: at most N calls, token calls included, in any 60 s).
public protocol ProviderGate: Sendable {
    /// Blocks until a call may start, and counts it.
    func enter()
    /// The call is over (its concurrency slot is free).
    func leave()
}

/// The OAuth side of a provider: authorize URL, code exchange, refresh, the
/// provider's user id, and revocation (SPEC §4). Blocking calls: run them on push or
/// connection worker threads, never on the event loop.
public final class ProviderOAuth: Sendable {
    public let endpoints: ProviderEndpoints
    let http: HTTPClient
    public let gate: (any ProviderGate)?

    public init(endpoints: ProviderEndpoints, http: HTTPClient, gate: (any ProviderGate)? = nil) {
        self.endpoints = endpoints
        self.http = http
        self.gate = gate
    }

    public static let wahooScopes = "user_read workouts_read workouts_write plans_read plans_write offline_data"

    /// The URL the athlete's browser is sent to.
    public func authorizeURL(state: String, codeChallenge: String, redirectURI: String) -> String {
        var fields: [(String, String)] = [
            ("response_type", "code"), ("client_id", endpoints.clientID), ("redirect_uri", redirectURI),
            ("state", state),
        ]
        switch endpoints.kind {
        case .garmin:
            fields += [("code_challenge", codeChallenge), ("code_challenge_method", "S256")]
        case .wahoo:
            fields.append(("scope", Self.wahooScopes))
        }
        let separator = endpoints.authorizeURL.contains("?") ? "&" : "?"
        return endpoints.authorizeURL + separator + FormEncoding.encode(fields)
    }

    public func exchange(code: String, codeVerifier: String, redirectURI: String) throws(ProviderCallError)
        -> OAuthTokens
    {
        var fields: [(String, String)] = [
            ("grant_type", "authorization_code"), ("client_id", endpoints.clientID),
            ("client_secret", endpoints.clientSecret), ("code", code), ("redirect_uri", redirectURI),
        ]
        if endpoints.kind == .garmin { fields.append(("code_verifier", codeVerifier)) }
        return try tokenCall(fields)
    }

    /// Every refresh returns a new refresh token (both providers rotate them).
    public func refresh(refreshToken: String) throws(ProviderCallError) -> OAuthTokens {
        try tokenCall([
            ("grant_type", "refresh_token"), ("client_id", endpoints.clientID),
            ("client_secret", endpoints.clientSecret), ("refresh_token", refreshToken),
        ])
    }

    /// Garmin: `GET /wellness-api/rest/user/id` → `{"userId"}`; Wahoo: `GET /v1/user` → `{"id"}`.
    public func userID(accessToken: String) throws(ProviderCallError) -> String {
        let path = endpoints.kind == .garmin ? "/wellness-api/rest/user/id" : "/v1/user"
        let response = try call(.get, path: path, accessToken: accessToken)
        guard let json = try? JSONParser.parse(response.body) else { throw .badResponse("user id is not JSON") }
        let value = endpoints.kind == .garmin ? json["userId"] : json["id"]
        switch value {
        case .string(let s)? where !s.isEmpty: return s
        case .int(let i)?: return String(i)
        default: throw .badResponse("no user id in the response")
        }
    }

    /// Garmin: `DELETE /wellness-api/rest/user/registration`; Wahoo: `DELETE /v1/permissions`.
    public func revoke(accessToken: String) throws(ProviderCallError) {
        let path = endpoints.kind == .garmin ? "/wellness-api/rest/user/registration" : "/v1/permissions"
        _ = try call(.delete, path: path, accessToken: accessToken)
    }

    /// An authenticated API call with error classification (shared with the push clients).
    public func call(
        _ method: HTTPMethod, path: String, accessToken: String, body: [UInt8] = [], contentType: String? = nil
    ) throws(ProviderCallError) -> HTTPClientResponse {
        var headers = [("Authorization", "Bearer \(accessToken)"), ("Accept", "application/json")]
        if let contentType { headers.append(("Content-Type", contentType)) }
        let request = HTTPClientRequest(
            method: method, url: endpoints.apiBaseURL + path, headers: headers, body: body)
        return try Self.classify(send(request))
    }

    private func send(_ request: HTTPClientRequest) throws(ProviderCallError) -> HTTPClientResponse {
        gate?.enter()
        defer { gate?.leave() }
        do {
            return try http.send(request)
        } catch {
            throw .transport(error)
        }
    }

    static func classify(_ response: HTTPClientResponse) throws(ProviderCallError) -> HTTPClientResponse {
        switch response.status {
        case 200..<300: return response
        case 401: throw .unauthorized
        case 429: throw .rateLimited(retryAfterSeconds: response.header("Retry-After").flatMap { Int($0) })
        case 500...: throw .server(status: response.status)
        default: throw .rejected(status: response.status, message: Self.message(response.body))
        }
    }

    static func message(_ body: [UInt8]) -> String {
        if let json = try? JSONParser.parse(body) {
            for key in ["error_description", "message", "error"] {
                if let text = json[key]?.stringValue { return text }
                if let text = json["error"]?[key]?.stringValue { return text }
            }
        }
        return String(decoding: body.prefix(200), as: UTF8.self)
    }

    private func tokenCall(_ fields: [(String, String)]) throws(ProviderCallError) -> OAuthTokens {
        let request = HTTPClientRequest(
            method: .post, url: endpoints.tokenURL,
            headers: [("Content-Type", "application/x-www-form-urlencoded"), ("Accept", "application/json")],
            body: Array(FormEncoding.encode(fields).utf8))
        let response = try send(request)
        switch response.status {
        case 200..<300: break
        case 400, 401:
            // invalid_grant (and a 400 on refresh, SPEC §5) means the grant is gone.
            let why = Self.message(response.body)
            if response.status == 400 || why == "invalid_grant" { throw .invalidGrant(why) }
            throw .rejected(status: response.status, message: why)
        default: _ = try Self.classify(response)
        }
        guard let json = try? JSONParser.parse(response.body), let access = json["access_token"]?.stringValue,
            !access.isEmpty
        else { throw .badResponse("token response without access_token") }
        return OAuthTokens(
            accessToken: access, refreshToken: json["refresh_token"]?.stringValue,
            expiresInSeconds: json["expires_in"]?.intValue, scope: json["scope"]?.stringValue)
    }
}

import GatewayCore
import GatewayHTTP

/// Response helpers: every error body is `{"error":{"code","message"}}` (SPEC §2).
enum Reply {
    static let jsonHeaders = [("Content-Type", "application/json")]

    static func errorBody(code: String, message: String) -> String {
        JSONValue.object(
            JSONObject([("error", .object(JSONObject([("code", .string(code)), ("message", .string(message))])))])
        ).serialized
    }
}

/// The route a request matched, for dispatch and for the `route` metric label.
enum Route: Equatable {
    case healthz, readyz, metrics
    case webhook
    case sessions
    case session(id: String)
    case workoutFIT(sessionID: String)
    case retry(sessionID: String)
    case authorize(athleteID: String, provider: ProviderKind)
    case connections(athleteID: String)
    case connection(athleteID: String, provider: ProviderKind)
    case primaryProvider(athleteID: String)
    case oauthCallback(provider: ProviderKind)
    case garminDeregistrations
    case garminPermissions
    /// Known path, method not allowed there.
    case wrongMethod(template: String, allowed: [String])
    case notFound

    var template: String {
        switch self {
        case .healthz: return "/healthz"
        case .readyz: return "/readyz"
        case .metrics: return "/metrics"
        case .webhook: return "/v1/webhooks/plan"
        case .sessions: return "/v1/sessions"
        case .session: return "/v1/sessions/{id}"
        case .workoutFIT: return "/v1/sessions/{id}/workout.fit"
        case .retry: return "/v1/sessions/{id}/retry"
        case .authorize: return "/v1/athletes/{id}/connections/{provider}/authorize"
        case .connections: return "/v1/athletes/{id}/connections"
        case .connection: return "/v1/athletes/{id}/connections/{provider}"
        case .primaryProvider: return "/v1/athletes/{id}/primary-provider"
        case .oauthCallback: return "/v1/oauth/{provider}/callback"
        case .garminDeregistrations: return "/v1/providers/garmin/deregistrations"
        case .garminPermissions: return "/v1/providers/garmin/permissions"
        case .wrongMethod(let template, _): return template
        case .notFound: return "unmatched"
        }
    }

    static func match(method: HTTPMethod, path: String) -> Route {
        // The hot path first: no splitting for the webhook route.
        if path == "/v1/webhooks/plan" {
            return method == .post ? .webhook : .wrongMethod(template: Route.webhook.template, allowed: ["POST"])
        }
        let parts = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        let segments = Array(parts)
        func only(_ allowed: HTTPMethod, _ route: Route) -> Route {
            method == allowed || (allowed == .get && method == .head)
                ? route : .wrongMethod(template: route.template, allowed: [allowed.rawValue])
        }
        switch segments.count {
        case 1:
            switch segments[0] {
            case "healthz": return only(.get, .healthz)
            case "readyz": return only(.get, .readyz)
            case "metrics": return only(.get, .metrics)
            default: return .notFound
            }
        case 2 where segments[0] == "v1" && segments[1] == "sessions":
            return only(.get, .sessions)
        case 3 where segments[0] == "v1" && segments[1] == "webhooks" && segments[2] == "plan":
            return only(.post, .webhook)
        case 3 where segments[0] == "v1" && segments[1] == "sessions" && !segments[2].isEmpty:
            let raw = String(segments[2])
            return only(.get, .session(id: raw.removingPercentEncodingOrSelf))
        case 4
        where segments[0] == "v1" && segments[1] == "sessions" && !segments[2].isEmpty
            && segments[3] == "workout.fit":
            return only(.get, .workoutFIT(sessionID: String(segments[2]).removingPercentEncodingOrSelf))
        case 4
        where segments[0] == "v1" && segments[1] == "sessions" && !segments[2].isEmpty
            && segments[3] == "retry":
            return only(.post, .retry(sessionID: String(segments[2]).removingPercentEncodingOrSelf))
        default:
            return matchConnections(method: method, segments: segments.map(String.init), only: only)
        }
    }

    private static func matchConnections(
        method: HTTPMethod, segments: [String], only: (HTTPMethod, Route) -> Route
    ) -> Route {
        let s = segments
        guard s.count >= 3, s[0] == "v1" else { return .notFound }
        switch (s[1], s.count) {
        case ("athletes", 4) where !s[2].isEmpty && s[3] == "connections":
            return only(.get, .connections(athleteID: s[2].removingPercentEncodingOrSelf))
        case ("athletes", 4) where !s[2].isEmpty && s[3] == "primary-provider":
            return only(.put, .primaryProvider(athleteID: s[2].removingPercentEncodingOrSelf))
        case ("athletes", 5) where !s[2].isEmpty && s[3] == "connections":
            guard let provider = ProviderKind(slug: s[4]), s[4] == provider.slug else { return .notFound }
            return only(.delete, .connection(athleteID: s[2].removingPercentEncodingOrSelf, provider: provider))
        case ("athletes", 6) where !s[2].isEmpty && s[3] == "connections" && s[5] == "authorize":
            guard let provider = ProviderKind(slug: s[4]), s[4] == provider.slug else { return .notFound }
            return only(.post, .authorize(athleteID: s[2].removingPercentEncodingOrSelf, provider: provider))
        case ("oauth", 4) where s[3] == "callback":
            guard let provider = ProviderKind(slug: s[2]), s[2] == provider.slug else { return .notFound }
            return only(.get, .oauthCallback(provider: provider))
        case ("providers", 4) where s[2] == "garmin" && s[3] == "deregistrations":
            return only(.post, .garminDeregistrations)
        case ("providers", 4) where s[2] == "garmin" && s[3] == "permissions":
            return only(.post, .garminPermissions)
        default:
            return .notFound
        }
    }
}

extension String {
    var removingPercentEncodingOrSelf: String {
        guard contains("%") else { return self }
        var bytes: [UInt8] = []
        var iterator = utf8.makeIterator()
        while let c = iterator.next() {
            if c == UInt8(ascii: "%"), let h = iterator.next(), let l = iterator.next(),
                let v = UInt8(String(decoding: [h, l], as: UTF8.self), radix: 16)
            {
                bytes.append(v)
            } else {
                bytes.append(c)
            }
        }
        return String(validating: bytes, as: UTF8.self) ?? self
    }
}

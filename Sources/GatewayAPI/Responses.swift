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
        case .wrongMethod(let template, _): return template
        case .notFound: return "unmatched"
        }
    }

    static func match(method: HTTPMethod, path: String) -> Route {
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

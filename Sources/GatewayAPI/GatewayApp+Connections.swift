import Dispatch
import GatewayCore
import GatewayHTTP
import GatewayPush
import GatewayStore
import Logging

/// SPEC §6 connections: authorize, callback, list, primary, disconnect; Garmin's
/// notifications. The work blocks (provider calls, commits), so it runs on the
/// connection queue and the answer comes back to the loop.
extension GatewayApp {
    static let connectionQueue = DispatchQueue(label: "gatewayd.connections", attributes: .concurrent)

    /// Runs `work` off the loop; `then` runs on the loop with its result.
    func offLoop<T>(_ work: @escaping () -> T, then: @escaping (T) -> Void) {
        let job = OffLoopJob(work: work, then: then)
        Self.connectionQueue.async { [loop] in
            job.result = job.work()
            loop.execute { job.then(job.result!) }
        }
    }

    func requireConnections(_ request: HTTPRequest, _ route: Route) -> ConnectionService? {
        guard let connections else {
            respondError(
                request, route, 503, "connections_unavailable",
                "provider connections need security.token_key and at least one enabled provider")
            return nil
        }
        return connections
    }

    func jsonBody(_ request: HTTPRequest, _ route: Route) -> JSONValue? {
        let parsed = request.withBody { body in try? JSONParser.parse(buffer: body) }
        guard let parsed, case .object = parsed else {
            respondError(request, route, 400, "invalid_request", "the body must be a JSON object")
            return nil
        }
        return parsed
    }

    func handleConnections(_ request: HTTPRequest, _ route: Route) {
        switch route {
        case .authorize(let athleteID, let provider):
            guard authorized(request, route), let service = requireConnections(request, route),
                let body = jsonBody(request, route)
            else { return }
            guard let returnTo = body["returnTo"]?.stringValue else {
                return respondError(request, route, 400, "invalid_request", "returnTo: is required (a URL)")
            }
            offLoop({
                Result { () throws(ConnectionServiceError) in
                    try service.authorize(athleteID: athleteID, provider: provider, returnTo: returnTo)
                }
            }) { [self] result in
                switch result {
                case .success(let url):
                    respond(
                        request, route, 200, JSONValue.object(JSONObject([("authorizeUrl", .string(url))])).serialized)
                case .failure(.providerDisabled(let p)):
                    respondError(request, route, 404, "provider_disabled", "\(p.slug) is not enabled on this gateway")
                case .failure(.invalidReturnTo):
                    respondError(request, route, 400, "invalid_request", "returnTo: must be an absolute http(s) URL")
                case .failure(let error):
                    respondError(request, route, 503, "storage_unavailable", "\(error)")
                }
            }
        case .oauthCallback(let provider):
            guard let service = requireConnections(request, route) else { return }
            let parameters = request.queryParameters
            let requestID = request.id
            offLoop({ service.callback(provider: provider, parameters: parameters, requestID: requestID) }) {
                [self] outcome in
                dispatcher?.wake()
                switch outcome {
                case .redirect(let url):
                    respond(
                        request, route, 302, [], contentType: "text/plain; charset=utf-8",
                        extraHeaders: [("Location", url)])
                case .errorPage(let message):
                    respond(
                        request, route, 400, Array(Self.errorPage(message).utf8),
                        contentType: "text/html; charset=utf-8")
                }
            }
        case .connections(let athleteID):
            guard authorized(request, route), let service = requireConnections(request, route) else { return }
            offLoop({ Result { try service.connections(athleteID: athleteID) } }) { [self] result in
                switch result {
                case .success(let records):
                    let body = JSONValue.object(JSONObject([("connections", .array(records.map(\.json)))]))
                    respond(request, route, 200, body.serialized)
                case .failure(let error):
                    respondError(request, route, 503, "storage_unavailable", "\(error)")
                }
            }
        case .primaryProvider(let athleteID):
            guard authorized(request, route), let service = requireConnections(request, route),
                let body = jsonBody(request, route)
            else { return }
            guard let name = body["provider"]?.stringValue, let provider = ProviderKind(rawValue: name) else {
                return respondError(request, route, 400, "invalid_request", "provider: expected GARMIN or WAHOO")
            }
            offLoop({
                Result { () throws(ConnectionServiceError) in
                    try service.setPrimary(athleteID: athleteID, provider: provider)
                }
            }) { [self] result in
                switch result {
                case .success:
                    respond(
                        request, route, 200,
                        JSONValue.object(JSONObject([("primaryProvider", .string(provider.rawValue))])).serialized)
                case .failure(.notConnected):
                    respondError(request, route, 409, "not_connected", "the athlete has no connected \(provider.slug)")
                case .failure(let error):
                    respondError(request, route, 503, "storage_unavailable", "\(error)")
                }
            }
        case .connection(let athleteID, let provider):
            guard authorized(request, route), let service = requireConnections(request, route) else { return }
            let requestID = request.id
            offLoop({
                Result { () throws(ConnectionServiceError) in
                    try service.disconnect(
                        athleteID: athleteID, provider: provider, reason: "disconnected_by_plan_app",
                        requestID: requestID)
                }
            }) { [self] result in
                switch result {
                case .success: respond(request, route, 204, [])
                case .failure(.notConnected):
                    respondError(request, route, 404, "not_found", "the athlete has no connected \(provider.slug)")
                case .failure(let error):
                    respondError(request, route, 503, "storage_unavailable", "\(error)")
                }
            }
        case .garminDeregistrations, .garminPermissions:
            guard let service = requireConnections(request, route), let body = jsonBody(request, route) else { return }
            let userIDs: [String]
            let reason: String
            if route == .garminDeregistrations {
                guard let list = body["deregistrations"]?.arrayValue else {
                    return respondError(request, route, 400, "invalid_request", "deregistrations: expected an array")
                }
                userIDs = list.compactMap { Self.userID($0["userId"]) }
                reason = "deregistered"
            } else {
                guard let list = body["userPermissionsChange"]?.arrayValue else {
                    return respondError(
                        request, route, 400, "invalid_request", "userPermissionsChange: expected an array")
                }
                // No WORKOUT_IMPORT permission left: treated like a revocation (SPEC §4).
                userIDs = list.filter { change in
                    !(change["permissions"]?.arrayValue ?? []).contains(.string("WORKOUT_IMPORT"))
                }.compactMap { Self.userID($0["userId"]) }
                reason = "permission_removed"
            }
            offLoop({
                Result { try service.providerRevoked(provider: .garmin, providerUserIDs: userIDs, reason: reason) }
            }) {
                [self] result in
                switch result {
                case .success(let count):
                    respond(
                        request, route, 200, JSONValue.object(JSONObject([("revoked", .int(Int64(count)))])).serialized)
                case .failure(let error):
                    respondError(request, route, 503, "storage_unavailable", "\(error)")
                }
            }
        default:
            break
        }
    }

    static func userID(_ value: JSONValue?) -> String? {
        switch value {
        case .string(let s)?: return s
        case .int(let i)?: return String(i)
        default: return nil
        }
    }

    static func errorPage(_ message: String) -> String {
        var escaped = ""
        for c in message {
            switch c {
            case "<": escaped += "&lt;"
            case ">": escaped += "&gt;"
            case "&": escaped += "&amp;"
            case "\"": escaped += "&quot;"
            default: escaped.append(c)
            }
        }
        return """
            <!doctype html><html><head><meta charset="utf-8"><title>Connection failed</title></head>
            <body><h1>The device connection could not be completed</h1><p>\(escaped)</p></body></html>

            """
    }
}

private final class OffLoopJob<T>: @unchecked Sendable {
    let work: () -> T
    let then: (T) -> Void
    var result: T?

    init(work: @escaping () -> T, then: @escaping (T) -> Void) {
        self.work = work
        self.then = then
    }
}

import Foundation
import GatewayCore
import GatewayHTTP
import Logging

/// Fake Garmin and Wahoo OAuth + API servers (SPEC §4, §7) with scriptable faults
/// and an inspection API under `/_sandbox`. See docs/SANDBOX.md.
///
/// Everything runs on the event loop thread: state needs no locks. Only the
/// outbound notification POST runs on a Dispatch queue, and its result comes back
/// through `EventLoop.executeUnchecked`.
public final class Sandbox {
    let loop: EventLoop
    let options: SandboxOptions
    let logger: Logger
    private var routes: [Route] = []

    // State (loop thread only).
    var users: [SandboxProvider: [String: SandboxUser]] = [.garmin: [:], .wahoo: [:]]
    var codes: [String: AuthorizationCode] = [:]
    var accessTokens: [String: TokenPair] = [:]
    var refreshTokens: [String: TokenPair] = [:]
    /// Which user holds a Garmin workout / schedule / Wahoo plan / workout, by id.
    var garminWorkoutOwner: [Int64: String] = [:]
    var garminScheduleOwner: [Int64: String] = [:]
    var wahooPlanOwner: [Int64: String] = [:]
    var wahooWorkoutOwner: [Int64: String] = [:]
    // Ids keep growing across resets, so an id never names two things in one run.
    var nextGarminWorkoutID: Int64 = 100_001
    var nextGarminScheduleID: Int64 = 500_001
    var nextWahooUserID: Int64 = 70_001
    var nextWahooPlanID: Int64 = 2_001
    var nextWahooWorkoutID: Int64 = 300_001

    // Faults and counters.
    var faults: [FaultRule] = []
    var nextFaultID = 1
    var calls: [String: Int] = [:]
    var statuses: [Int: Int] = [:]
    var counters: [String: Int] = [:]
    var rateWindows: [SandboxProvider: [Double]] = [:]

    public init(loop: EventLoop, options: SandboxOptions, logger: Logger) {
        self.loop = loop
        self.options = options
        self.logger = logger
        routes = Self.makeRoutes()
    }

    /// The HTTPServer handler: runs on the loop thread for every request.
    public func handle(_ http: HTTPRequest) {
        let request = SandboxRequest(http)
        if request.path == "/_sandbox" || request.path.hasPrefix("/_sandbox/") {
            admin(request, http)
            return
        }
        guard let (route, parameters) = match(request) else {
            count("\(request.method.rawValue) \(request.path)")
            send(.error(404, "not_found", "no such endpoint: \(request.method.rawValue) \(request.path)"), to: http)
            return
        }
        var key = "\(route.method.rawValue) \(route.template)"
        if route.isToken { key += "#" + (request.isForm ? request.form["grant_type"] ?? "" : "") }
        count(key)
        if route.rateLimited, let provider = route.provider, let retryAfter = takeRateLimitSlot(provider) {
            counters["answered429", default: 0] += 1
            send(
                .json(
                    429, ["error": "rate_limited", "message": "sandbox rate limit exceeded"],
                    headers: [("Retry-After", String(retryAfter))]), to: http)
            return
        }
        let step = nextFaultStep(method: request.method, path: request.path)
        if let step, step.delayMs > 0 {
            loop.schedule(after: Double(step.delayMs) / 1000) { [self] in
                finish(route: route, parameters: parameters, request: request, step: step, http: http)
            }
        } else {
            finish(route: route, parameters: parameters, request: request, step: step, http: http)
        }
    }

    private func finish(
        route: Route, parameters: [String], request: SandboxRequest, step: FaultStep?, http: HTTPRequest
    ) {
        if let step {
            if step.drop {
                counters["dropped", default: 0] += 1
                http.dropConnection()
                return
            }
            if let status = step.status {
                if status == 429 { counters["answered429", default: 0] += 1 }
                var headers: [(String, String)] = []
                if let retryAfter = step.retryAfter { headers.append(("Retry-After", String(retryAfter))) }
                let body: JSONValue =
                    step.body ?? ["error": "sandbox_fault", "message": .string("scripted status \(status)")]
                send(.json(status, body, headers: headers), to: http)
                return
            }
        }
        let response: SandboxResponse
        do {
            response = try route.handler(self, request, parameters)
        } catch let reject as SandboxReject {
            response = reject.response
        } catch {
            response = .error(500, "sandbox_error", "\(error)")
        }
        if step?.dropAfterHandling == true {
            counters["dropped", default: 0] += 1
            http.dropConnection()
            return
        }
        send(response, to: http)
    }

    func send(_ response: SandboxResponse, to http: HTTPRequest) {
        statuses[response.status, default: 0] += 1
        http.respond(status: response.status, headers: response.headers, body: response.body)
    }

    func count(_ key: String) {
        calls[key, default: 0] += 1
    }

    /// Nil if the call may go ahead (and takes a slot); else the Retry-After seconds.
    private func takeRateLimitSlot(_ provider: SandboxProvider) -> Int? {
        guard let limit = options.rateLimitPerMinute, limit > 0 else { return nil }
        let now = nowSeconds()
        var window = rateWindows[provider, default: []]
        window.removeAll { $0 <= now - 60 }
        defer { rateWindows[provider] = window }
        if window.count >= limit {
            return max(1, Int((window[0] + 60 - now).rounded(.up)))
        }
        window.append(now)
        return nil
    }

    // MARK: - Users and tokens

    func user(_ provider: SandboxProvider, _ id: String) -> SandboxUser {
        if let user = users[provider]?[id] { return user }
        let user = SandboxUser(provider: provider, id: id)
        users[provider, default: [:]][id] = user
        return user
    }

    /// The user behind `Authorization: Bearer`, or a 401.
    func authenticate(_ provider: SandboxProvider, _ request: SandboxRequest) throws(SandboxReject) -> SandboxUser {
        guard let token = request.bearerToken else {
            throw SandboxReject(.error(401, "unauthorized", "missing bearer token"))
        }
        guard let pair = accessTokens[token], pair.provider == provider,
            let user = users[provider]?[pair.userID]
        else {
            throw SandboxReject(.error(401, "invalid_token", "unknown access token"))
        }
        guard pair.accessValid(now: nowSeconds()) else {
            throw SandboxReject(
                .error(401, "invalid_token", pair.accessRevoked ? "access token revoked" : "access token expired"))
        }
        return user
    }

    // MARK: - Routing

    private func match(_ request: SandboxRequest) -> (Route, [String])? {
        let segments = request.path.split(separator: "/", omittingEmptySubsequences: false)
        for route in routes where route.method == request.method && route.pattern.count == segments.count {
            var parameters: [String] = []
            var matched = true
            for (pattern, segment) in zip(route.pattern, segments) {
                if pattern == "{id}" {
                    guard !segment.isEmpty else {
                        matched = false
                        break
                    }
                    parameters.append(String(segment))
                } else if pattern != segment {
                    matched = false
                    break
                }
            }
            if matched { return (route, parameters) }
        }
        return nil
    }

    private static func makeRoutes() -> [Route] {
        let g = "/garmin"
        let w = "/wahoo"
        return [
            Route(.get, g + "/oauth2Confirm", .garmin, rateLimited: false) { s, r, _ in try s.authorize(.garmin, r) },
            Route(.post, g + "/di-oauth2-service/oauth/token", .garmin, isToken: true) { s, r, _ in
                try s.token(.garmin, r)
            },
            Route(.get, g + "/wellness-api/rest/user/id", .garmin) { s, r, _ in try s.garminUserID(r) },
            Route(.delete, g + "/wellness-api/rest/user/registration", .garmin) { s, r, _ in try s.garminDeregister(r)
            },
            Route(.post, g + "/workoutportal/workout/v2", .garmin) { s, r, _ in try s.garminCreateWorkout(r) },
            Route(.get, g + "/training-api/workout/v2/{id}", .garmin) { s, r, p in try s.garminGetWorkout(r, p[0]) },
            Route(.put, g + "/training-api/workout/v2/{id}", .garmin) { s, r, p in try s.garminUpdateWorkout(r, p[0]) },
            Route(.delete, g + "/training-api/workout/v2/{id}", .garmin) { s, r, p in try s.garminDeleteWorkout(r, p[0])
            },
            Route(.post, g + "/training-api/schedule/", .garmin) { s, r, _ in try s.garminCreateSchedule(r) },
            Route(.get, g + "/training-api/schedule", .garmin) { s, r, _ in try s.garminListSchedules(r) },
            Route(.get, g + "/training-api/schedule/{id}", .garmin) { s, r, p in try s.garminGetSchedule(r, p[0]) },
            Route(.put, g + "/training-api/schedule/{id}", .garmin) { s, r, p in try s.garminUpdateSchedule(r, p[0]) },
            Route(.delete, g + "/training-api/schedule/{id}", .garmin) { s, r, p in try s.garminDeleteSchedule(r, p[0])
            },
            Route(.get, w + "/oauth/authorize", .wahoo, rateLimited: false) { s, r, _ in try s.authorize(.wahoo, r) },
            Route(.post, w + "/oauth/token", .wahoo, isToken: true) { s, r, _ in try s.token(.wahoo, r) },
            Route(.get, w + "/v1/user", .wahoo) { s, r, _ in try s.wahooUser(r) },
            Route(.delete, w + "/v1/permissions", .wahoo) { s, r, _ in try s.wahooRevokePermissions(r) },
            Route(.post, w + "/v1/plans", .wahoo) { s, r, _ in try s.wahooCreatePlan(r) },
            Route(.get, w + "/v1/plans", .wahoo) { s, r, _ in try s.wahooListPlans(r) },
            Route(.get, w + "/v1/plans/{id}", .wahoo) { s, r, p in try s.wahooGetPlan(r, p[0]) },
            Route(.put, w + "/v1/plans/{id}", .wahoo) { s, r, p in try s.wahooUpdatePlan(r, p[0]) },
            Route(.delete, w + "/v1/plans/{id}", .wahoo) { s, r, p in try s.wahooDeletePlan(r, p[0]) },
            Route(.post, w + "/v1/workouts", .wahoo) { s, r, _ in try s.wahooCreateWorkout(r) },
            Route(.get, w + "/v1/workouts", .wahoo) { s, r, _ in try s.wahooListWorkouts(r) },
            Route(.get, w + "/v1/workouts/{id}", .wahoo) { s, r, p in try s.wahooGetWorkout(r, p[0]) },
            Route(.put, w + "/v1/workouts/{id}", .wahoo) { s, r, p in try s.wahooUpdateWorkout(r, p[0]) },
            Route(.delete, w + "/v1/workouts/{id}", .wahoo) { s, r, p in try s.wahooDeleteWorkout(r, p[0]) },
        ]
    }
}

/// A handler's early exit with an error response.
struct SandboxReject: Error {
    let response: SandboxResponse
    init(_ response: SandboxResponse) { self.response = response }
}

struct Route {
    typealias Handler = (Sandbox, SandboxRequest, [String]) throws -> SandboxResponse
    let method: HTTPMethod
    /// For `GET /_sandbox/calls`: `/garmin/training-api/workout/v2/{id}`.
    let template: String
    let pattern: [Substring]
    let provider: SandboxProvider?
    /// Counts toward `--rate-limit-per-minute` (the browser's authorize page does not).
    let rateLimited: Bool
    /// Token endpoint: calls are counted per grant type (`...#refresh_token`).
    let isToken: Bool
    let handler: Handler

    init(
        _ method: HTTPMethod, _ template: String, _ provider: SandboxProvider?, rateLimited: Bool = true,
        isToken: Bool = false, _ handler: @escaping Handler
    ) {
        self.method = method
        self.template = template
        pattern = template.split(separator: "/", omittingEmptySubsequences: false)
        self.provider = provider
        self.rateLimited = rateLimited
        self.isToken = isToken
        self.handler = handler
    }
}

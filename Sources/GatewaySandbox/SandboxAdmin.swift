import Foundation
import GatewayCore
import GatewayHTTP

/// One scripted answer: consumed by one matching request.
struct FaultStep {
    /// Answer this status with a JSON error body (or `body`), without doing the work.
    var status: Int?
    var retryAfter: Int?
    var body: JSONValue?
    /// Wait this long first, then go on (with `status`, a drop, or normal handling).
    var delayMs = 0
    /// Close the connection without answering, before doing the work.
    var drop = false
    /// Do the work, then close the connection without answering (outcome unknown).
    var dropAfterHandling = false

    var json: JSONValue {
        var object = JSONObject()
        if let status { object["status"] = .int(Int64(status)) }
        if let retryAfter { object["retryAfter"] = .int(Int64(retryAfter)) }
        if let body { object["body"] = body }
        if delayMs > 0 { object["delayMs"] = .int(Int64(delayMs)) }
        if drop { object["drop"] = true }
        if dropAfterHandling { object["dropAfterHandling"] = true }
        return .object(object)
    }
}

/// Requests matching `method` (nil: any) and `path` (exact, or a prefix when it ends
/// with `*`) consume `steps` in order; with `repeat` the sequence starts over.
final class FaultRule {
    let id: Int
    let method: String?
    let path: String
    let steps: [FaultStep]
    let repeats: Bool
    var next = 0
    var hits = 0

    init(id: Int, method: String?, path: String, steps: [FaultStep], repeats: Bool) {
        self.id = id
        self.method = method
        self.path = path
        self.steps = steps
        self.repeats = repeats
    }

    var exhausted: Bool { !repeats && next >= steps.count }

    func matches(method: HTTPMethod, path: String) -> Bool {
        if let wanted = self.method, wanted != method.rawValue { return false }
        if self.path.hasSuffix("*") { return path.hasPrefix(self.path.dropLast()) }
        return path == self.path
    }

    var json: JSONValue {
        [
            "id": .int(Int64(id)), "method": method.map { .string($0) } ?? .null, "path": .string(path),
            "responses": .array(steps.map(\.json)), "repeat": .bool(repeats), "hits": .int(Int64(hits)),
            "remaining": repeats ? .null : .int(Int64(steps.count - next)),
        ]
    }
}

extension Sandbox {
    /// The next scripted step for this request, if a rule matches (first added wins).
    func nextFaultStep(method: HTTPMethod, path: String) -> FaultStep? {
        guard let rule = faults.first(where: { !$0.exhausted && $0.matches(method: method, path: path) }) else {
            return nil
        }
        let step = rule.steps[rule.next % rule.steps.count]
        rule.next += 1
        rule.hits += 1
        if rule.exhausted { faults.removeAll { $0 === rule } }
        return step
    }

    /// `/_sandbox/...`: no faults, no counting, no authentication (bind to loopback).
    func admin(_ request: SandboxRequest, _ http: HTTPRequest) {
        let parts = request.path.split(separator: "/").dropFirst().map(String.init)
        let response: SandboxResponse
        do {
            switch (request.method, parts) {
            case (.get, ["health"]):
                response = .json(200, ["status": "ok"])
            case (.post, ["faults"]):
                response = try addFault(request)
            case (.get, ["faults"]):
                response = .json(200, .array(faults.map(\.json)))
            case (.delete, ["faults"]):
                faults.removeAll()
                response = .noContent()
            case (.delete, let p) where p.count == 2 && p[0] == "faults":
                let before = faults.count
                faults.removeAll { String($0.id) == p[1] }
                response = faults.count < before ? .noContent() : .error(404, "not_found", "no fault \(p[1])")
            case (.post, ["tokens", "expire"]):
                let account = try adminUser(request)
                let now = nowSeconds()
                var expired = 0
                for pair in account.tokens where pair.accessValid(now: now) {
                    pair.accessExpiresAt = now - 1
                    expired += 1
                }
                response = .json(200, ["expired": .int(Int64(expired))])
            case (.post, ["tokens", "invalid-grant"]):
                let account = try adminUser(request)
                account.failNextRefresh = true
                response = .json(200, ["failNextRefresh": true])
            case (.post, ["reset"]):
                reset()
                response = .json(200, ["reset": true])
            case (.get, ["state"]):
                var object = JSONObject()
                for provider in SandboxProvider.allCases {
                    var byUser = JSONObject()
                    for (id, account) in (users[provider] ?? [:]).sorted(by: { $0.key < $1.key }) {
                        byUser[id] = userState(account)
                    }
                    object[provider.rawValue] = .object(byUser)
                }
                response = .json(200, .object(object))
            case (.get, let p) where p.count == 3 && p[0] == "state":
                guard let provider = SandboxProvider(rawValue: p[1]), let account = users[provider]?[p[2]] else {
                    throw SandboxReject(.error(404, "not_found", "no \(p[1]) user \(p[2])"))
                }
                response = .json(200, userState(account))
            case (.get, ["calls"]):
                response = .json(200, callsJSON())
            case (.delete, ["calls"]):
                calls.removeAll()
                statuses.removeAll()
                counters.removeAll()
                response = .noContent()
            case (.post, ["notify"]):
                try notify(request, http)
                return
            default:
                response = .error(404, "not_found", "no admin endpoint \(request.method.rawValue) \(request.path)")
            }
        } catch let reject as SandboxReject {
            response = reject.response
        } catch {
            response = .error(500, "sandbox_error", "\(error)")
        }
        http.respond(status: response.status, headers: response.headers, body: response.body)
    }

    private func reset() {
        users = [.garmin: [:], .wahoo: [:]]
        codes.removeAll()
        accessTokens.removeAll()
        refreshTokens.removeAll()
        garminWorkoutOwner.removeAll()
        garminScheduleOwner.removeAll()
        wahooPlanOwner.removeAll()
        wahooWorkoutOwner.removeAll()
        faults.removeAll()
        calls.removeAll()
        statuses.removeAll()
        counters.removeAll()
        rateWindows.removeAll()
    }

    private func adminJSON(_ request: SandboxRequest) throws(SandboxReject) -> JSONValue {
        let value: JSONValue
        do {
            value = try JSONParser.parse(request.body)
        } catch {
            throw SandboxReject(.error(400, "bad_request", "\(error)"))
        }
        guard value.objectValue != nil else {
            throw SandboxReject(.error(400, "bad_request", "expected a JSON object"))
        }
        return value
    }

    private func adminUser(_ request: SandboxRequest) throws(SandboxReject) -> SandboxUser {
        let body = try adminJSON(request)
        guard let providerName = body["provider"]?.stringValue, let provider = SandboxProvider(rawValue: providerName)
        else { throw SandboxReject(.error(400, "bad_request", "provider must be garmin or wahoo")) }
        let id = body["userId"]?.stringValue ?? body["userId"]?.intValue.map { String($0) }
        guard let id, let account = users[provider]?[id] else {
            throw SandboxReject(.error(404, "not_found", "no \(providerName) user \(body["userId"]?.serialized ?? "")"))
        }
        return account
    }

    private func addFault(_ request: SandboxRequest) throws(SandboxReject) -> SandboxResponse {
        func bad(_ why: String) -> SandboxReject { SandboxReject(.error(400, "bad_request", why)) }
        let body = try adminJSON(request)
        let method: String?
        switch body["method"] {
        case nil, .null?: method = nil
        case .string(let name)?: method = name.uppercased()
        default: throw bad("method must be a string or null")
        }
        guard let path = body["path"]?.stringValue, path.hasPrefix("/") else {
            throw bad("path must start with /")
        }
        guard let responses = body["responses"]?.arrayValue, !responses.isEmpty else {
            throw bad("responses must be a non-empty array")
        }
        var steps: [FaultStep] = []
        for (index, item) in responses.enumerated() {
            guard let object = item.objectValue else { throw bad("responses[\(index)] must be an object") }
            var step = FaultStep()
            for (key, value) in object.members {
                switch key {
                case "status":
                    guard let status = value.intValue, (100...599).contains(status) else {
                        throw bad("responses[\(index)].status must be 100...599")
                    }
                    step.status = Int(status)
                case "retryAfter":
                    guard let seconds = value.intValue, seconds >= 0 else {
                        throw bad("responses[\(index)].retryAfter must be >= 0")
                    }
                    step.retryAfter = Int(seconds)
                case "delayMs":
                    guard let ms = value.intValue, ms >= 0, ms <= 600_000 else {
                        throw bad("responses[\(index)].delayMs must be 0...600000")
                    }
                    step.delayMs = Int(ms)
                case "drop":
                    guard let flag = value.boolValue else { throw bad("responses[\(index)].drop must be boolean") }
                    step.drop = flag
                case "dropAfterHandling":
                    guard let flag = value.boolValue else {
                        throw bad("responses[\(index)].dropAfterHandling must be boolean")
                    }
                    step.dropAfterHandling = flag
                case "body":
                    step.body = value
                default:
                    throw bad("responses[\(index)].\(key) is not a known field")
                }
            }
            steps.append(step)
        }
        let repeats = body["repeat"]?.boolValue ?? false
        let rule = FaultRule(id: nextFaultID, method: method, path: path, steps: steps, repeats: repeats)
        nextFaultID += 1
        faults.append(rule)
        return .json(201, rule.json)
    }

    private func callsJSON() -> JSONValue {
        var callsObject = JSONObject()
        for (key, value) in calls.sorted(by: { $0.key < $1.key }) { callsObject[key] = .int(Int64(value)) }
        var statusObject = JSONObject()
        for (key, value) in statuses.sorted(by: { $0.key < $1.key }) {
            statusObject[String(key)] = .int(Int64(value))
        }
        return [
            "calls": .object(callsObject), "total": .int(Int64(calls.values.reduce(0, +))),
            "statuses": .object(statusObject), "answered429": .int(Int64(counters["answered429"] ?? 0)),
            "dropped": .int(Int64(counters["dropped"] ?? 0)),
            "tooManyTokens": .int(Int64(counters["tooManyTokens"] ?? 0)),
            "invalidGrant": .int(Int64(counters["invalidGrant"] ?? 0)),
            "invalidClient": .int(Int64(counters["invalidClient"] ?? 0)),
        ]
    }

    private func userState(_ account: SandboxUser) -> JSONValue {
        let now = nowSeconds()
        var object = JSONObject()
        object["provider"] = .string(account.provider.rawValue)
        object["userId"] = .string(account.id)
        object["liveTokens"] = .int(Int64(account.liveTokens.count))
        object["validAccessTokens"] = .int(Int64(account.tokens.filter { $0.accessValid(now: now) }.count))
        object["tokens"] = .array(account.tokens.map { $0.json(now: now) })
        object["failNextRefresh"] = .bool(account.failNextRefresh)
        switch account.provider {
        case .garmin:
            object["registered"] = .bool(account.registered)
            object["permissions"] = .array(account.permissions.map { .string($0) })
            var workouts = JSONObject()
            for (id, body) in account.garminWorkouts.sorted(by: { $0.key < $1.key }) { workouts[String(id)] = body }
            object["workouts"] = .object(workouts)
            var schedules = JSONObject()
            for (id, schedule) in account.garminSchedules.sorted(by: { $0.key < $1.key }) {
                schedules[String(id)] = ["workoutId": .int(schedule.workoutID), "date": .string(schedule.date)]
            }
            object["schedules"] = .object(schedules)
        case .wahoo:
            var plans = JSONObject()
            for (id, plan) in account.wahooPlans.sorted(by: { $0.key < $1.key }) {
                plans[String(id)] = [
                    "external_id": .string(plan.externalID), "filename": .string(plan.filename),
                    "provider_updated_at": .string(plan.providerUpdatedAt), "plan": plan.plan,
                ]
            }
            object["plans"] = .object(plans)
            var workouts = JSONObject()
            for (id, workout) in account.wahooWorkouts.sorted(by: { $0.key < $1.key }) {
                workouts[String(id)] = Self.workoutJSON(id, workout, userID: account.id)
            }
            object["workouts"] = .object(workouts)
        }
        return .object(object)
    }

    /// `POST /_sandbox/notify`: sends Garmin's deregistration or permission-change
    /// notification to `target` and answers `{"status": <target's status>, "body": ...}`.
    private func notify(_ request: SandboxRequest, _ http: HTTPRequest) throws(SandboxReject) {
        func bad(_ why: String) -> SandboxReject { SandboxReject(.error(400, "bad_request", why)) }
        let body = try adminJSON(request)
        guard body["provider"]?.stringValue == "garmin" else { throw bad("provider must be garmin") }
        guard let userID = body["userId"]?.stringValue, !userID.isEmpty else { throw bad("userId is required") }
        guard let target = body["target"]?.stringValue, target.hasPrefix("http://") else {
            throw bad("target must be an http:// URL")
        }
        let payload: JSONValue
        switch body["kind"]?.stringValue {
        case "deregistration":
            payload = ["deregistrations": [["userId": .string(userID)]]]
            // Garmin sends this after the user disconnected: their tokens no longer work.
            if let account = users[.garmin]?[userID] {
                account.revokeAllTokens()
                account.registered = false
            }
        case "permissions":
            guard let list = body["permissions"]?.arrayValue, list.allSatisfy({ $0.stringValue != nil }) else {
                throw bad("permissions must be an array of strings")
            }
            payload = ["userPermissionsChange": [["userId": .string(userID), "permissions": .array(list)]]]
            users[.garmin]?[userID]?.permissions = list.compactMap(\.stringValue)
        default:
            throw bad("kind must be deregistration or permissions")
        }
        let bytes = payload.serializedBytes
        let loop = self.loop
        logger.info("sandbox notify", metadata: ["target": "\(target)", "kind": "\(body["kind"]?.stringValue ?? "")"])
        DispatchQueue.global().async {
            let result = PlainHTTPPost.send(url: target, body: bytes, timeoutSeconds: 10)
            loop.executeUnchecked {
                let response: SandboxResponse
                switch result {
                case .success(let answer):
                    response = .json(
                        200,
                        [
                            "status": .int(Int64(answer.status)), "body": .string(answer.body),
                            "sent": payload,
                        ])
                case .failure(let error):
                    response = .error(502, "notify_failed", error.description)
                }
                http.respond(status: response.status, headers: response.headers, body: response.body)
            }
        }
    }
}

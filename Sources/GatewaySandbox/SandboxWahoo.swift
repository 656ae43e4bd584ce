import Foundation
import GatewayCore

/// Wahoo Cloud API: user, plans, workouts, permissions (SPEC §4). Bodies are
/// form-encoded; neither POST is idempotent.
extension Sandbox {
    static let dataURLPrefix = "data:application/json;base64,"

    func wahooUser(_ request: SandboxRequest) throws(SandboxReject) -> SandboxResponse {
        let account = try authenticate(.wahoo, request)
        return .json(
            200,
            [
                "id": .int(Int64(account.id) ?? 0), "first": "Sandbox", "last": .string("User \(account.id)"),
                "email": .string("wahoo-\(account.id)@sandbox.invalid"),
            ])
    }

    /// Revokes every token the user granted this application.
    func wahooRevokePermissions(_ request: SandboxRequest) throws(SandboxReject) -> SandboxResponse {
        let account = try authenticate(.wahoo, request)
        account.revokeAllTokens()
        return .noContent()
    }

    // MARK: - Plans

    func wahooCreatePlan(_ request: SandboxRequest) throws(SandboxReject) -> SandboxResponse {
        let account = try authenticate(.wahoo, request)
        let form = try Self.formBody(request)
        let plan = try Self.planFields(form, existing: nil, now: nowSeconds())
        let id = nextWahooPlanID
        nextWahooPlanID += 1
        account.wahooPlans[id] = plan
        wahooPlanOwner[id] = account.id
        return .json(200, Self.planJSON(id, plan, userID: account.id))
    }

    /// `GET /v1/plans?external_id=X` → the user's plans with that external id (all without it).
    func wahooListPlans(_ request: SandboxRequest) throws(SandboxReject) -> SandboxResponse {
        let account = try authenticate(.wahoo, request)
        let externalID = request.query["external_id"]
        let plans = account.wahooPlans
            .filter { externalID == nil || $0.value.externalID == externalID }
            .sorted { $0.key < $1.key }
            .map { Self.planJSON($0.key, $0.value, userID: account.id) }
        return .json(200, .array(plans))
    }

    func wahooGetPlan(_ request: SandboxRequest, _ idText: String) throws(SandboxReject) -> SandboxResponse {
        let account = try authenticate(.wahoo, request)
        let id = try ownedID(idText, owners: wahooPlanOwner, account: account, what: "plan")
        return .json(200, Self.planJSON(id, account.wahooPlans[id]!, userID: account.id))
    }

    func wahooUpdatePlan(_ request: SandboxRequest, _ idText: String) throws(SandboxReject) -> SandboxResponse {
        let account = try authenticate(.wahoo, request)
        let id = try ownedID(idText, owners: wahooPlanOwner, account: account, what: "plan")
        let form = try Self.formBody(request)
        let plan = try Self.planFields(form, existing: account.wahooPlans[id], now: nowSeconds())
        account.wahooPlans[id] = plan
        return .json(200, Self.planJSON(id, plan, userID: account.id))
    }

    func wahooDeletePlan(_ request: SandboxRequest, _ idText: String) throws(SandboxReject) -> SandboxResponse {
        let account = try authenticate(.wahoo, request)
        let id = try ownedID(idText, owners: wahooPlanOwner, account: account, what: "plan")
        account.wahooPlans[id] = nil
        wahooPlanOwner[id] = nil
        return .noContent()
    }

    // MARK: - Workouts

    func wahooCreateWorkout(_ request: SandboxRequest) throws(SandboxReject) -> SandboxResponse {
        let account = try authenticate(.wahoo, request)
        let form = try Self.formBody(request)
        let workout = try workoutFields(form, existing: nil, account: account)
        let id = nextWahooWorkoutID
        nextWahooWorkoutID += 1
        account.wahooWorkouts[id] = workout
        wahooWorkoutOwner[id] = account.id
        return .json(200, Self.workoutJSON(id, workout, userID: account.id))
    }

    /// `GET /v1/workouts?page=N&per_page=M` (defaults 1 and 30, per_page at most 100),
    /// newest `starts` first.
    func wahooListWorkouts(_ request: SandboxRequest) throws(SandboxReject) -> SandboxResponse {
        let account = try authenticate(.wahoo, request)
        let page = Int(request.query["page"] ?? "1") ?? 0
        let perPage = Int(request.query["per_page"] ?? "30") ?? 0
        guard page >= 1, (1...100).contains(perPage) else {
            throw SandboxReject(.error(400, "bad_request", "page must be >= 1 and per_page 1...100"))
        }
        let all = account.wahooWorkouts.sorted { ($0.value.starts, $0.key) > ($1.value.starts, $1.key) }
        let from = min(all.count, (page - 1) * perPage)
        let to = min(all.count, from + perPage)
        let workouts = all[from..<to].map { Self.workoutJSON($0.key, $0.value, userID: account.id) }
        return .json(
            200,
            [
                "workouts": .array(workouts), "total": .int(Int64(all.count)), "page": .int(Int64(page)),
                "per_page": .int(Int64(perPage)), "order": "descending", "sort": "starts",
            ])
    }

    func wahooGetWorkout(_ request: SandboxRequest, _ idText: String) throws(SandboxReject) -> SandboxResponse {
        let account = try authenticate(.wahoo, request)
        let id = try ownedID(idText, owners: wahooWorkoutOwner, account: account, what: "workout")
        return .json(200, Self.workoutJSON(id, account.wahooWorkouts[id]!, userID: account.id))
    }

    func wahooUpdateWorkout(_ request: SandboxRequest, _ idText: String) throws(SandboxReject) -> SandboxResponse {
        let account = try authenticate(.wahoo, request)
        let id = try ownedID(idText, owners: wahooWorkoutOwner, account: account, what: "workout")
        let form = try Self.formBody(request)
        let workout = try workoutFields(form, existing: account.wahooWorkouts[id], account: account)
        account.wahooWorkouts[id] = workout
        return .json(200, Self.workoutJSON(id, workout, userID: account.id))
    }

    func wahooDeleteWorkout(_ request: SandboxRequest, _ idText: String) throws(SandboxReject) -> SandboxResponse {
        let account = try authenticate(.wahoo, request)
        let id = try ownedID(idText, owners: wahooWorkoutOwner, account: account, what: "workout")
        account.wahooWorkouts[id] = nil
        wahooWorkoutOwner[id] = nil
        return .noContent()
    }

    // MARK: - Bodies

    static func formBody(_ request: SandboxRequest) throws(SandboxReject) -> [String: String] {
        guard request.isForm else {
            throw SandboxReject(
                .error(415, "unsupported_media_type", "Content-Type must be application/x-www-form-urlencoded"))
        }
        return request.form
    }

    /// A create needs every field; an update keeps the ones it does not send.
    static func planFields(_ form: [String: String], existing: WahooPlan?, now: Double) throws(SandboxReject)
        -> WahooPlan
    {
        func field(_ name: String) throws(SandboxReject) -> String? {
            if let value = form["plan[\(name)]"] {
                guard !value.isEmpty else { throw SandboxReject(.error(400, "bad_request", "plan[\(name)] is empty")) }
                return value
            }
            guard existing != nil else {
                throw SandboxReject(.error(400, "bad_request", "plan[\(name)] is required"))
            }
            return nil
        }
        let file = try field("file")
        let filename = try field("filename")
        let externalID = try field("external_id")
        let providerUpdatedAt = try field("provider_updated_at")
        var plan =
            existing
            ?? WahooPlan(
                externalID: "", filename: "", providerUpdatedAt: "", plan: .null, createdAt: now, updatedAt: now)
        if let file { plan.plan = try planJSON(fromDataURL: file) }
        if let filename { plan.filename = filename }
        if let externalID { plan.externalID = externalID }
        if let providerUpdatedAt { plan.providerUpdatedAt = providerUpdatedAt }
        plan.updatedAt = now
        return plan
    }

    /// Decodes `data:application/json;base64,<plan.json>` and checks the plan minimally.
    static func planJSON(fromDataURL url: String) throws(SandboxReject) -> JSONValue {
        func bad(_ why: String) -> SandboxReject { SandboxReject(.error(400, "invalid_plan", why)) }
        guard url.hasPrefix(dataURLPrefix) else { throw bad("plan[file] must start with \(dataURLPrefix)") }
        guard let bytes = Base64.decode(url.dropFirst(dataURLPrefix.count)) else {
            throw bad("plan[file] is not valid base64 (is '+' percent-encoded?)")
        }
        let plan: JSONValue
        do {
            plan = try JSONParser.parse(bytes)
        } catch {
            throw bad("plan[file] is not JSON: \(error)")
        }
        guard let header = plan["header"]?.objectValue else { throw bad("plan.header is required") }
        guard let description = header["description"]?.stringValue, !description.isEmpty else {
            throw bad("plan.header.description is required")
        }
        guard let name = header["name"]?.stringValue, !name.isEmpty else { throw bad("plan.header.name is required") }
        guard let family = header["workout_type_family"]?.intValue, family == 0 || family == 1 else {
            throw bad("plan.header.workout_type_family must be 0 (bike) or 1 (run)")
        }
        guard let intervals = plan["intervals"]?.arrayValue, !intervals.isEmpty else {
            throw bad("plan.intervals must be a non-empty array")
        }
        return plan
    }

    func workoutFields(_ form: [String: String], existing: WahooWorkout?, account: SandboxUser) throws(SandboxReject)
        -> WahooWorkout
    {
        func bad(_ why: String) -> SandboxReject { SandboxReject(.error(400, "bad_request", why)) }
        func field(_ name: String, required: Bool = true) throws(SandboxReject) -> String? {
            if let value = form["workout[\(name)]"] { return value }
            if required, existing == nil { throw bad("workout[\(name)] is required") }
            return nil
        }
        let now = nowSeconds()
        var workout =
            existing
            ?? WahooWorkout(
                name: "", workoutToken: "", workoutTypeID: 0, starts: "", minutes: 0, planID: nil, createdAt: now,
                updatedAt: now)
        if let name = try field("name") {
            guard !name.isEmpty else { throw bad("workout[name] is empty") }
            workout.name = name
        }
        if let token = try field("workout_token") {
            guard !token.isEmpty else { throw bad("workout[workout_token] is empty") }
            workout.workoutToken = token
        }
        if let typeText = try field("workout_type_id") {
            guard let type = Int64(typeText), type >= 0 else {
                throw bad("workout[workout_type_id] must be an integer")
            }
            workout.workoutTypeID = type
        }
        if let starts = try field("starts") {
            guard Self.isDateTime(starts) else { throw bad("workout[starts] must be an ISO-8601 date-time") }
            workout.starts = starts
        }
        if let minutesText = try field("minutes") {
            guard let minutes = Int64(minutesText), minutes >= 0 else {
                throw bad("workout[minutes] must be a non-negative integer")
            }
            workout.minutes = minutes
        }
        if let planText = try field("plan_id", required: false) {
            if planText.isEmpty {
                workout.planID = nil
            } else {
                guard let planID = Int64(planText), account.wahooPlans[planID] != nil else {
                    throw bad("workout[plan_id] \(planText) is not one of this user's plans")
                }
                workout.planID = planID
            }
        }
        workout.updatedAt = now
        return workout
    }

    /// `YYYY-MM-DDTHH:MM:SS` with an optional fraction and a `Z` or `±HH:MM` offset.
    static func isDateTime(_ text: String) -> Bool {
        guard text.count >= 20, isDate(String(text.prefix(10))) else { return false }
        let rest = Array(text.dropFirst(10))
        guard rest[0] == "T", rest.count >= 9 else { return false }
        let time = String(rest[1..<9])
        let parts = time.split(separator: ":")
        guard parts.count == 3, parts.allSatisfy({ $0.count == 2 && Int($0) != nil }) else { return false }
        var zone = rest[9...]
        if zone.first == "." {
            zone = zone.dropFirst().drop(while: { $0.isNumber })
        }
        let tail = String(zone)
        if tail == "Z" { return true }
        guard tail.count == 6, tail.first == "+" || tail.first == "-" else { return false }
        return Array(tail)[3] == ":"
    }

    static func planJSON(_ id: Int64, _ plan: WahooPlan, userID: String) -> JSONValue {
        let header = plan.plan["header"]
        return [
            "id": .int(id), "user_id": .int(Int64(userID) ?? 0), "name": header?["name"] ?? .null,
            "description": header?["description"] ?? .null, "filename": .string(plan.filename),
            "external_id": .string(plan.externalID), "provider_updated_at": .string(plan.providerUpdatedAt),
            "workout_type_family": header?["workout_type_family"] ?? .null, "deleted": false,
            "created_at": .string(isoTime(plan.createdAt)), "updated_at": .string(isoTime(plan.updatedAt)),
        ]
    }

    static func workoutJSON(_ id: Int64, _ workout: WahooWorkout, userID: String) -> JSONValue {
        [
            "id": .int(id), "user_id": .int(Int64(userID) ?? 0), "name": .string(workout.name),
            "workout_token": .string(workout.workoutToken), "workout_type_id": .int(workout.workoutTypeID),
            "starts": .string(workout.starts), "minutes": .int(workout.minutes),
            "plan_id": workout.planID.map { .int($0) } ?? .null, "created_at": .string(isoTime(workout.createdAt)),
            "updated_at": .string(isoTime(workout.updatedAt)), "workout_summary": .null,
        ]
    }
}

import GatewayCore
import GatewayHTTP

/// Wahoo Cloud API (SPEC §4): one plan (plan.json, `external_id` = session id) and one
/// workout (`workout_token` = session id) that uses it, starting on the session's date.
///
/// Neither POST is idempotent, so whenever an id is not known — a first push, a retry
/// after an unknown outcome, a 404 on an update — the plan is first looked up by
/// `GET /v1/plans?external_id=` and the workout by listing `GET /v1/workouts` (all
/// pages, bounded) for its `workout_token`; a match is adopted and updated in place.
/// Only then is anything created. Known ids are updated with `PUT` (the workout's
/// `starts` moves with the session's date).
public struct WahooPusher: ProviderPusher {
    public var kind: ProviderKind { .wahoo }
    /// Page size of the workout list (Wahoo allows at most 100).
    public var perPage: Int
    /// At most this many pages are read when looking for a workout by its token.
    public var maxPages: Int
    /// Wall-clock milliseconds, for `plan[provider_updated_at]`.
    public var nowMillis: @Sendable () -> Int64

    public init(
        perPage: Int = 100, maxPages: Int = 50, nowMillis: @escaping @Sendable () -> Int64 = { WallClock.nowMillis() }
    ) {
        self.perPage = max(1, min(100, perPage))
        self.maxPages = max(1, maxPages)
        self.nowMillis = nowMillis
    }

    static let form = "application/x-www-form-urlencoded"

    static func planPath(_ id: String) -> String { "/v1/plans/" + FormEncoding.percentEncode(id) }
    static func workoutPath(_ id: String) -> String { "/v1/workouts/" + FormEncoding.percentEncode(id) }

    public func upsert(
        _ session: ExportSession, workout: NormalizedWorkout, existing: RemoteWorkout, call: ProviderCall,
        checkpoint: (RemoteWorkout) throws -> Void
    ) throws -> RemoteWorkout {
        var state = existing
        var saved = existing
        func save() throws {
            guard state != saved else { return }
            try checkpoint(state)
            saved = state
        }

        // The plan, then the workout that uses it.
        let updatedAt = ISODateTime.format(epochMillis: nowMillis())
        let planForm = Self.body(
            WahooPlanEncoder.planFormFields(workout, session: session, providerUpdatedAt: updatedAt))
        let planID = try ensure(
            state.planID, form: planForm, path: Self.planPath, createPath: "/v1/plans", what: "the created plan",
            call: call, find: { () throws(ProviderCallError) in try findPlans(externalID: session.id, call: call) },
            record: { id, _ in
                state.planID = id
                try save()
            })

        let workoutForm = Self.body(WahooPlanEncoder.workoutFormFields(workout, session: session, planID: planID))
        _ = try ensure(
            state.workoutID, form: workoutForm, path: Self.workoutPath, createPath: "/v1/workouts",
            what: "the created workout", call: call,
            find: { () throws(ProviderCallError) in try findWorkouts(token: session.id, call: call) },
            record: { id, created in
                state.workoutID = id
                // A created workout starts on the session's date; an adopted one only after its update.
                if created { state.scheduledDate = session.date }
                try save()
            })
        state.scheduledDate = session.date
        try save()
        return state
    }

    /// Updates the thing `known` names in place; else adopts the oldest one `find` lists
    /// (deleting any others: one copy only) and updates it; else creates one. `record` is
    /// called with every id as soon as it is known (and whether it was just created).
    private func ensure(
        _ known: String?, form: [UInt8], path: (String) -> String, createPath: String, what: String,
        call: ProviderCall, find: () throws(ProviderCallError) -> [String],
        record: (_ id: String, _ created: Bool) throws -> Void
    ) throws -> String {
        if let known, try put(path(known), form, call: call) != nil { return known }
        let found = try find()
        if let adopted = found.first {
            try record(adopted, false)
            for extra in found.dropFirst() {
                try ProviderResponse.delete(path(extra), call: call)
            }
            if try put(path(adopted), form, call: call) != nil { return adopted }
        }
        let response = try call(.post, createPath, form, Self.form)
        let id = try Self.createdID(response, what: what)
        try record(id, true)
        return id
    }

    public func remove(
        sessionID: String, existing: RemoteWorkout, call: ProviderCall, checkpoint: (RemoteWorkout) throws -> Void
    ) throws {
        var state = existing
        // Unknown ids: a create whose outcome was unknown may still have made them.
        let workouts = try state.workoutID.map { [$0] } ?? findWorkouts(token: sessionID, call: call)
        for workoutID in workouts {
            try ProviderResponse.delete(Self.workoutPath(workoutID), call: call)
        }
        if state.workoutID != nil || state.scheduledDate != nil {
            state.workoutID = nil
            state.scheduledDate = nil
            try checkpoint(state)
        }
        let plans = try state.planID.map { [$0] } ?? findPlans(externalID: sessionID, call: call)
        for planID in plans {
            try ProviderResponse.delete(Self.planPath(planID), call: call)
        }
        if state != RemoteWorkout() {
            state = RemoteWorkout()
            try checkpoint(state)
        }
    }

    // MARK: - Calls

    static func body(_ fields: [(String, String)]) -> [UInt8] {
        Array(FormEncoding.encode(fields).utf8)
    }

    /// `PUT path` with a form; nil when the thing is gone (404).
    private func put(_ path: String, _ body: [UInt8], call: ProviderCall) throws(ProviderCallError)
        -> HTTPClientResponse?
    {
        try ProviderResponse.unlessGone { () throws(ProviderCallError) in try call(.put, path, body, Self.form) }
    }

    /// The `id` of a created plan or workout.
    static func createdID(_ response: HTTPClientResponse, what: String) throws(ProviderCallError) -> String {
        let value = try ProviderResponse.json(response, what: what)
        guard let id = ProviderResponse.id(value["id"]) else { throw .badResponse("\(what) has no id") }
        return id
    }

    /// The ids of the user's plans whose `external_id` is `externalID`, oldest first.
    func findPlans(externalID: String, call: ProviderCall) throws(ProviderCallError) -> [String] {
        let response = try call(.get, "/v1/plans?external_id=" + FormEncoding.percentEncode(externalID), [], nil)
        let value = try ProviderResponse.json(response, what: "the plan list")
        guard let plans = value.arrayValue ?? value["plans"]?.arrayValue else {
            throw .badResponse("the plan list is not a JSON array")
        }
        var ids: [String] = []
        for plan in plans where plan["external_id"]?.stringValue == externalID && plan["deleted"]?.boolValue != true {
            guard let id = ProviderResponse.id(plan["id"]) else { throw .badResponse("a listed plan has no id") }
            ids.append(id)
        }
        return Self.oldestFirst(ids)
    }

    /// The ids of the user's workouts whose `workout_token` is `token`, oldest first:
    /// `GET /v1/workouts?page=N&per_page=M` until `total` workouts were seen (at most
    /// `maxPages` pages).
    func findWorkouts(token: String, call: ProviderCall) throws(ProviderCallError) -> [String] {
        var ids: [String] = []
        var seen = 0
        for page in 1...maxPages {
            let response = try call(.get, "/v1/workouts?page=\(page)&per_page=\(perPage)", [], nil)
            let value = try ProviderResponse.json(response, what: "the workout list")
            guard let workouts = value["workouts"]?.arrayValue else {
                throw .badResponse("the workout list has no workouts array")
            }
            for workout in workouts
            where workout["workout_token"]?.stringValue == token && workout["deleted"]?.boolValue != true {
                guard let id = ProviderResponse.id(workout["id"]) else {
                    throw .badResponse("a listed workout has no id")
                }
                ids.append(id)
            }
            seen += workouts.count
            let total = value["total"]?.intValue
            let done = total.map { seen >= $0 } ?? (workouts.count < perPage)
            if workouts.isEmpty || done { break }
        }
        return Self.oldestFirst(ids)
    }

    /// Numeric ids ascending (the first one created first), others after them as given.
    static func oldestFirst(_ ids: [String]) -> [String] {
        var unique: [String] = []
        for id in ids where !unique.contains(id) { unique.append(id) }
        let numeric = unique.compactMap { id in Int64(id).map { (id, $0) } }.sorted { $0.1 < $1.1 }.map(\.0)
        return numeric + unique.filter { Int64($0) == nil }
    }
}

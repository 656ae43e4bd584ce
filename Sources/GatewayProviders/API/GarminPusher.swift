import GatewayCore
import GatewayHTTP

/// Garmin Training API V2 (SPEC §4): one workout in the athlete's library, scheduled
/// once on the session's date.
///
/// - Create: `POST /workoutportal/workout/v2` → `{"workoutId"}`, checkpoint, then schedule.
///   Garmin has no lookup of an unscheduled workout, so a create whose outcome is unknown
///   is not reconciled: the error goes up, the retry creates again, and only the workout
///   the gateway knows is ever scheduled (an orphan may stay in the library).
/// - Update: `PUT /training-api/workout/v2/{id}` in place; a 404 means the workout is gone
///   (with its schedules): it is created again.
/// - Schedule: a known schedule is moved with `PUT /training-api/schedule/{id}` when the
///   date changed (404 → scheduled again). Without a known schedule, the days a schedule
///   may already exist on are listed first (`GET /training-api/schedule?startDate&endDate`)
///   and an entry for our workout is adopted; only then `POST /training-api/schedule/`.
///
/// While `scheduleID` is nil, `scheduledDate` is the date of the schedule create that is
/// about to be (or may have been) sent: it is checkpointed before the POST, so a retry
/// after an unknown outcome also looks on that day when the session moved meanwhile.
public struct GarminPusher: ProviderPusher {
    public var kind: ProviderKind { .garmin }
    public var options: GarminExportOptions

    public init(options: GarminExportOptions = GarminExportOptions()) {
        self.options = options
    }

    static let json = "application/json"
    static let createWorkoutPath = "/workoutportal/workout/v2"
    static let createSchedulePath = "/training-api/schedule/"

    static func workoutPath(_ id: String) -> String {
        "/training-api/workout/v2/" + FormEncoding.percentEncode(id)
    }

    static func schedulePath(_ id: String) -> String {
        "/training-api/schedule/" + FormEncoding.percentEncode(id)
    }

    static func scheduleListPath(date: String) -> String {
        let day = FormEncoding.percentEncode(date)
        return "/training-api/schedule?startDate=\(day)&endDate=\(day)"
    }

    public func upsert(
        _ session: ExportSession, workout: NormalizedWorkout, existing: RemoteWorkout, call: ProviderCall,
        checkpoint: (RemoteWorkout) throws -> Void
    ) throws -> RemoteWorkout {
        var state = existing
        let body = GarminWorkoutEncoder.body(workout, session: session, options: options)

        if let workoutID = state.workoutID {
            let updated = try ProviderResponse.unlessGone {
                () throws(ProviderCallError) in
                try call(.put, Self.workoutPath(workoutID), body, Self.json)
            }
            if updated == nil {
                // Deleted at Garmin (by the athlete): its schedules went with it.
                state = RemoteWorkout()
            }
        }
        if state.workoutID == nil {
            let response = try call(.post, Self.createWorkoutPath, body, Self.json)
            let object = try ProviderResponse.json(response, what: "the created workout")
            guard let workoutID = ProviderResponse.id(object["workoutId"]) else {
                throw ProviderCallError.badResponse("the created workout has no workoutId")
            }
            // A new workout has no schedule yet; `scheduledDate` is set just before the
            // schedule create is sent (see the type's comment).
            state = RemoteWorkout(workoutID: workoutID)
            try checkpoint(state)
        }
        try schedule(session, state: &state, call: call, checkpoint: checkpoint)
        return state
    }

    /// Makes the workout in `state` scheduled exactly once, on the session's date.
    private func schedule(
        _ session: ExportSession, state: inout RemoteWorkout, call: ProviderCall,
        checkpoint: (RemoteWorkout) throws -> Void
    ) throws {
        guard let workoutID = state.workoutID else { return }
        let body = Self.scheduleBody(workoutID: workoutID, date: session.date)

        if let scheduleID = state.scheduleID {
            if state.scheduledDate == session.date { return }
            let moved = try ProviderResponse.unlessGone {
                () throws(ProviderCallError) in
                try call(.put, Self.schedulePath(scheduleID), body, Self.json)
            }
            if moved != nil {
                state.scheduledDate = session.date
                try checkpoint(state)
                return
            }
            // The schedule was deleted at Garmin: schedule again (it cannot exist elsewhere).
            state.scheduleID = nil
            state.scheduledDate = nil
        }

        // No known schedule. One can only exist if a schedule create was sent before
        // (its date was checkpointed first) and its outcome was lost: look it up then,
        // and only then, so a normal push costs two calls, not three.
        var found: [(scheduleID: String, date: String)] = []
        if let pending = state.scheduledDate {
            var days = [session.date]
            if pending != session.date { days.append(pending) }
            for day in days {
                found += try schedules(of: workoutID, on: day, call: call)
            }
        }
        if let adopted = found.first {
            state.scheduleID = adopted.scheduleID
            state.scheduledDate = adopted.date
            try checkpoint(state)
            // More than one (should not happen): the others go, one copy on the calendar.
            for extra in found.dropFirst() {
                try ProviderResponse.delete(Self.schedulePath(extra.scheduleID), call: call)
            }
            if adopted.date != session.date {
                try schedule(session, state: &state, call: call, checkpoint: checkpoint)
            }
            return
        }

        if state.scheduledDate != session.date {
            state.scheduledDate = session.date
            try checkpoint(state)
        }
        let response = try call(.post, Self.createSchedulePath, body, Self.json)
        let value = try ProviderResponse.json(response, what: "the created schedule")
        guard let scheduleID = ProviderResponse.id(value) else {
            throw ProviderCallError.badResponse("the schedule create did not answer a schedule id")
        }
        state.scheduleID = scheduleID
        try checkpoint(state)
    }

    /// Our workout's schedules on `date`, from `GET /training-api/schedule?startDate=D&endDate=D`.
    private func schedules(of workoutID: String, on date: String, call: ProviderCall) throws
        -> [(scheduleID: String, date: String)]
    {
        let response = try call(.get, Self.scheduleListPath(date: date), [], nil)
        let value = try ProviderResponse.json(response, what: "the schedule list")
        guard let entries = value.arrayValue else {
            throw ProviderCallError.badResponse("the schedule list is not a JSON array")
        }
        var found: [(scheduleID: String, date: String)] = []
        for entry in entries where ProviderResponse.id(entry["workoutId"]) == workoutID {
            guard let scheduleID = ProviderResponse.id(entry["scheduleId"]) else {
                throw ProviderCallError.badResponse("a schedule list entry has no scheduleId")
            }
            let day = entry["date"]?.stringValue ?? date
            guard day == date else { continue }
            found.append((scheduleID, day))
        }
        return found
    }

    /// `{"workoutId": <number>, "date": "YYYY-MM-DD"}` (the id as a number when it is one).
    static func scheduleBody(workoutID: String, date: String) -> [UInt8] {
        let id: JSONValue = Int64(workoutID).map { .int($0) } ?? .string(workoutID)
        var object = JSONObject(capacity: 2)
        object.append(key: "workoutId", value: id)
        object.append(key: "date", value: .string(date))
        return JSONValue.object(object).serializedBytes
    }

    public func remove(
        sessionID: String, existing: RemoteWorkout, call: ProviderCall, checkpoint: (RemoteWorkout) throws -> Void
    ) throws {
        var state = existing
        if let scheduleID = state.scheduleID {
            try ProviderResponse.delete(Self.schedulePath(scheduleID), call: call)
            state.scheduleID = nil
            state.scheduledDate = nil
            try checkpoint(state)
        } else if let workoutID = state.workoutID, let pending = state.scheduledDate {
            // A schedule create whose outcome is unknown: take it off the calendar first
            // (Garmin refuses to delete a workout that is still scheduled).
            for found in try schedules(of: workoutID, on: pending, call: call) {
                try ProviderResponse.delete(Self.schedulePath(found.scheduleID), call: call)
            }
            state.scheduledDate = nil
            try checkpoint(state)
        }
        if let workoutID = state.workoutID {
            try ProviderResponse.delete(Self.workoutPath(workoutID), call: call)
            state = RemoteWorkout()
            try checkpoint(state)
        } else if state != RemoteWorkout() {
            state = RemoteWorkout()
            try checkpoint(state)
        }
    }
}

/// Reading provider answers (shared by the pushers).
enum ProviderResponse {
    /// The body of a 2xx as JSON, or `badResponse`.
    static func json(_ response: HTTPClientResponse, what: String) throws(ProviderCallError) -> JSONValue {
        do {
            return try JSONParser.parse(response.body)
        } catch {
            throw .badResponse("\(what) is not JSON (\(response.status))")
        }
    }

    /// An id given as a JSON number or a non-empty string, as a string.
    static func id(_ value: JSONValue?) -> String? {
        switch value {
        case .int(let number)?: return String(number)
        case .double(let number)? where number.rounded(.towardZero) == number && abs(number) < 9e15:
            return String(Int64(number))
        case .string(let text)? where !text.isEmpty: return text
        default: return nil
        }
    }

    /// A 404 or 410: the thing is not (or no longer) at the provider.
    static func isGone(_ error: ProviderCallError) -> Bool {
        if case .rejected(let status, _) = error { return status == 404 || status == 410 }
        return false
    }

    /// The call's response, or nil when the provider says the thing is gone.
    static func unlessGone(_ body: () throws(ProviderCallError) -> HTTPClientResponse) throws(ProviderCallError)
        -> HTTPClientResponse?
    {
        do {
            return try body()
        } catch let error where isGone(error) {
            return nil
        }
    }

    /// `DELETE path`; gone already counts as done.
    static func delete(_ path: String, call: ProviderCall) throws(ProviderCallError) {
        _ = try unlessGone { () throws(ProviderCallError) in try call(.delete, path, [], nil) }
    }
}

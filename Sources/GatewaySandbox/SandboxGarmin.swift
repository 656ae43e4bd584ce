import Foundation
import GatewayCore

/// Garmin Training API V2 and the wellness user endpoints (SPEC §4).
extension Sandbox {
    func garminUserID(_ request: SandboxRequest) throws(SandboxReject) -> SandboxResponse {
        let account = try authenticate(.garmin, request)
        return .json(200, ["userId": .string(account.id)])
    }

    /// Deregistration: the user's tokens are revoked; their data stays for inspection.
    func garminDeregister(_ request: SandboxRequest) throws(SandboxReject) -> SandboxResponse {
        let account = try authenticate(.garmin, request)
        account.revokeAllTokens()
        account.registered = false
        return .noContent()
    }

    func garminCreateWorkout(_ request: SandboxRequest) throws(SandboxReject) -> SandboxResponse {
        let account = try authenticate(.garmin, request)
        let body = try Self.garminWorkoutBody(request)
        let id = nextGarminWorkoutID
        nextGarminWorkoutID += 1
        account.garminWorkouts[id] = body
        garminWorkoutOwner[id] = account.id
        return .json(200, Self.garminWorkoutResponse(id: id, owner: account.id, body: body))
    }

    func garminGetWorkout(_ request: SandboxRequest, _ idText: String) throws(SandboxReject) -> SandboxResponse {
        let account = try authenticate(.garmin, request)
        let id = try ownedID(idText, owners: garminWorkoutOwner, account: account, what: "workout")
        return .json(200, Self.garminWorkoutResponse(id: id, owner: account.id, body: account.garminWorkouts[id]!))
    }

    func garminUpdateWorkout(_ request: SandboxRequest, _ idText: String) throws(SandboxReject) -> SandboxResponse {
        let account = try authenticate(.garmin, request)
        let id = try ownedID(idText, owners: garminWorkoutOwner, account: account, what: "workout")
        account.garminWorkouts[id] = try Self.garminWorkoutBody(request)
        return .noContent()
    }

    /// Deleting a workout also removes it from the calendar (its schedules go too).
    func garminDeleteWorkout(_ request: SandboxRequest, _ idText: String) throws(SandboxReject) -> SandboxResponse {
        let account = try authenticate(.garmin, request)
        let id = try ownedID(idText, owners: garminWorkoutOwner, account: account, what: "workout")
        account.garminWorkouts[id] = nil
        garminWorkoutOwner[id] = nil
        for (scheduleID, schedule) in account.garminSchedules where schedule.workoutID == id {
            account.garminSchedules[scheduleID] = nil
            garminScheduleOwner[scheduleID] = nil
        }
        return .noContent()
    }

    /// `POST schedule/` `{"workoutId","date"}` → the new schedule id as a bare JSON number.
    func garminCreateSchedule(_ request: SandboxRequest) throws(SandboxReject) -> SandboxResponse {
        let account = try authenticate(.garmin, request)
        let schedule = try scheduleBody(request, account: account)
        let id = nextGarminScheduleID
        nextGarminScheduleID += 1
        account.garminSchedules[id] = schedule
        garminScheduleOwner[id] = account.id
        return .json(200, .int(id))
    }

    func garminGetSchedule(_ request: SandboxRequest, _ idText: String) throws(SandboxReject) -> SandboxResponse {
        let account = try authenticate(.garmin, request)
        let id = try ownedID(idText, owners: garminScheduleOwner, account: account, what: "schedule")
        return .json(200, Self.scheduleJSON(id, account.garminSchedules[id]!))
    }

    func garminUpdateSchedule(_ request: SandboxRequest, _ idText: String) throws(SandboxReject) -> SandboxResponse {
        let account = try authenticate(.garmin, request)
        let id = try ownedID(idText, owners: garminScheduleOwner, account: account, what: "schedule")
        let schedule = try scheduleBody(request, account: account, scheduleID: id)
        account.garminSchedules[id] = schedule
        return .noContent()
    }

    func garminDeleteSchedule(_ request: SandboxRequest, _ idText: String) throws(SandboxReject) -> SandboxResponse {
        let account = try authenticate(.garmin, request)
        let id = try ownedID(idText, owners: garminScheduleOwner, account: account, what: "schedule")
        account.garminSchedules[id] = nil
        garminScheduleOwner[id] = nil
        return .noContent()
    }

    /// `GET schedule?startDate=D&endDate=D` (both inclusive) → `[{"scheduleId","workoutId","date"}]`.
    func garminListSchedules(_ request: SandboxRequest) throws(SandboxReject) -> SandboxResponse {
        let account = try authenticate(.garmin, request)
        guard let start = request.query["startDate"], Self.isDate(start), let end = request.query["endDate"],
            Self.isDate(end)
        else {
            throw SandboxReject(.error(400, "bad_request", "startDate and endDate (YYYY-MM-DD) are required"))
        }
        let list = account.garminSchedules
            .filter { $0.value.date >= start && $0.value.date <= end }
            .sorted { ($0.value.date, $0.key) < ($1.value.date, $1.key) }
            .map { Self.scheduleJSON($0.key, $0.value) }
        return .json(200, .array(list))
    }

    // MARK: - Helpers

    /// Parses `{id}`: 404 for an unknown id, 403 for another user's.
    func ownedID(_ text: String, owners: [Int64: String], account: SandboxUser, what: String) throws(SandboxReject)
        -> Int64
    {
        guard let id = Int64(text), let owner = owners[id] else {
            throw SandboxReject(.error(404, "not_found", "\(what) \(text) not found"))
        }
        guard owner == account.id else {
            throw SandboxReject(.error(403, "forbidden", "\(what) \(text) belongs to another user"))
        }
        return id
    }

    private func scheduleBody(_ request: SandboxRequest, account: SandboxUser, scheduleID: Int64? = nil)
        throws(SandboxReject) -> GarminSchedule
    {
        let body = try Self.jsonBody(request)
        guard let workoutID = body["workoutId"]?.intValue else {
            throw SandboxReject(.error(400, "bad_request", "workoutId (number) is required"))
        }
        guard let date = body["date"]?.stringValue, Self.isDate(date) else {
            throw SandboxReject(.error(400, "bad_request", "date (YYYY-MM-DD) is required"))
        }
        if let scheduleID, let given = body["scheduleId"], !(given == .null || given.intValue == scheduleID) {
            throw SandboxReject(.error(400, "bad_request", "scheduleId in the body differs from the path"))
        }
        _ = try ownedID(String(workoutID), owners: garminWorkoutOwner, account: account, what: "workout")
        return GarminSchedule(workoutID: workoutID, date: date)
    }

    static func scheduleJSON(_ id: Int64, _ schedule: GarminSchedule) -> JSONValue {
        ["scheduleId": .int(id), "workoutId": .int(schedule.workoutID), "date": .string(schedule.date)]
    }

    static func garminWorkoutResponse(id: Int64, owner: String, body: JSONValue) -> JSONValue {
        var object = JSONObject([(key: "workoutId", value: .int(id)), (key: "ownerId", value: .string(owner))])
        for member in body.objectValue?.members ?? [] where member.key != "workoutId" && member.key != "ownerId" {
            object[member.key] = member.value
        }
        return .object(object)
    }

    static func jsonBody(_ request: SandboxRequest) throws(SandboxReject) -> JSONValue {
        guard request.isJSON else {
            throw SandboxReject(.error(415, "unsupported_media_type", "Content-Type must be application/json"))
        }
        do {
            return try JSONParser.parse(request.body)
        } catch {
            throw SandboxReject(.error(400, "bad_request", "\(error)"))
        }
    }

    /// A workout body, checked the way Garmin would refuse it (SPEC §4).
    static func garminWorkoutBody(_ request: SandboxRequest) throws(SandboxReject) -> JSONValue {
        let body = try jsonBody(request)
        if let problem = garminWorkoutProblem(body) {
            throw SandboxReject(.error(400, "invalid_workout", problem))
        }
        return body
    }

    static let garminSports: Set<String> = ["RUNNING", "CYCLING", "LAP_SWIMMING"]
    static let garminIntensities: Set<String> = ["WARMUP", "ACTIVE", "INTERVAL", "RECOVERY", "REST", "COOLDOWN"]
    static let garminDurations: Set<String> = ["TIME", "DISTANCE", "OPEN"]
    static let garminTargets: Set<String> = ["HEART_RATE", "POWER", "PACE", "CADENCE", "OPEN"]

    static func garminWorkoutProblem(_ body: JSONValue) -> String? {
        guard body.objectValue != nil else { return "body must be a JSON object" }
        guard let name = body["workoutName"]?.stringValue, !name.isEmpty else { return "workoutName is required" }
        guard let sport = body["sport"]?.stringValue, garminSports.contains(sport) else {
            return "sport must be one of RUNNING, CYCLING, LAP_SWIMMING"
        }
        guard let segments = body["segments"]?.arrayValue, !segments.isEmpty else {
            return "segments must be a non-empty array"
        }
        var orders: [Int64] = []
        for (index, segment) in segments.enumerated() {
            guard segment["segmentOrder"]?.intValue != nil else { return "segments[\(index)].segmentOrder is required" }
            guard let steps = segment["steps"]?.arrayValue, !steps.isEmpty else {
                return "segments[\(index)].steps must be a non-empty array"
            }
            if let problem = garminStepsProblem(steps, path: "segments[\(index)].steps", orders: &orders) {
                return problem
            }
        }
        guard orders.count <= ProviderFacts.garminMaxSteps else {
            return "a workout has at most \(ProviderFacts.garminMaxSteps) steps, this one has \(orders.count)"
        }
        guard Set(orders).count == orders.count else { return "stepOrder values must be unique across the workout" }
        return nil
    }

    private static func garminStepsProblem(_ steps: [JSONValue], path: String, orders: inout [Int64]) -> String? {
        for (index, step) in steps.enumerated() {
            let here = "\(path)[\(index)]"
            guard let order = step["stepOrder"]?.intValue else { return "\(here).stepOrder is required" }
            orders.append(order)
            switch step["type"]?.stringValue {
            case "WorkoutStep":
                guard let intensity = step["intensity"]?.stringValue, garminIntensities.contains(intensity) else {
                    return "\(here).intensity is missing or unknown"
                }
                guard let duration = step["durationType"]?.stringValue, garminDurations.contains(duration) else {
                    return "\(here).durationType must be TIME, DISTANCE or OPEN"
                }
                if duration != "OPEN", (step["durationValue"]?.doubleValue ?? 0) <= 0 {
                    return "\(here).durationValue must be a positive number"
                }
                if let target = step["targetType"]?.stringValue, !garminTargets.contains(target) {
                    return "\(here).targetType \(target) is unknown"
                }
            case "WorkoutRepeatStep":
                guard step["repeatType"]?.stringValue == "REPEAT_UNTIL_STEPS_CMPLT" else {
                    return "\(here).repeatType must be REPEAT_UNTIL_STEPS_CMPLT"
                }
                guard let repeats = step["repeatValue"]?.intValue, repeats >= 1 else {
                    return "\(here).repeatValue must be an integer >= 1"
                }
                guard let inner = step["steps"]?.arrayValue, !inner.isEmpty else {
                    return "\(here).steps must be a non-empty array"
                }
                if let problem = garminStepsProblem(inner, path: "\(here).steps", orders: &orders) { return problem }
            default:
                return "\(here).type must be WorkoutStep or WorkoutRepeatStep"
            }
        }
        return nil
    }

    /// `YYYY-MM-DD`, a real calendar date.
    static func isDate(_ text: String) -> Bool {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard text.count == 10, parts.count == 3, parts[0].count == 4, parts[1].count == 2, parts[2].count == 2,
            let year = Int(parts[0]), let month = Int(parts[1]), let day = Int(parts[2]), (1...12).contains(month),
            day >= 1
        else { return false }
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
        let days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        return day <= days[month - 1]
    }
}

import Testing

@testable import GatewayCore

private func session(_ overrides: [String: JSONValue] = [:], removing: [String] = []) -> JSONValue {
    var object = JSONObject([
        ("id", "ses_1"), ("athleteId", "ath_1"), ("revision", 3), ("sessionType", "ENDURANCE"),
        ("date", "2026-12-01"), ("startTime", "2026-12-01T06:30:00+01:00"), ("title", "Threshold"),
        ("workout", ["sport": "BIKE", "steps": []]),
    ])
    for (k, v) in overrides { object[k] = v }
    for k in removing { object[k] = nil }
    return .object(object)
}

private func envelope(_ type: String = "session.updated", data: JSONValue) -> JSONValue {
    ["type": .string(type), "timestamp": "2026-11-25T08:00:00.123Z", "data": data]
}

private func decode(_ value: JSONValue) throws(PlanEventError) -> PlanEvent {
    let bytes = Array(value.serialized.utf8)
    return try bytes.withUnsafeBufferPointer { (buffer) throws(PlanEventError) -> PlanEvent in
        try PlanEvent.decode(buffer)
    }
}

private func problem(_ value: JSONValue) -> String? {
    do {
        _ = try decode(value)
        return nil
    } catch {
        return error.message
    }
}

@Test func decodesSessionUpdate() throws {
    let event = try decode(envelope(data: ["session": session()]))
    #expect(
        event
            == .sessionUpsert(
                SessionUpsert(
                    isCreate: false, id: "ses_1", athleteID: "ath_1", revision: 3, sessionType: "ENDURANCE",
                    date: "2026-12-01", startTime: "2026-12-01T06:30:00+01:00")))
}

@Test func decodesDeletionsAndUnknownTypes() throws {
    #expect(
        try decode(envelope("session.deleted", data: ["session": ["id": "s", "athleteId": "a", "revision": 4]]))
            == .sessionDeleted(SessionRef(id: "s", athleteID: "a", revision: 4)))
    #expect(try decode(envelope("athlete.deleted", data: ["athlete": ["id": "a"]])) == .athleteDeleted(athleteID: "a"))
    #expect(try decode(envelope("coach.updated", data: [:])) == .unknown(type: "coach.updated"))
}

@Test func errorsNameTheField() {
    #expect(
        problem(envelope(data: ["session": session(["revision": "3"])]))
            == "data.session.revision: must be an integer, got string")
    #expect(
        problem(envelope(data: ["session": session(["revision": 2.5])]))
            == "data.session.revision: must be an integer, got number")
    #expect(problem(envelope(data: ["session": session(["revision": -1])])) == "data.session.revision: must be >= 0")
    #expect(
        problem(envelope(data: ["session": session(["date": "2026-13-45"])]))
            == "data.session.date: must be a date YYYY-MM-DD")
    #expect(
        problem(envelope(data: ["session": session(["date": "2026-02-29"])]))
            == "data.session.date: must be a date YYYY-MM-DD")
    #expect(problem(envelope(data: ["session": session(["date": "2028-02-29"])])) == nil)
    #expect(problem(envelope(data: ["session": session(["id": ""])])) == "data.session.id: must not be empty")
    #expect(
        problem(envelope(data: ["session": session(removing: ["athleteId"])])) == "data.session.athleteId: is required")
    #expect(problem(envelope(data: ["session": session(removing: ["workout"])])) == "data.session.workout: is required")
    #expect(problem(envelope(data: ["session": session(["sessionType": "STRENGTH"], removing: ["workout"])])) == nil)
    #expect(
        problem(envelope(data: ["session": session(["startTime": "06:30"])]))
            == "data.session.startTime: must be an ISO-8601 date-time")
    #expect(
        problem(envelope(data: ["session": session(["workout": "run"])]))
            == "data.session.workout: must be an object, got string")
    #expect(problem(envelope(data: "x")) == "data: must be an object, got string")
    #expect(problem(["timestamp": "2026-11-25T08:00:00Z", "data": [:]]) == "type: is required")
    #expect(
        problem(["type": "session.updated", "timestamp": "yesterday", "data": [:]])
            == "timestamp: must be an ISO-8601 date-time")
    #expect(problem(envelope(data: [:])) == "data.session: is required")
    #expect(problem(["a", "b"]) == "$: must be an object, got array")
}

@Test func malformedJSONIsItsOwnError() {
    let bytes = Array(#"{"type": "session.updated""#.utf8)
    #expect(throws: PlanEventError.self) {
        try bytes.withUnsafeBufferPointer { (b) throws(PlanEventError) in _ = try PlanEvent.decode(b) }
    }
    do {
        try bytes.withUnsafeBufferPointer { (b) throws(PlanEventError) in _ = try PlanEvent.decode(b) }
    } catch {
        #expect(error.code == "malformed_json")
    }
}

@Test func isoDateTimes() {
    #expect(ISODateTime.parseEpochMillis("1970-01-01T00:00:00Z") == 0)
    #expect(ISODateTime.parseEpochMillis("1970-01-01T01:00:00+01:00") == 0)
    #expect(ISODateTime.parseEpochMillis("2021-02-25T15:02:10.5Z") == 1_614_265_330_500)
    #expect(ISODateTime.parseEpochMillis("2021-02-25 15:02:10Z") == nil)
    #expect(ISODateTime.parseEpochMillis("2021-02-25T25:02:10Z") == nil)
    #expect(ISODateTime.format(epochMillis: 1_614_265_330_500) == "2021-02-25T15:02:10.500Z")
    for millis: Int64 in [0, 951_782_400_000, 4_102_444_800_000, 1_795_596_750_552] {
        #expect(ISODateTime.parseEpochMillis(ISODateTime.format(epochMillis: millis)) == millis)
    }
}

@Test func revisionDecisions() {
    let stored = StoredSessionState(revision: 5, isEndurance: true, deleted: false, hasExternalWorkout: false)
    func decide(_ revision: Int64, endurance: Bool = true, delete: Bool = false, stored s: StoredSessionState? = stored)
        -> SessionTransition
    {
        SessionTransition.decide(
            stored: s, incomingRevision: revision, incomingIsEndurance: endurance, isDelete: delete,
            hasConnection: false)
    }
    #expect(decide(4) == .stale)
    #expect(decide(5) == .stale)
    #expect(decide(6) == .apply(status: .notConnected, needsPush: true))
    #expect(decide(0, stored: nil) == .apply(status: .notConnected, needsPush: true))
    #expect(decide(1, endurance: false, stored: nil) == .apply(status: nil, needsPush: false))
    #expect(decide(5, delete: true) == .stale)
    #expect(decide(6, delete: true) == .apply(status: .notConnected, needsPush: true))
    #expect(decide(6, delete: true, stored: nil) == .apply(status: nil, needsPush: false))
    let strength = StoredSessionState(revision: 5, isEndurance: false, deleted: false, hasExternalWorkout: false)
    #expect(decide(6, endurance: false, stored: strength) == .apply(status: nil, needsPush: false))
    #expect(decide(6, endurance: true, stored: strength) == .apply(status: .notConnected, needsPush: true))
    var onDevice = stored
    onDevice.hasExternalWorkout = true
    #expect(decide(6, delete: true, stored: onDevice) == .apply(status: .notConnected, needsPush: true))
    #expect(decide(6, endurance: false, stored: onDevice) == .apply(status: .notConnected, needsPush: true))
    #expect(
        SessionTransition.decide(
            stored: onDevice, incomingRevision: 7, incomingIsEndurance: true, isDelete: false, hasConnection: true)
            == .apply(status: .pending, needsPush: true))
}

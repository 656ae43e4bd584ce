import Foundation
import GatewayCore
import GatewayHTTP
import GatewayProviders
import Testing

@testable import GatewayPush

// The provider pushers against the in-process sandbox, over real HTTP, with the real
// token manager (SPEC §4, §5). Every assertion reads the sandbox's state.

/// A session valid for both providers (BIKE, %FTP and cadence targets, athlete thresholds).
func pushSession(
    id: String, date: String, title: String = "Threshold 5x5", repeats: Int = 5, startTime: String? = nil
) throws -> ExportSession {
    let start = startTime.map { #","startTime":"\#($0)""# } ?? ""
    let text = """
        {"id":"\(id)","athleteId":"ath_1","revision":1,"sessionType":"ENDURANCE","date":"\(date)"\(start),
         "title":"\(title)","description":"Hold it steady",
         "athlete":{"ftpWatts":260,"maxHr":188,"thresholdHr":170},
         "workout":{"sport":"BIKE","steps":[
           {"kind":"WARMUP","duration":{"type":"TIME","seconds":900},
            "target":{"type":"POWER_PERCENT_FTP","min":50,"max":65}},
           {"repeat":\(repeats),"steps":[
             {"kind":"INTERVAL","name":"Threshold","duration":{"type":"TIME","seconds":300},
              "target":{"type":"POWER_PERCENT_FTP","min":95,"max":105},
              "secondaryTarget":{"type":"CADENCE","minRpm":85,"maxRpm":95}},
             {"kind":"RECOVERY","duration":{"type":"TIME","seconds":180},
              "target":{"type":"POWER_PERCENT_FTP","min":50,"max":55}}]},
           {"kind":"COOLDOWN","duration":{"type":"DISTANCE","meters":2000}}]}}
        """
    return try ExportSession.decode(from: JSONParser.parse(text))
}

/// One provider's pusher wired to a connected fixture.
struct PushHarness {
    let f: Fixture
    let kind: ProviderKind
    let call: ProviderCall

    init(_ kind: ProviderKind) throws {
        let f = try Fixture(kind)
        self.f = f
        self.kind = kind
        let (manager, oauth, athlete) = (f.manager, f.oauth, f.athlete)
        call = {
            (method: HTTPMethod, path: String, body: [UInt8], contentType: String?) throws(ProviderCallError)
                -> HTTPClientResponse in
            do throws(TokenError) {
                return try manager.withToken(athleteID: athlete, provider: kind) {
                    (token) throws(ProviderCallError) in
                    try oauth.call(method, path: path, accessToken: token, body: body, contentType: contentType)
                }
            } catch {
                switch error {
                case .provider(let inner): throw inner
                default: throw .rejected(status: 0, message: error.description)
                }
            }
        }
    }

    func tearDown() { f.tearDown() }

    /// `GET /_sandbox/state/{provider}/{user}`.
    func state() throws -> JSONValue {
        try f.sandbox.admin(f.http, .get, "/state/\(kind.slug)/\(f.user)")
    }

    func members(_ key: String) throws -> [(key: String, value: JSONValue)] {
        try state()[key]?.objectValue?.members ?? []
    }

    func calls(_ key: String) throws -> Int64 { try f.sandbox.calls(f.http, key) }

    func resetCalls() throws { _ = try f.sandbox.admin(f.http, .delete, "/calls") }

    func fault(_ method: String, _ path: String, _ responses: [JSONValue]) throws {
        _ = try f.sandbox.admin(
            f.http, .post, "/faults",
            ["method": .string(method), "path": .string(path), "responses": .array(responses)])
    }

    /// Runs `body` with a checkpoint that records every state it is given into `log`
    /// (kept also when `body` throws).
    func recording<T>(
        into log: CheckpointLog = CheckpointLog(), _ body: ((RemoteWorkout) throws -> Void) throws -> T
    ) rethrows -> (T, [RemoteWorkout]) {
        let result = try body { log.states.append($0) }
        return (result, log.states)
    }
}

/// The states a checkpoint was given, in order.
final class CheckpointLog {
    var states: [RemoteWorkout] = []
}

/// The error an attempt threw, as the dispatcher sees it.
func pushError(_ body: () throws -> Void) -> ProviderCallError? {
    do {
        try body()
        return nil
    } catch let error as ProviderCallError {
        return error
    } catch {
        return .badResponse("unexpected error \(error)")
    }
}

func isOutcomeUnknown(_ error: ProviderCallError?) -> Bool {
    if case .transport(let inner)? = error { return inner.outcomeUnknown }
    return false
}

func sessionID() -> String { "ses_" + UUID().uuidString }

// MARK: - Garmin

@Suite struct GarminPusherTests {
    let pusher = GarminPusher()
    let workoutPost = "POST /garmin/workoutportal/workout/v2"
    let workoutPut = "PUT /garmin/training-api/workout/v2/{id}"
    let scheduleList = "GET /garmin/training-api/schedule"
    let schedulePost = "POST /garmin/training-api/schedule/"
    let schedulePut = "PUT /garmin/training-api/schedule/{id}"

    func upsert(
        _ h: PushHarness, _ session: ExportSession, _ existing: RemoteWorkout, into log: CheckpointLog = CheckpointLog()
    ) throws -> (RemoteWorkout, [RemoteWorkout]) {
        let workout = try session.prepare(for: .garmin)
        return try h.recording(into: log) { checkpoint in
            try pusher.upsert(session, workout: workout, existing: existing, call: h.call, checkpoint: checkpoint)
        }
    }

    func encoded(_ session: ExportSession) throws -> String {
        GarminWorkoutEncoder.encode(try session.prepare(for: .garmin), session: session).serialized
    }

    @Test func createUpdateMoveRemove() throws {
        let h = try PushHarness(.garmin)
        defer { h.tearDown() }
        let id = sessionID()
        try h.resetCalls()

        // Create: one workout, one schedule on the date, the body exactly as encoded.
        let first = try pushSession(id: id, date: "2031-03-10")
        let (created, saved) = try upsert(h, first, RemoteWorkout())
        let workoutID = try #require(created.workoutID)
        let scheduleID = try #require(created.scheduleID)
        #expect(created == RemoteWorkout(workoutID: workoutID, scheduleID: scheduleID, scheduledDate: "2031-03-10"))
        // Workout id; then the date of the schedule create about to go out; then its id.
        #expect(
            saved == [
                RemoteWorkout(workoutID: workoutID),
                RemoteWorkout(workoutID: workoutID, scheduledDate: "2031-03-10"),
                RemoteWorkout(workoutID: workoutID, scheduleID: scheduleID, scheduledDate: "2031-03-10"),
            ])
        var workouts = try h.members("workouts")
        #expect(workouts.map(\.key) == [workoutID])
        #expect(workouts.first?.value.serialized == (try encoded(first)))
        var schedules = try h.members("schedules")
        #expect(schedules.map(\.key) == [scheduleID])
        #expect(schedules.first?.value["date"] == "2031-03-10")
        #expect(schedules.first?.value["workoutId"]?.intValue == Int64(workoutID))
        #expect(try h.calls(workoutPost) == 1)
        // A fresh workout has no schedule to look for: two calls, no lookup.
        #expect(try h.calls(scheduleList) == 0)
        #expect(try h.calls(schedulePost) == 1)

        // Update: the same workout, changed in place; the schedule stays.
        let second = try pushSession(id: id, date: "2031-03-10", title: "Threshold 6x5", repeats: 6)
        let (updated, savedOnUpdate) = try upsert(h, second, created)
        #expect(updated == created)
        #expect(savedOnUpdate.isEmpty)
        workouts = try h.members("workouts")
        #expect(workouts.map(\.key) == [workoutID])
        #expect(workouts.first?.value.serialized == (try encoded(second)))
        #expect(workouts.first?.value["workoutName"] == "Threshold 6x5")
        #expect(try h.members("schedules").map(\.key) == [scheduleID])
        #expect(try h.calls(workoutPut) == 1)
        #expect(try h.calls(workoutPost) == 1)
        #expect(try h.calls(schedulePost) == 1)
        #expect(try h.calls(schedulePut) == 0)

        // Date change: the schedule moves; still one workout, one schedule.
        let third = try pushSession(id: id, date: "2031-03-14", title: "Threshold 6x5", repeats: 6)
        let (moved, savedOnMove) = try upsert(h, third, updated)
        #expect(moved == RemoteWorkout(workoutID: workoutID, scheduleID: scheduleID, scheduledDate: "2031-03-14"))
        #expect(savedOnMove == [moved])
        schedules = try h.members("schedules")
        #expect(schedules.map(\.key) == [scheduleID])
        #expect(schedules.first?.value["date"] == "2031-03-14")
        #expect(schedules.first?.value["workoutId"]?.intValue == Int64(workoutID))
        #expect(try h.members("workouts").map(\.key) == [workoutID])
        #expect(try h.calls(schedulePut) == 1)
        #expect(try h.calls(schedulePost) == 1)

        // Remove: both gone; the cleared state is checkpointed step by step.
        let (_, savedOnRemove) = try h.recording { checkpoint in
            try pusher.remove(sessionID: id, existing: moved, call: h.call, checkpoint: checkpoint)
        }
        #expect(
            savedOnRemove == [RemoteWorkout(workoutID: workoutID), RemoteWorkout()])
        #expect(try h.members("workouts").isEmpty)
        #expect(try h.members("schedules").isEmpty)

        // Removing again (nothing known) calls nothing.
        try h.resetCalls()
        try pusher.remove(sessionID: id, existing: RemoteWorkout(), call: h.call) { _ in }
        #expect(try h.f.sandbox.admin(h.f.http, .get, "/calls")["total"]?.intValue == 0)
    }

    @Test func removeTreatsGoneAsDone() throws {
        let h = try PushHarness(.garmin)
        defer { h.tearDown() }
        let id = sessionID()
        let (created, _) = try upsert(h, try pushSession(id: id, date: "2031-03-10"), RemoteWorkout())
        // The athlete deleted the workout (and with it the schedule) in Garmin Connect.
        _ = try h.call(.delete, "/training-api/workout/v2/\(created.workoutID ?? "")", [], nil)
        try pusher.remove(sessionID: id, existing: created, call: h.call) { _ in }
        #expect(try h.members("workouts").isEmpty)
        #expect(try h.members("schedules").isEmpty)
    }

    @Test func unknownOutcomeOfTheWorkoutCreateSchedulesOnlyTheKnownWorkout() throws {
        let h = try PushHarness(.garmin)
        defer { h.tearDown() }
        let session = try pushSession(id: sessionID(), date: "2031-03-10")
        try h.fault("POST", "/garmin/workoutportal/workout/v2", [["dropAfterHandling": true]])

        let log = CheckpointLog()
        let error = pushError { _ = try upsert(h, session, RemoteWorkout(), into: log) }
        let saved = log.states
        #expect(isOutcomeUnknown(error), "got \(String(describing: error))")
        #expect(saved.isEmpty)
        let orphans = try h.members("workouts").map(\.key)
        #expect(orphans.count == 1, "the sandbox created it before dropping the connection")
        #expect(try h.members("schedules").isEmpty)

        // The retry creates again (Garmin has no lookup) and schedules only its workout.
        let (state, _) = try upsert(h, session, saved.last ?? RemoteWorkout())
        let workoutID = try #require(state.workoutID)
        #expect(!orphans.contains(workoutID))
        #expect(try h.members("workouts").map(\.key).sorted() == (orphans + [workoutID]).sorted())
        let schedules = try h.members("schedules")
        #expect(schedules.map(\.key) == [state.scheduleID ?? "-"])
        #expect(schedules.first?.value["workoutId"]?.intValue == Int64(workoutID))
        #expect(schedules.first?.value["date"] == "2031-03-10")
        #expect(try h.calls(workoutPost) == 2)
        #expect(try h.calls(schedulePost) == 1)
    }

    @Test func unknownOutcomeOfTheScheduleCreateIsFoundByDate() throws {
        let h = try PushHarness(.garmin)
        defer { h.tearDown() }
        let session = try pushSession(id: sessionID(), date: "2031-03-10")
        try h.fault("POST", "/garmin/training-api/schedule/", [["dropAfterHandling": true]])

        let log = CheckpointLog()
        let error = pushError { _ = try upsert(h, session, RemoteWorkout(), into: log) }
        let saved = log.states
        #expect(isOutcomeUnknown(error), "got \(String(describing: error))")
        let workoutID = try #require(saved.last?.workoutID)
        #expect(saved.last == RemoteWorkout(workoutID: workoutID, scheduledDate: "2031-03-10"))
        let made = try h.members("schedules").map(\.key)
        #expect(made.count == 1)

        // The retry looks the date up, adopts the schedule, and creates nothing.
        let (state, savedOnRetry) = try upsert(h, session, saved.last ?? RemoteWorkout())
        #expect(state == RemoteWorkout(workoutID: workoutID, scheduleID: made.first, scheduledDate: "2031-03-10"))
        #expect(savedOnRetry == [state])
        #expect(try h.members("schedules").map(\.key) == made)
        #expect(try h.members("workouts").map(\.key) == [workoutID])
        #expect(try h.calls(workoutPost) == 1)
        #expect(try h.calls(workoutPut) == 1)
        #expect(try h.calls(schedulePost) == 1)
        // Only the retry looks up: the first try had no possibly-sent create to find.
        #expect(try h.calls(scheduleList) == 1)
    }

    @Test func unknownScheduleCreateThenTheDateChangesStillOneSchedule() throws {
        let h = try PushHarness(.garmin)
        defer { h.tearDown() }
        let id = sessionID()
        try h.fault("POST", "/garmin/training-api/schedule/", [["dropAfterHandling": true]])
        let log = CheckpointLog()
        let error = pushError {
            _ = try upsert(h, try pushSession(id: id, date: "2031-03-10"), RemoteWorkout(), into: log)
        }
        let saved = log.states
        #expect(isOutcomeUnknown(error))
        let made = try h.members("schedules").map(\.key)
        #expect(made.count == 1)

        // The coach moves the session before the retry: the schedule on the old day is
        // found and moved, not left behind next to a new one.
        let moved = try pushSession(id: id, date: "2031-03-12")
        let (state, _) = try upsert(h, moved, saved.last ?? RemoteWorkout())
        #expect(state.scheduleID == made.first)
        #expect(state.scheduledDate == "2031-03-12")
        let schedules = try h.members("schedules")
        #expect(schedules.map(\.key) == made)
        #expect(schedules.first?.value["date"] == "2031-03-12")
        #expect(try h.calls(schedulePost) == 1)
        #expect(try h.calls(schedulePut) == 1)
    }

    @Test func removeAfterAnUnknownScheduleCreateTakesItOffTheCalendar() throws {
        let h = try PushHarness(.garmin)
        defer { h.tearDown() }
        let id = sessionID()
        try h.fault("POST", "/garmin/training-api/schedule/", [["dropAfterHandling": true]])
        let log = CheckpointLog()
        let error = pushError {
            _ = try upsert(h, try pushSession(id: id, date: "2031-03-10"), RemoteWorkout(), into: log)
        }
        #expect(isOutcomeUnknown(error))
        #expect(try h.members("schedules").count == 1)

        try h.resetCalls()
        let (_, saved) = try h.recording { checkpoint in
            try pusher.remove(
                sessionID: id, existing: log.states.last ?? RemoteWorkout(), call: h.call, checkpoint: checkpoint)
        }
        #expect(saved == [RemoteWorkout(workoutID: log.states.last?.workoutID), RemoteWorkout()])
        #expect(try h.members("schedules").isEmpty)
        #expect(try h.members("workouts").isEmpty)
        #expect(try h.calls(scheduleList) == 1)
        #expect(try h.calls("DELETE /garmin/training-api/schedule/{id}") == 1)
        #expect(try h.calls("DELETE /garmin/training-api/workout/v2/{id}") == 1)
    }

    @Test func serverErrorThenSuccess() throws {
        let h = try PushHarness(.garmin)
        defer { h.tearDown() }
        let session = try pushSession(id: sessionID(), date: "2031-03-10")
        try h.fault("POST", "/garmin/workoutportal/workout/v2", [["status": 500]])
        let error = pushError { _ = try upsert(h, session, RemoteWorkout()) }
        #expect(error == .server(status: 500))
        #expect(try h.members("workouts").isEmpty)

        let (state, _) = try upsert(h, session, RemoteWorkout())
        #expect(try h.members("workouts").map(\.key) == [state.workoutID ?? "-"])
        #expect(try h.members("schedules").map(\.key) == [state.scheduleID ?? "-"])
        #expect(try h.calls(workoutPost) == 2)
    }

    @Test func vanishedWorkoutIsCreatedAgain() throws {
        let h = try PushHarness(.garmin)
        defer { h.tearDown() }
        let id = sessionID()
        let session = try pushSession(id: id, date: "2031-03-10")
        let (created, _) = try upsert(h, session, RemoteWorkout())
        _ = try h.call(.delete, "/training-api/workout/v2/\(created.workoutID ?? "")", [], nil)
        #expect(try h.members("schedules").isEmpty, "deleting a workout deletes its schedules")

        let (state, saved) = try upsert(h, session, created)
        let workoutID = try #require(state.workoutID)
        #expect(workoutID != created.workoutID)
        #expect(state.scheduleID != created.scheduleID)
        #expect(saved.first == RemoteWorkout(workoutID: workoutID))
        #expect(try h.members("workouts").map(\.key) == [workoutID])
        let schedules = try h.members("schedules")
        #expect(schedules.map(\.key) == [state.scheduleID ?? "-"])
        #expect(schedules.first?.value["workoutId"]?.intValue == Int64(workoutID))
        #expect(try h.calls(workoutPut) == 1)
        #expect(try h.calls(workoutPost) == 2)
    }

    @Test func vanishedScheduleIsScheduledAgainOnTheNewDate() throws {
        let h = try PushHarness(.garmin)
        defer { h.tearDown() }
        let id = sessionID()
        let (created, _) = try upsert(h, try pushSession(id: id, date: "2031-03-10"), RemoteWorkout())
        _ = try h.call(.delete, "/training-api/schedule/\(created.scheduleID ?? "")", [], nil)

        let (state, _) = try upsert(h, try pushSession(id: id, date: "2031-03-11"), created)
        #expect(state.workoutID == created.workoutID)
        #expect(state.scheduleID != created.scheduleID)
        #expect(state.scheduledDate == "2031-03-11")
        let schedules = try h.members("schedules")
        #expect(schedules.map(\.key) == [state.scheduleID ?? "-"])
        #expect(schedules.first?.value["date"] == "2031-03-11")
        #expect(try h.calls(schedulePut) == 1)
        #expect(try h.calls(schedulePost) == 2)
    }
}

// MARK: - Wahoo

@Suite struct WahooPusherTests {
    let workoutPost = "POST /wahoo/v1/workouts"
    let workoutPut = "PUT /wahoo/v1/workouts/{id}"
    let workoutList = "GET /wahoo/v1/workouts"
    let planPost = "POST /wahoo/v1/plans"
    let planPut = "PUT /wahoo/v1/plans/{id}"
    let planList = "GET /wahoo/v1/plans"

    func upsert(
        _ h: PushHarness, _ session: ExportSession, _ existing: RemoteWorkout, pusher: WahooPusher = WahooPusher(),
        into log: CheckpointLog = CheckpointLog()
    ) throws -> (RemoteWorkout, [RemoteWorkout]) {
        let workout = try session.prepare(for: .wahoo)
        return try h.recording(into: log) { checkpoint in
            try pusher.upsert(session, workout: workout, existing: existing, call: h.call, checkpoint: checkpoint)
        }
    }

    /// Checks the sandbox holds exactly this plan and workout for the session.
    func expectExactlyOne(_ h: PushHarness, _ session: ExportSession, _ state: RemoteWorkout, starts: String)
        throws
    {
        let plans = try h.members("plans")
        #expect(plans.map(\.key) == [state.planID ?? "-"])
        let plan = plans.first?.value
        #expect(plan?["external_id"]?.stringValue == session.id)
        #expect(plan?["filename"] == "plan.json")
        let expectedPlan = WahooPlanEncoder.plan(try session.prepare(for: .wahoo), session: session)
        #expect(plan?["plan"]?.serialized == expectedPlan.serialized)
        #expect(ISODateTime.isValid(plan?["provider_updated_at"]?.stringValue ?? ""))

        let workouts = try h.members("workouts")
        #expect(workouts.map(\.key) == [state.workoutID ?? "-"])
        let workout = workouts.first?.value
        #expect(workout?["workout_token"]?.stringValue == session.id)
        #expect(workout?["plan_id"]?.intValue == state.planID.flatMap { Int64($0) })
        #expect(workout?["starts"]?.stringValue == starts)
        #expect(workout?["name"]?.stringValue == session.title)
        #expect(workout?["workout_type_id"]?.intValue == 0)
        let minutes = WahooPlanEncoder.minutes(try session.prepare(for: .wahoo))
        #expect(workout?["minutes"]?.intValue == Int64(minutes))
    }

    @Test func createUpdateMoveRemove() throws {
        let h = try PushHarness(.wahoo)
        defer { h.tearDown() }
        let id = sessionID()
        try h.resetCalls()
        let pusher = WahooPusher()

        // Create: looked up first (nothing), then one plan and one workout.
        let first = try pushSession(id: id, date: "2031-03-10")
        let (created, saved) = try upsert(h, first, RemoteWorkout())
        let planID = try #require(created.planID)
        let workoutID = try #require(created.workoutID)
        #expect(created == RemoteWorkout(workoutID: workoutID, planID: planID, scheduledDate: "2031-03-10"))
        #expect(saved == [RemoteWorkout(planID: planID), created])
        try expectExactlyOne(h, first, created, starts: "2031-03-10T00:00:00Z")
        #expect(try h.calls(planList) == 1)
        #expect(try h.calls(planPost) == 1)
        #expect(try h.calls(workoutList) == 1)
        #expect(try h.calls(workoutPost) == 1)

        // Update: both changed in place, nothing listed, nothing created.
        let second = try pushSession(id: id, date: "2031-03-10", title: "Threshold 6x5", repeats: 6)
        let (updated, savedOnUpdate) = try upsert(h, second, created)
        #expect(updated == created)
        #expect(savedOnUpdate.isEmpty)
        try expectExactlyOne(h, second, updated, starts: "2031-03-10T00:00:00Z")
        #expect(try h.calls(planPut) == 1)
        #expect(try h.calls(workoutPut) == 1)
        #expect(try h.calls(planPost) == 1)
        #expect(try h.calls(workoutPost) == 1)
        #expect(try h.calls(planList) == 1)
        #expect(try h.calls(workoutList) == 1)

        // Date change (with a start time this time): `starts` moves.
        let third = try pushSession(
            id: id, date: "2031-03-12", title: "Threshold 6x5", repeats: 6, startTime: "2031-03-12T06:30:00+01:00")
        let (moved, savedOnMove) = try upsert(h, third, updated)
        #expect(moved == RemoteWorkout(workoutID: workoutID, planID: planID, scheduledDate: "2031-03-12"))
        #expect(savedOnMove == [moved])
        try expectExactlyOne(h, third, moved, starts: "2031-03-12T05:30:00Z")
        #expect(try h.calls(workoutPost) == 1)

        // Remove: workout, then plan.
        let (_, savedOnRemove) = try h.recording { checkpoint in
            try pusher.remove(sessionID: id, existing: moved, call: h.call, checkpoint: checkpoint)
        }
        #expect(savedOnRemove == [RemoteWorkout(planID: planID), RemoteWorkout()])
        #expect(try h.members("plans").isEmpty)
        #expect(try h.members("workouts").isEmpty)
    }

    @Test func unknownOutcomeOfThePlanCreateIsReconciledByExternalID() throws {
        let h = try PushHarness(.wahoo)
        defer { h.tearDown() }
        let session = try pushSession(id: sessionID(), date: "2031-03-10")
        try h.fault("POST", "/wahoo/v1/plans", [["dropAfterHandling": true]])

        let log = CheckpointLog()
        let error = pushError { _ = try upsert(h, session, RemoteWorkout(), into: log) }
        let saved = log.states
        #expect(isOutcomeUnknown(error), "got \(String(describing: error))")
        #expect(saved.isEmpty)
        let made = try h.members("plans").map(\.key)
        #expect(made.count == 1)

        let (state, savedOnRetry) = try upsert(h, session, RemoteWorkout())
        #expect(state.planID == made.first)
        #expect(savedOnRetry.first == RemoteWorkout(planID: made.first))
        try expectExactlyOne(h, session, state, starts: "2031-03-10T00:00:00Z")
        #expect(try h.calls(planPost) == 1)
        #expect(try h.calls(planPut) == 1, "the adopted plan is brought up to date")
    }

    @Test func unknownOutcomeOfTheWorkoutCreateIsReconciledByTokenAcrossPages() throws {
        let h = try PushHarness(.wahoo)
        defer { h.tearDown() }
        // Other workouts of the athlete, starting later: ours lands on the last page.
        for index in 1...5 {
            let form = FormEncoding.encode([
                ("workout[name]", "Other \(index)"), ("workout[workout_token]", "other_\(index)"),
                ("workout[workout_type_id]", "1"), ("workout[starts]", "2032-01-0\(index)T07:00:00Z"),
                ("workout[minutes]", "30"),
            ])
            _ = try h.call(.post, "/v1/workouts", Array(form.utf8), "application/x-www-form-urlencoded")
        }
        let pusher = WahooPusher(perPage: 2)
        let session = try pushSession(id: sessionID(), date: "2031-03-10")
        try h.fault("POST", "/wahoo/v1/workouts", [["dropAfterHandling": true]])

        let log = CheckpointLog()
        let error = pushError { _ = try upsert(h, session, RemoteWorkout(), pusher: pusher, into: log) }
        let saved = log.states
        #expect(isOutcomeUnknown(error), "got \(String(describing: error))")
        let planID = try #require(saved.last?.planID)
        #expect(saved.last == RemoteWorkout(planID: planID))
        let ours = try h.members("workouts").filter { $0.value["workout_token"]?.stringValue == session.id }
        #expect(ours.count == 1)

        try h.resetCalls()
        let (state, savedOnRetry) = try upsert(h, session, saved.last ?? RemoteWorkout(), pusher: pusher)
        #expect(state == RemoteWorkout(workoutID: ours.first?.key, planID: planID, scheduledDate: "2031-03-10"))
        #expect(savedOnRetry.first == RemoteWorkout(workoutID: ours.first?.key, planID: planID))
        #expect(try h.calls(workoutList) == 3, "6 workouts, 2 per page")
        #expect(try h.calls(workoutPost) == 0)
        #expect(try h.calls(planPost) == 0)
        let all = try h.members("workouts")
        #expect(all.count == 6)
        #expect(all.filter { $0.value["workout_token"]?.stringValue == session.id }.map(\.key) == [state.workoutID])
        #expect(try h.members("plans").map(\.key) == [planID])
    }

    @Test func removeWithUnknownIDsReconcilesFirst() throws {
        let h = try PushHarness(.wahoo)
        defer { h.tearDown() }
        let id = sessionID()
        let session = try pushSession(id: id, date: "2031-03-10")
        try h.fault("POST", "/wahoo/v1/workouts", [["dropAfterHandling": true]])
        let log = CheckpointLog()
        #expect(isOutcomeUnknown(pushError { _ = try upsert(h, session, RemoteWorkout(), into: log) }))
        let saved = log.states
        #expect(try h.members("workouts").count == 1)
        #expect(try h.members("plans").count == 1)

        // The session is deleted before the retry: the workout the lost answer would
        // have named is found by its token and removed, then the plan.
        let (_, savedOnRemove) = try h.recording { checkpoint in
            try WahooPusher().remove(
                sessionID: id, existing: saved.last ?? RemoteWorkout(), call: h.call, checkpoint: checkpoint)
        }
        #expect(savedOnRemove == [RemoteWorkout()])
        #expect(try h.members("workouts").isEmpty)
        #expect(try h.members("plans").isEmpty)

        // And with nothing known at all (the plan create itself was lost).
        let other = try pushSession(id: sessionID(), date: "2031-03-11")
        try h.fault("POST", "/wahoo/v1/plans", [["dropAfterHandling": true]])
        #expect(isOutcomeUnknown(pushError { _ = try upsert(h, other, RemoteWorkout()) }))
        #expect(try h.members("plans").count == 1)
        try WahooPusher().remove(sessionID: other.id, existing: RemoteWorkout(), call: h.call) { _ in }
        #expect(try h.members("plans").isEmpty)
    }

    @Test func serverErrorThenSuccess() throws {
        let h = try PushHarness(.wahoo)
        defer { h.tearDown() }
        let session = try pushSession(id: sessionID(), date: "2031-03-10")
        try h.fault("POST", "/wahoo/v1/workouts", [["status": 500]])
        let log = CheckpointLog()
        let error = pushError { _ = try upsert(h, session, RemoteWorkout(), into: log) }
        let saved = log.states
        #expect(error == .server(status: 500))
        #expect(try h.members("workouts").isEmpty)

        let (state, _) = try upsert(h, session, saved.last ?? RemoteWorkout())
        try expectExactlyOne(h, session, state, starts: "2031-03-10T00:00:00Z")
        #expect(try h.calls(workoutPost) == 2)
        #expect(try h.calls(planPost) == 1)
    }

    @Test func vanishedWorkoutAndPlanAreCreatedAgain() throws {
        let h = try PushHarness(.wahoo)
        defer { h.tearDown() }
        let id = sessionID()
        let session = try pushSession(id: id, date: "2031-03-10")
        let (created, _) = try upsert(h, session, RemoteWorkout())

        // The workout vanished: PUT 404 → looked up (not there) → created again.
        _ = try h.call(.delete, "/v1/workouts/\(created.workoutID ?? "")", [], nil)
        let (again, _) = try upsert(h, session, created)
        #expect(again.planID == created.planID)
        #expect(again.workoutID != created.workoutID)
        try expectExactlyOne(h, session, again, starts: "2031-03-10T00:00:00Z")
        #expect(try h.calls(workoutPut) == 1)
        #expect(try h.calls(workoutPost) == 2)

        // The plan vanished: created again, and the workout now uses the new one.
        _ = try h.call(.delete, "/v1/plans/\(again.planID ?? "")", [], nil)
        let (replanned, _) = try upsert(h, session, again)
        #expect(replanned.planID != again.planID)
        #expect(replanned.workoutID == again.workoutID)
        try expectExactlyOne(h, session, replanned, starts: "2031-03-10T00:00:00Z")
        #expect(try h.calls(planPost) == 2)
    }
}

import GatewayCore
import GatewayProviders
import Testing

struct WahooFormTests {
    static func session(startTime: String?) throws -> ExportSession {
        let fixture = try Fixtures.load("valid", "07-bike-threshold-5x5")
        var session = try ExportSession.decode(from: fixture["session"]!)
        session.startTime = startTime
        return session
    }

    @Test func planForm() throws {
        let session = try Self.session(startTime: nil)
        let fields = try WahooPlanEncoder.planFormFields(
            session, providerUpdatedAt: "2026-11-20T10:00:00Z")
        #expect(
            fields.map(\.0) == [
                "plan[file]", "plan[filename]", "plan[external_id]", "plan[provider_updated_at]",
            ])
        #expect(fields[1].1 == "plan.json")
        #expect(fields[2].1 == "ses_bike_thr")
        #expect(fields[3].1 == "2026-11-20T10:00:00Z")
        let prefix = "data:application/json;base64,"
        #expect(fields[0].1.hasPrefix(prefix))
        let decoded = try #require(Base64.decode(String(fields[0].1.dropFirst(prefix.count))))
        let plan = try JSONParser.parse(decoded)
        #expect(plan == (try WahooPlanEncoder.plan(session)))
    }

    @Test func workoutFormWithStartTime() throws {
        let session = try Self.session(startTime: "2026-12-01T06:30:00+01:00")
        let fields = try WahooPlanEncoder.workoutFormFields(session, planID: "987")
        #expect(
            fields.map(\.0) == [
                "workout[name]", "workout[workout_token]", "workout[workout_type_id]", "workout[starts]",
                "workout[minutes]", "workout[plan_id]",
            ])
        #expect(
            fields.map(\.1) == [
                "Threshold 5x5", "ses_bike_thr", "0", "2026-12-01T05:30:00Z", "65", "987",
            ])
    }

    @Test func workoutFormWithoutStartTimeStartsAtMidnightUTC() throws {
        let fixture = try Fixtures.load("valid", "16-run-fractional")
        let session = try ExportSession.decode(from: fixture["session"]!)
        let fields = try WahooPlanEncoder.workoutFormFields(session, planID: "1")
        // 45.5 s + 402.336 m at 247.875 s/km + 90 s = 235.2 s -> 4 minutes; run = type 1.
        #expect(
            fields.map(\.1) == ["Fractions", "ses_run_frac", "1", "2027-02-28T00:00:00Z", "4", "1"])
    }

    @Test func validationErrorsComeThroughTheForms() throws {
        let fixture = try Fixtures.load("valid", "12-swim-css")
        let session = try ExportSession.decode(from: fixture["session"]!)
        #expect(throws: ValidationFailure.self) {
            try WahooPlanEncoder.workoutFormFields(session, planID: "1")
        }
        #expect(throws: ValidationFailure.self) {
            try WahooPlanEncoder.planFormFields(session, providerUpdatedAt: "x")
        }
    }
}

struct GarminLimitTests {
    @Test func longTextsAreCut() throws {
        let step = WorkoutStep(
            kind: .active, name: String(repeating: "n", count: 300),
            notes: String(repeating: "x", count: 300), duration: .time(seconds: 60))
        let session = ExportSession(
            id: "s", title: String(repeating: "t", count: 300),
            description: String(repeating: "d", count: 2000), date: "2026-01-01",
            workout: Workout(sport: .run, items: [.step(step)]))
        let body = try GarminWorkoutEncoder.encode(
            session, options: GarminExportOptions(workoutProvider: String(repeating: "p", count: 30)))
        #expect(body["workoutName"]?.stringValue?.count == 255)
        #expect(body["description"]?.stringValue?.count == 1024)
        #expect(body["workoutProvider"]?.stringValue?.count == 20)
        #expect(body["workoutSourceId"]?.stringValue == "gatewayd")
        let firstStep = body["segments"]?.arrayValue?[0]["steps"]?.arrayValue?[0]
        #expect(firstStep?["description"]?.stringValue?.count == 512)
    }

    @Test func hundredStepsIsTheLimit() throws {
        let step = WorkoutItem.step(WorkoutStep(kind: .active, duration: .time(seconds: 10)))
        var session = ExportSession(
            id: "s", title: "t", date: "2026-01-01",
            workout: Workout(sport: .bike, items: Array(repeating: step, count: 100)))
        let body = try GarminWorkoutEncoder.encode(session)
        #expect(body["segments"]?.arrayValue?[0]["steps"]?.arrayValue?.count == 100)
        session.workout.items.append(step)
        #expect(throws: ValidationFailure.self) { try GarminWorkoutEncoder.encode(session) }
    }
}

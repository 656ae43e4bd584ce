/// What the exporters need from a session (`data.session` of a webhook, SPEC §2).
public struct ExportSession: Sendable, Equatable {
    public var id: String
    /// The session title; `"Workout"` when the plan app sent none.
    public var title: String
    public var description: String?
    /// `YYYY-MM-DD`.
    public var date: String
    /// ISO-8601 with offset, as the plan app sent it.
    public var startTime: String?
    public var athlete: AthleteThresholds?
    public var workout: Workout

    public init(
        id: String, title: String, description: String? = nil, date: String,
        startTime: String? = nil, athlete: AthleteThresholds? = nil, workout: Workout
    ) {
        self.id = id
        self.title = title
        self.description = description
        self.date = date
        self.startTime = startTime
        self.athlete = athlete
        self.workout = workout
    }

    /// Unix seconds at which the workout starts: `startTime`, else the date at 00:00 UTC.
    public var startUnixSeconds: Int64 {
        if let startTime, let seconds = SessionTime.unixSeconds(dateTime: startTime) {
            return seconds
        }
        return SessionTime.unixSeconds(date: date) ?? 0
    }

    /// Decodes `data.session`, collecting every problem (session fields, `athlete`, and the
    /// whole `workout`) into one failure whose ``ValidationFailure/message`` is ready to be
    /// stored as `lastExportError`.
    public static func decode(from session: JSONValue) throws(ValidationFailure) -> ExportSession {
        guard let object = session.objectValue else {
            throw ValidationFailure(problems: [
                ValidationProblem(path: "session", message: "must be an object, got \(session.typeName)")
            ])
        }
        // Most sessions are valid: a first pass only looks for a problem, the second one
        // (the same code) names them all.
        var quick = WorkoutJSONDecoder(recorder: ProblemFlag())
        if let session = decode(object, with: &quick), !quick.recorder.failed { return session }
        var full = WorkoutJSONDecoder(recorder: ProblemList(root: "session"))
        _ = decode(object, with: &full)
        // Problems found under the "session" pseudo-root are named relative to the session.
        let problems = full.recorder.problems.map { problem in
            var problem = problem
            if problem.path.hasPrefix("session.") { problem.path.removeFirst("session.".count) }
            return problem
        }
        throw ValidationFailure(problems: problems)
    }

    /// The session, or nil when a problem was recorded.
    private static func decode<Recorder: ProblemRecorder>(
        _ object: JSONObject, with decoder: inout WorkoutJSONDecoder<Recorder>
    ) -> ExportSession? {
        var id: String?
        if let value = object["id"], value != .null {
            if let string = value.stringValue, !string.isEmpty {
                id = string
            } else {
                decoder.fail("id", "must be a non-empty string")
            }
        } else {
            decoder.fail("id", "is required")
        }
        decoder.start(at: "session")
        let title = decoder.optionalString(object, "title")
        let description = decoder.optionalString(object, "description")
        var date: String?
        if let value = object["date"], value != .null {
            if let string = value.stringValue, SessionTime.unixSeconds(date: string) != nil {
                date = string
            } else {
                decoder.fail("date", "must be a date YYYY-MM-DD")
            }
        } else {
            decoder.fail("date", "is required")
        }
        var startTime: String?
        if let value = object["startTime"], value != .null {
            if let string = value.stringValue, SessionTime.unixSeconds(dateTime: string) != nil {
                startTime = string
            } else {
                decoder.fail("startTime", "must be an ISO-8601 date-time with offset")
            }
        }
        var athlete: AthleteThresholds?
        if let value = object["athlete"], value != .null {
            athlete = decoder.athlete(value, root: "athlete")
        }
        var workout: Workout?
        if let value = object["workout"], value != .null {
            workout = decoder.workout(value, root: "workout")
        } else {
            decoder.fail("workout", "is required")
        }
        guard !decoder.recorder.failed, let id, let date, let workout else { return nil }
        return ExportSession(
            id: id, title: title ?? "Workout", description: description, date: date,
            startTime: startTime, athlete: athlete, workout: workout)
    }

    /// Validates the workout for `target` (SPEC §3 plus that provider's limits) and
    /// normalizes it.
    public func prepare(for target: ExportTarget) throws(ValidationFailure) -> NormalizedWorkout {
        let problems = WorkoutValidator.validate(workout, athlete: athlete, for: target)
        guard problems.isEmpty else { throw ValidationFailure(problems: problems) }
        return WorkoutNormalizer.normalize(workout)
    }

    /// Decodes and validates in one go: the error string for `lastExportError`, or nil.
    public static func validationError(session: JSONValue, for target: ExportTarget) -> String? {
        do {
            _ = try decode(from: session).prepare(for: target)
            return nil
        } catch {
            return error.message
        }
    }
}

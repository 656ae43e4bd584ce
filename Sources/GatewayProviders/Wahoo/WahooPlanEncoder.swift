import GatewayCore

/// Builds the Wahoo Cloud API plan (plan.json) and the form fields of `POST /v1/plans` and
/// `POST /v1/workouts` (SPEC §4).
public enum WahooPlanEncoder {
    /// Validates the session for Wahoo and returns plan.json, parsed.
    public static func plan(_ session: ExportSession) throws(ValidationFailure) -> JSONValue {
        let workout = try session.prepare(for: .wahoo)
        return plan(workout, session: session)
    }

    /// plan.json of an already validated and normalized workout, parsed: ``planJSON(_:session:)``
    /// as a value, for tests and tools (the pusher sends the bytes).
    public static func plan(_ workout: NormalizedWorkout, session: ExportSession) -> JSONValue {
        let bytes = planJSON(workout, session: session)
        do {
            return try JSONParser.parse(bytes)
        } catch {
            preconditionFailure("plan.json is not JSON: \(error)")
        }
    }

    /// plan.json of an already validated and normalized workout, as compact JSON bytes.
    public static func planJSON(_ workout: NormalizedWorkout, session: ExportSession) -> [UInt8] {
        var json = writer(workout, session: session)
        writePlan(workout, session: session, into: &json)
        return json.finish()
    }

    /// A writer with room for the plan of `workout` (it grows if that is not enough).
    static func writer(_ workout: NormalizedWorkout, session: ExportSession) -> JSONByteWriter {
        JSONByteWriter(
            capacity: 512 + 160 * workout.treeStepCount + 2 * session.title.utf8.count
                + (session.description?.utf8.count ?? 0))
    }

    static func writePlan(_ workout: NormalizedWorkout, session: ExportSession, into json: inout JSONByteWriter) {
        json.beginObject()
        json.key("header")
        json.beginObject()
        json.member("name", string: session.title)
        json.member("version", "1.0.0")
        json.member("description", string: session.description ?? session.title)
        json.member("workout_type_family", integer: workoutTypeID(workout.sport))
        json.member("workout_type_location", integer: workout.sport == .bike ? 0 : 1)
        if let ftp = session.athlete?.ftpWatts {
            json.member("ftp", number: ftp.rounded())
        }
        if let thresholdHr = session.athlete?.thresholdHr {
            json.member("threshold_hr", number: thresholdHr.rounded())
        }
        json.endObject()
        json.key("intervals")
        json.beginArray()
        writeIntervals(workout.tree, athlete: session.athlete, into: &json)
        json.endArray()
        json.endObject()
    }

    /// The form of `POST /v1/plans` (and `PUT /v1/plans/{id}`), in this order:
    /// `plan[file]` (a base64 data URL of plan.json), `plan[filename]`, `plan[external_id]`
    /// (the session id), `plan[provider_updated_at]`.
    public static func planFormFields(
        _ session: ExportSession, providerUpdatedAt: String
    ) throws(ValidationFailure) -> [(String, String)] {
        let workout = try session.prepare(for: .wahoo)
        return planFormFields(workout, session: session, providerUpdatedAt: providerUpdatedAt)
    }

    /// The plan form of an already validated and normalized workout: plan.json is written
    /// and base64-encoded into the data URL without an intermediate array.
    public static func planFormFields(
        _ workout: NormalizedWorkout, session: ExportSession, providerUpdatedAt: String
    ) -> [(String, String)] {
        var json = writer(workout, session: session)
        writePlan(workout, session: session, into: &json)
        let url = json.withBytes { dataURL($0) }
        return planFormFields(dataURL: url, session: session, providerUpdatedAt: providerUpdatedAt)
    }

    /// The plan form around plan.json given as bytes.
    public static func planFormFields(
        planJSON: [UInt8], session: ExportSession, providerUpdatedAt: String
    ) -> [(String, String)] {
        let url = planJSON.withUnsafeBufferPointer { dataURL($0) }
        return planFormFields(dataURL: url, session: session, providerUpdatedAt: providerUpdatedAt)
    }

    static func planFormFields(
        dataURL: String, session: ExportSession, providerUpdatedAt: String
    ) -> [(String, String)] {
        [
            ("plan[file]", dataURL),
            ("plan[filename]", "plan.json"),
            ("plan[external_id]", session.id),
            ("plan[provider_updated_at]", providerUpdatedAt),
        ]
    }

    /// `data:application/json;base64,<json>`.
    public static func dataURL(_ json: UnsafeBufferPointer<UInt8>) -> String {
        let prefix: StaticString = "data:application/json;base64,"
        let count = prefix.utf8CodeUnitCount + Base64.encodedCount(json.count)
        // The prefix and the base64 of plan.json written straight into the string.
        return String(unsafeUninitializedCapacity: count) { buffer in
            guard let start = buffer.baseAddress else { return 0 }
            start.update(from: prefix.utf8Start, count: prefix.utf8CodeUnitCount)
            let end = Base64.encode(json, into: start + prefix.utf8CodeUnitCount)
            return end - start
        }
    }

    /// The form of `POST /v1/workouts` (and `PUT /v1/workouts/{id}`), in this order:
    /// `workout[name]`, `workout[workout_token]` (the session id), `workout[workout_type_id]`,
    /// `workout[starts]` (UTC), `workout[minutes]`, `workout[plan_id]`.
    public static func workoutFormFields(
        _ session: ExportSession, planID: String
    ) throws(ValidationFailure) -> [(String, String)] {
        let workout = try session.prepare(for: .wahoo)
        return workoutFormFields(workout, session: session, planID: planID)
    }

    public static func workoutFormFields(
        _ workout: NormalizedWorkout, session: ExportSession, planID: String
    ) -> [(String, String)] {
        [
            ("workout[name]", session.title),
            ("workout[workout_token]", session.id),
            ("workout[workout_type_id]", String(workoutTypeID(workout.sport))),
            ("workout[starts]", SessionTime.formatUTC(unixSeconds: session.startUnixSeconds)),
            ("workout[minutes]", String(minutes(workout))),
            ("workout[plan_id]", planID),
        ]
    }

    /// Whole minutes of the estimated duration, rounded up, at least 1.
    public static func minutes(_ workout: NormalizedWorkout) -> Int {
        max(1, Int((workout.estimatedSeconds / 60).rounded(.up)))
    }

    /// 0 bike, 1 run (used for both `workout_type_family` and `workout_type_id`).
    public static func workoutTypeID(_ sport: Sport) -> Int {
        sport == .run ? 1 : 0
    }

    static func intensityType(_ kind: StepKind) -> StaticString {
        switch kind {
        case .warmup: return "wu"
        case .active, .interval: return "active"
        case .recovery: return "recover"
        case .rest: return "rest"
        case .cooldown: return "cd"
        }
    }

    static func defaultName(_ kind: StepKind) -> StaticString {
        switch kind {
        case .warmup: return "Warm up"
        case .active: return "Active"
        case .interval: return "Interval"
        case .recovery: return "Recovery"
        case .rest: return "Rest"
        case .cooldown: return "Cool down"
        }
    }

    static func writeIntervals(
        _ items: [WorkoutItem], athlete: AthleteThresholds?, into json: inout JSONByteWriter
    ) {
        for index in items.indices {
            json.beginObject()
            switch items[index] {
            case .step(let step):
                json.key("name")
                if let name = step.name {
                    json.string(name)
                } else {
                    json.plainString(defaultName(step.kind))
                }
                switch step.duration {
                case .time(let seconds):
                    json.member("exit_trigger_type", "time")
                    json.member("exit_trigger_value", number: seconds)
                case .distance(let meters):
                    json.member("exit_trigger_type", "distance")
                    json.member("exit_trigger_value", number: meters)
                case .open:
                    // Rejected by the validator; never reached for a validated workout.
                    json.member("exit_trigger_type", "time")
                    json.member("exit_trigger_value", integer: 0)
                }
                json.member("intensity_type", intensityType(step.kind))
                json.key("targets")
                json.beginArray()
                if let target = step.target { writeTarget(target, athlete: athlete, into: &json) }
                if let target = step.secondaryTarget { writeTarget(target, athlete: athlete, into: &json) }
                json.endArray()
            case .repeatBlock(let block):
                json.member("name", string: String(block.count) + "x")
                json.member("exit_trigger_type", "repeat")
                json.member("exit_trigger_value", integer: block.count - 1)
                json.member("intensity_type", "active")
                json.key("intervals")
                json.beginArray()
                writeIntervals(block.items, athlete: athlete, into: &json)
                json.endArray()
            }
            json.endObject()
        }
    }

    /// One entry of `targets`, nothing for an OPEN target (or a zone without the athlete's
    /// threshold); bpm, watts and rpm are whole numbers.
    static func writeTarget(_ target: WorkoutTarget, athlete: AthleteThresholds?, into json: inout JSONByteWriter) {
        func range(_ type: StaticString, _ low: Double, _ high: Double) {
            json.beginObject()
            json.member("type", type)
            json.member("low", number: low)
            json.member("high", number: high)
            json.endObject()
        }
        switch target {
        case .heartRate(let low, let high):
            range("hr", low.rounded(), high.rounded())
        case .heartRateZone(let zone):
            guard let maxHr = athlete?.maxHr,
                let bpm = WorkoutConversions.heartRateZoneBpm(zone: zone, maxHr: maxHr)
            else { return }
            range("hr", bpm.low, bpm.high)
        case .power(let low, let high):
            range("watts", low.rounded(), high.rounded())
        case .powerZone(let zone):
            guard let ftp = athlete?.ftpWatts,
                let watts = WorkoutConversions.powerZoneWatts(zone: zone, ftpWatts: ftp)
            else { return }
            range("watts", watts.low, watts.high)
        case .powerPercentFTP(let low, let high):
            range(
                "ftp", WorkoutConversions.ftpFraction(percent: low),
                WorkoutConversions.ftpFraction(percent: high))
        case .pacePerKm, .pacePer100m:
            guard let speed = WorkoutConversions.speedRange(target) else { return }
            range("speed", speed.low, speed.high)
        case .cadence(let low, let high):
            range("rpm", low.rounded(), high.rounded())
        case .open:
            return
        }
    }
}

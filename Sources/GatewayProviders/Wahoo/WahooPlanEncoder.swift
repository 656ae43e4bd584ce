import GatewayCore

/// Builds the Wahoo Cloud API plan (plan.json) and the form fields of `POST /v1/plans` and
/// `POST /v1/workouts` (SPEC §4).
public enum WahooPlanEncoder {
    /// Validates the session for Wahoo and returns plan.json.
    public static func plan(_ session: ExportSession) throws(ValidationFailure) -> JSONValue {
        let workout = try session.prepare(for: .wahoo)
        return plan(workout, session: session)
    }

    /// plan.json of an already validated and normalized workout.
    public static func plan(_ workout: NormalizedWorkout, session: ExportSession) -> JSONValue {
        var header = JSONObject()
        header["name"] = .string(session.title)
        header["version"] = "1.0.0"
        header["description"] = .string(session.description ?? session.title)
        header["workout_type_family"] = .int(Int64(workoutTypeID(workout.sport)))
        header["workout_type_location"] = .int(workout.sport == .bike ? 0 : 1)
        if let ftp = session.athlete?.ftpWatts {
            header["ftp"] = jsonNumber(ftp.rounded())
        }
        if let thresholdHr = session.athlete?.thresholdHr {
            header["threshold_hr"] = jsonNumber(thresholdHr.rounded())
        }
        var plan = JSONObject()
        plan["header"] = .object(header)
        plan["intervals"] = .array(intervals(workout.tree, athlete: session.athlete))
        return .object(plan)
    }

    /// The form of `POST /v1/plans` (and `PUT /v1/plans/{id}`), in this order:
    /// `plan[file]` (a base64 data URL of plan.json), `plan[filename]`, `plan[external_id]`
    /// (the session id), `plan[provider_updated_at]`.
    public static func planFormFields(
        _ session: ExportSession, providerUpdatedAt: String
    ) throws(ValidationFailure) -> [(String, String)] {
        let plan = try plan(session)
        return planFormFields(plan: plan, session: session, providerUpdatedAt: providerUpdatedAt)
    }

    public static func planFormFields(
        plan: JSONValue, session: ExportSession, providerUpdatedAt: String
    ) -> [(String, String)] {
        [
            ("plan[file]", dataURL(plan)),
            ("plan[filename]", "plan.json"),
            ("plan[external_id]", session.id),
            ("plan[provider_updated_at]", providerUpdatedAt),
        ]
    }

    /// `data:application/json;base64,<plan.json>`.
    public static func dataURL(_ plan: JSONValue) -> String {
        "data:application/json;base64," + Base64.encode(plan.serialized.utf8)
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

    static func intensityType(_ kind: StepKind) -> String {
        switch kind {
        case .warmup: return "wu"
        case .active, .interval: return "active"
        case .recovery: return "recover"
        case .rest: return "rest"
        case .cooldown: return "cd"
        }
    }

    static func defaultName(_ kind: StepKind) -> String {
        switch kind {
        case .warmup: return "Warm up"
        case .active: return "Active"
        case .interval: return "Interval"
        case .recovery: return "Recovery"
        case .rest: return "Rest"
        case .cooldown: return "Cool down"
        }
    }

    static func intervals(_ items: [WorkoutItem], athlete: AthleteThresholds?) -> [JSONValue] {
        var out: [JSONValue] = []
        out.reserveCapacity(items.count)
        for item in items {
            var interval = JSONObject()
            switch item {
            case .step(let step):
                interval["name"] = .string(step.name ?? defaultName(step.kind))
                switch step.duration {
                case .time(let seconds):
                    interval["exit_trigger_type"] = "time"
                    interval["exit_trigger_value"] = jsonNumber(seconds)
                case .distance(let meters):
                    interval["exit_trigger_type"] = "distance"
                    interval["exit_trigger_value"] = jsonNumber(meters)
                case .open:
                    // Rejected by the validator; never reached for a validated workout.
                    interval["exit_trigger_type"] = "time"
                    interval["exit_trigger_value"] = 0
                }
                interval["intensity_type"] = .string(intensityType(step.kind))
                var targets: [JSONValue] = []
                for target in [step.target, step.secondaryTarget] {
                    if let target, let encoded = encodeTarget(target, athlete: athlete) {
                        targets.append(encoded)
                    }
                }
                interval["targets"] = .array(targets)
            case .repeatBlock(let block):
                interval["name"] = .string("\(block.count)x")
                interval["exit_trigger_type"] = "repeat"
                interval["exit_trigger_value"] = .int(Int64(block.count - 1))
                interval["intensity_type"] = "active"
                interval["intervals"] = .array(intervals(block.items, athlete: athlete))
            }
            out.append(.object(interval))
        }
        return out
    }

    /// One entry of `targets`, or nil for an OPEN target; bpm, watts and rpm are whole numbers.
    static func encodeTarget(_ target: WorkoutTarget, athlete: AthleteThresholds?) -> JSONValue? {
        func range(_ type: String, _ low: Double, _ high: Double) -> JSONValue {
            .object(
                JSONObject([("type", .string(type)), ("low", jsonNumber(low)), ("high", jsonNumber(high))]))
        }
        switch target {
        case .heartRate(let low, let high):
            return range("hr", low.rounded(), high.rounded())
        case .heartRateZone(let zone):
            guard let maxHr = athlete?.maxHr,
                let bpm = WorkoutConversions.heartRateZoneBpm(zone: zone, maxHr: maxHr)
            else { return nil }
            return range("hr", bpm.low, bpm.high)
        case .power(let low, let high):
            return range("watts", low.rounded(), high.rounded())
        case .powerZone(let zone):
            guard let ftp = athlete?.ftpWatts,
                let watts = WorkoutConversions.powerZoneWatts(zone: zone, ftpWatts: ftp)
            else { return nil }
            return range("watts", watts.low, watts.high)
        case .powerPercentFTP(let low, let high):
            return range(
                "ftp", WorkoutConversions.ftpFraction(percent: low),
                WorkoutConversions.ftpFraction(percent: high))
        case .pacePerKm, .pacePer100m:
            guard let speed = WorkoutConversions.speedRange(target) else { return nil }
            return range("speed", speed.low, speed.high)
        case .cadence(let low, let high):
            return range("rpm", low.rounded(), high.rounded())
        case .open:
            return nil
        }
    }
}

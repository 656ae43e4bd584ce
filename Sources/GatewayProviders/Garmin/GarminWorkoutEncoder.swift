import GatewayCore

/// Fixed fields of the Garmin body that come from the deployment, not from the session.
public struct GarminExportOptions: Sendable, Equatable {
    /// `workoutProvider`, at most 20 characters.
    public var workoutProvider: String
    /// `workoutSourceId`, at most 20 characters.
    public var workoutSourceId: String
    /// Pool length of LAP_SWIMMING workouts, in meters (SPEC has no pool length).
    public var poolLengthMeters: Double

    public init(
        workoutProvider: String = "Workout Gateway", workoutSourceId: String = "gatewayd",
        poolLengthMeters: Double = 25
    ) {
        self.workoutProvider = workoutProvider
        self.workoutSourceId = workoutSourceId
        self.poolLengthMeters = poolLengthMeters
    }
}

/// Builds the Garmin Training API V2 workout body (SPEC §4) of a session.
public enum GarminWorkoutEncoder {
    public static let maxWorkoutNameLength = 255
    public static let maxDescriptionLength = 1024
    public static let maxStepDescriptionLength = 512
    public static let maxProviderLength = 20

    /// Validates the session for Garmin and returns the body of
    /// `POST /workoutportal/workout/v2` (and of the `PUT` that updates it).
    public static func encode(
        _ session: ExportSession, options: GarminExportOptions = GarminExportOptions()
    ) throws(ValidationFailure) -> JSONValue {
        let workout = try session.prepare(for: .garmin)
        return encode(workout, session: session, options: options)
    }

    /// The body of an already validated and normalized workout.
    public static func encode(
        _ workout: NormalizedWorkout, session: ExportSession,
        options: GarminExportOptions = GarminExportOptions()
    ) -> JSONValue {
        let sport = sportName(workout.sport)
        var stepOrder = 0
        let steps = encodeItems(workout.tree, order: &stepOrder)

        var body = JSONObject()
        body["workoutName"] = .string(truncated(session.title, to: maxWorkoutNameLength))
        if let description = session.description {
            body["description"] = .string(truncated(description, to: maxDescriptionLength))
        }
        body["sport"] = .string(sport)
        body["estimatedDurationInSecs"] = .int(Int64(workout.estimatedSeconds.rounded()))
        if workout.sport == .swim {
            body["poolLength"] = jsonNumber(options.poolLengthMeters)
            body["poolLengthUnit"] = "METER"
        }
        body["workoutProvider"] = .string(truncated(options.workoutProvider, to: maxProviderLength))
        body["workoutSourceId"] = .string(truncated(options.workoutSourceId, to: maxProviderLength))
        var segment = JSONObject()
        segment["segmentOrder"] = 1
        segment["sport"] = .string(sport)
        if workout.sport == .swim {
            segment["poolLength"] = jsonNumber(options.poolLengthMeters)
            segment["poolLengthUnit"] = "METER"
        }
        segment["steps"] = .array(steps)
        body["segments"] = .array([.object(segment)])
        return .object(body)
    }

    /// RUN → RUNNING, BIKE → CYCLING, SWIM → LAP_SWIMMING.
    public static func sportName(_ sport: Sport) -> String {
        switch sport {
        case .run: return "RUNNING"
        case .bike: return "CYCLING"
        case .swim: return "LAP_SWIMMING"
        }
    }

    /// Steps in pre-order: a repeat takes its `stepOrder` before its children.
    static func encodeItems(_ items: [WorkoutItem], order: inout Int) -> [JSONValue] {
        var out: [JSONValue] = []
        out.reserveCapacity(items.count)
        for item in items {
            order += 1
            switch item {
            case .step(let step):
                out.append(.object(encodeStep(step, order: order)))
            case .repeatBlock(let block):
                var object = JSONObject()
                object["type"] = "WorkoutRepeatStep"
                object["stepOrder"] = .int(Int64(order))
                object["repeatType"] = "REPEAT_UNTIL_STEPS_CMPLT"
                object["repeatValue"] = .int(Int64(block.count))
                object["steps"] = .array(encodeItems(block.items, order: &order))
                out.append(.object(object))
            }
        }
        return out
    }

    static func encodeStep(_ step: WorkoutStep, order: Int) -> JSONObject {
        var object = JSONObject()
        object["type"] = "WorkoutStep"
        object["stepOrder"] = .int(Int64(order))
        object["intensity"] = .string(step.kind.rawValue)
        if let description = stepDescription(step) {
            object["description"] = .string(truncated(description, to: maxStepDescriptionLength))
        }
        switch step.duration {
        case .time(let seconds):
            object["durationType"] = "TIME"
            object["durationValue"] = jsonNumber(seconds)
        case .distance(let meters):
            object["durationType"] = "DISTANCE"
            object["durationValue"] = jsonNumber(meters)
            object["durationValueType"] = "METER"
        case .open:
            object["durationType"] = "OPEN"
        }
        addTarget(step.target ?? .open, prefix: "target", to: &object)
        if let secondary = step.secondaryTarget, secondary != .open {
            addTarget(secondary, prefix: "secondaryTarget", to: &object)
        }
        return object
    }

    /// `name`, `notes`, or `name - notes`.
    static func stepDescription(_ step: WorkoutStep) -> String? {
        switch (step.name, step.notes) {
        case (let name?, let notes?): return name + " - " + notes
        case (let name?, nil): return name
        case (nil, let notes?): return notes
        case (nil, nil): return nil
        }
    }

    /// Writes `<prefix>Type` and `<prefix>Value` / `<prefix>ValueLow|High` / `<prefix>ValueType`;
    /// bpm, watts and rpm are rounded to whole numbers.
    static func addTarget(_ target: WorkoutTarget, prefix: String, to object: inout JSONObject) {
        func range(_ type: String, _ low: Double, _ high: Double) {
            object[prefix + "Type"] = .string(type)
            object[prefix + "ValueLow"] = jsonNumber(low)
            object[prefix + "ValueHigh"] = jsonNumber(high)
        }
        switch target {
        case .heartRate(let low, let high):
            range("HEART_RATE", low.rounded(), high.rounded())
        case .heartRateZone(let zone):
            object[prefix + "Type"] = "HEART_RATE"
            object[prefix + "Value"] = .int(Int64(zone))
        case .power(let low, let high):
            range("POWER", low.rounded(), high.rounded())
        case .powerZone(let zone):
            object[prefix + "Type"] = "POWER"
            object[prefix + "Value"] = .int(Int64(zone))
        case .powerPercentFTP(let low, let high):
            range("POWER", low, high)
            object[prefix + "ValueType"] = "PERCENT"
        case .pacePerKm, .pacePer100m:
            let speed = WorkoutConversions.speedRange(target) ?? (0, 0)
            range("PACE", speed.low, speed.high)
        case .cadence(let low, let high):
            range("CADENCE", low.rounded(), high.rounded())
        case .open:
            object[prefix + "Type"] = "OPEN"
        }
    }
}

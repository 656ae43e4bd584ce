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
        let sport = JSONValue.string(sportName(workout.sport))
        var stepOrder = 0
        let steps = encodeItems(workout.tree, order: &stepOrder)
        let swim = workout.sport == .swim

        // Fresh objects with distinct keys: members are appended in document order.
        var body = JSONObject(capacity: 10)
        body.append(key: "workoutName", value: .string(truncated(session.title, to: maxWorkoutNameLength)))
        if let description = session.description {
            body.append(key: "description", value: .string(truncated(description, to: maxDescriptionLength)))
        }
        body.append(key: "sport", value: sport)
        body.append(key: "estimatedDurationInSecs", value: .int(Int64(workout.estimatedSeconds.rounded())))
        if swim {
            body.append(key: "poolLength", value: jsonNumber(options.poolLengthMeters))
            body.append(key: "poolLengthUnit", value: "METER")
        }
        body.append(
            key: "workoutProvider", value: .string(truncated(options.workoutProvider, to: maxProviderLength)))
        body.append(
            key: "workoutSourceId", value: .string(truncated(options.workoutSourceId, to: maxProviderLength)))
        var segment = JSONObject(capacity: 5)
        segment.append(key: "segmentOrder", value: 1)
        segment.append(key: "sport", value: sport)
        if swim {
            segment.append(key: "poolLength", value: jsonNumber(options.poolLengthMeters))
            segment.append(key: "poolLengthUnit", value: "METER")
        }
        segment.append(key: "steps", value: .array(steps))
        body.append(key: "segments", value: .array([.object(segment)]))
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
                var object = JSONObject(capacity: 5)
                object.append(key: "type", value: "WorkoutRepeatStep")
                object.append(key: "stepOrder", value: .int(Int64(order)))
                object.append(key: "repeatType", value: "REPEAT_UNTIL_STEPS_CMPLT")
                object.append(key: "repeatValue", value: .int(Int64(block.count)))
                object.append(key: "steps", value: .array(encodeItems(block.items, order: &order)))
                out.append(.object(object))
            }
        }
        return out
    }

    static func encodeStep(_ step: WorkoutStep, order: Int) -> JSONObject {
        // At most 7 members before the targets, 4 per target.
        var object = JSONObject(capacity: 15)
        object.append(key: "type", value: "WorkoutStep")
        object.append(key: "stepOrder", value: .int(Int64(order)))
        object.append(key: "intensity", value: .string(step.kind.rawValue))
        if let description = stepDescription(step) {
            object.append(key: "description", value: .string(truncated(description, to: maxStepDescriptionLength)))
        }
        switch step.duration {
        case .time(let seconds):
            object.append(key: "durationType", value: "TIME")
            object.append(key: "durationValue", value: jsonNumber(seconds))
        case .distance(let meters):
            object.append(key: "durationType", value: "DISTANCE")
            object.append(key: "durationValue", value: jsonNumber(meters))
            object.append(key: "durationValueType", value: "METER")
        case .open:
            object.append(key: "durationType", value: "OPEN")
        }
        addTarget(step.target ?? .open, keys: .primary, to: &object)
        if let secondary = step.secondaryTarget, secondary != .open {
            addTarget(secondary, keys: .secondary, to: &object)
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

    /// The member names of a target: `<prefix>Type`, `<prefix>Value`, ... (built once).
    struct TargetKeys {
        let type: String
        let value: String
        let low: String
        let high: String
        let valueType: String

        init(prefix: String) {
            type = prefix + "Type"
            value = prefix + "Value"
            low = prefix + "ValueLow"
            high = prefix + "ValueHigh"
            valueType = prefix + "ValueType"
        }

        static let primary = TargetKeys(prefix: "target")
        static let secondary = TargetKeys(prefix: "secondaryTarget")
    }

    /// Writes `<prefix>Type` and `<prefix>Value` / `<prefix>ValueLow|High` / `<prefix>ValueType`;
    /// bpm, watts and rpm are rounded to whole numbers.
    static func addTarget(_ target: WorkoutTarget, keys: TargetKeys, to object: inout JSONObject) {
        func range(_ type: JSONValue, _ low: Double, _ high: Double) {
            object.append(key: keys.type, value: type)
            object.append(key: keys.low, value: jsonNumber(low))
            object.append(key: keys.high, value: jsonNumber(high))
        }
        switch target {
        case .heartRate(let low, let high):
            range("HEART_RATE", low.rounded(), high.rounded())
        case .heartRateZone(let zone):
            object.append(key: keys.type, value: "HEART_RATE")
            object.append(key: keys.value, value: .int(Int64(zone)))
        case .power(let low, let high):
            range("POWER", low.rounded(), high.rounded())
        case .powerZone(let zone):
            object.append(key: keys.type, value: "POWER")
            object.append(key: keys.value, value: .int(Int64(zone)))
        case .powerPercentFTP(let low, let high):
            range("POWER", low, high)
            object.append(key: keys.valueType, value: "PERCENT")
        case .pacePerKm, .pacePer100m:
            let speed = WorkoutConversions.speedRange(target) ?? (0, 0)
            range("PACE", speed.low, speed.high)
        case .cadence(let low, let high):
            range("CADENCE", low.rounded(), high.rounded())
        case .open:
            object.append(key: keys.type, value: "OPEN")
        }
    }
}

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
    /// `POST /workoutportal/workout/v2` (and of the `PUT` that updates it), parsed.
    public static func encode(
        _ session: ExportSession, options: GarminExportOptions = GarminExportOptions()
    ) throws(ValidationFailure) -> JSONValue {
        let workout = try session.prepare(for: .garmin)
        return encode(workout, session: session, options: options)
    }

    /// The body of an already validated and normalized workout, parsed: ``body(_:session:options:)``
    /// as a value, for tests and tools (the pusher sends the bytes).
    public static func encode(
        _ workout: NormalizedWorkout, session: ExportSession,
        options: GarminExportOptions = GarminExportOptions()
    ) -> JSONValue {
        let bytes = body(workout, session: session, options: options)
        do {
            return try JSONParser.parse(bytes)
        } catch {
            preconditionFailure("the Garmin body is not JSON: \(error)")
        }
    }

    /// The body of an already validated and normalized workout, as the compact JSON bytes
    /// sent to Garmin: written straight into one buffer, members in a fixed order.
    public static func body(
        _ workout: NormalizedWorkout, session: ExportSession,
        options: GarminExportOptions = GarminExportOptions()
    ) -> [UInt8] {
        let swim = workout.sport == .swim
        let sport = sportLiteral(workout.sport)
        // About 250 bytes per step; the writer grows if that is not enough.
        var json = JSONByteWriter(
            capacity: 512 + 256 * workout.treeStepCount + session.title.utf8.count
                + (session.description?.utf8.count ?? 0))
        json.beginObject()
        json.member("workoutName", string: truncated(session.title, to: maxWorkoutNameLength))
        if let description = session.description {
            json.member("description", string: truncated(description, to: maxDescriptionLength))
        }
        json.member("sport", sport)
        json.member("estimatedDurationInSecs", integer: Int(workout.estimatedSeconds.rounded()))
        if swim {
            json.member("poolLength", number: options.poolLengthMeters)
            json.member("poolLengthUnit", "METER")
        }
        json.member("workoutProvider", string: truncated(options.workoutProvider, to: maxProviderLength))
        json.member("workoutSourceId", string: truncated(options.workoutSourceId, to: maxProviderLength))
        json.key("segments")
        json.beginArray()
        json.beginObject()
        json.member("segmentOrder", integer: 1)
        json.member("sport", sport)
        if swim {
            json.member("poolLength", number: options.poolLengthMeters)
            json.member("poolLengthUnit", "METER")
        }
        json.key("steps")
        json.beginArray()
        var stepOrder = 0
        writeItems(workout.tree, order: &stepOrder, into: &json)
        json.endArray()
        json.endObject()
        json.endArray()
        json.endObject()
        return json.finish()
    }

    /// RUN → RUNNING, BIKE → CYCLING, SWIM → LAP_SWIMMING.
    public static func sportName(_ sport: Sport) -> String {
        switch sport {
        case .run: return "RUNNING"
        case .bike: return "CYCLING"
        case .swim: return "LAP_SWIMMING"
        }
    }

    static func sportLiteral(_ sport: Sport) -> StaticString {
        switch sport {
        case .run: return "RUNNING"
        case .bike: return "CYCLING"
        case .swim: return "LAP_SWIMMING"
        }
    }

    static func intensityLiteral(_ kind: StepKind) -> StaticString {
        switch kind {
        case .warmup: return "WARMUP"
        case .active: return "ACTIVE"
        case .interval: return "INTERVAL"
        case .recovery: return "RECOVERY"
        case .rest: return "REST"
        case .cooldown: return "COOLDOWN"
        }
    }

    /// Steps in pre-order: a repeat takes its `stepOrder` before its children.
    static func writeItems(_ items: [WorkoutItem], order: inout Int, into json: inout JSONByteWriter) {
        for index in items.indices {
            order += 1
            switch items[index] {
            case .step(let step):
                writeStep(step, order: order, into: &json)
            case .repeatBlock(let block):
                json.beginObject()
                json.member("type", "WorkoutRepeatStep")
                json.member("stepOrder", integer: order)
                json.member("repeatType", "REPEAT_UNTIL_STEPS_CMPLT")
                json.member("repeatValue", integer: block.count)
                json.key("steps")
                json.beginArray()
                writeItems(block.items, order: &order, into: &json)
                json.endArray()
                json.endObject()
            }
        }
    }

    static func writeStep(_ step: WorkoutStep, order: Int, into json: inout JSONByteWriter) {
        json.beginObject()
        json.member("type", "WorkoutStep")
        json.member("stepOrder", integer: order)
        json.member("intensity", intensityLiteral(step.kind))
        if let name = step.name, let notes = step.notes,
            name.utf8.count + 3 + notes.utf8.count <= maxStepDescriptionLength
        {
            // `name - notes` fits (never more characters than bytes): written without
            // building the string.
            json.member("description", string: name, " - ", notes)
        } else if let description = stepDescription(step) {
            json.member("description", string: truncated(description, to: maxStepDescriptionLength))
        }
        switch step.duration {
        case .time(let seconds):
            json.member("durationType", "TIME")
            json.member("durationValue", number: seconds)
        case .distance(let meters):
            json.member("durationType", "DISTANCE")
            json.member("durationValue", number: meters)
            json.member("durationValueType", "METER")
        case .open:
            json.member("durationType", "OPEN")
        }
        writeTarget(step.target ?? .open, keys: .primary, into: &json)
        if let secondary = step.secondaryTarget, secondary != .open {
            writeTarget(secondary, keys: .secondary, into: &json)
        }
        json.endObject()
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

    /// The member names of a target: `<prefix>Type`, `<prefix>Value`, ...
    struct TargetKeys {
        let type: StaticString
        let value: StaticString
        let low: StaticString
        let high: StaticString
        let valueType: StaticString

        static let primary = TargetKeys(
            type: "targetType", value: "targetValue", low: "targetValueLow", high: "targetValueHigh",
            valueType: "targetValueType")
        static let secondary = TargetKeys(
            type: "secondaryTargetType", value: "secondaryTargetValue", low: "secondaryTargetValueLow",
            high: "secondaryTargetValueHigh", valueType: "secondaryTargetValueType")
    }

    /// Writes `<prefix>Type` and `<prefix>Value` / `<prefix>ValueLow|High` / `<prefix>ValueType`;
    /// bpm, watts and rpm are rounded to whole numbers.
    static func writeTarget(_ target: WorkoutTarget, keys: TargetKeys, into json: inout JSONByteWriter) {
        func range(_ type: StaticString, _ low: Double, _ high: Double) {
            json.member(keys.type, type)
            json.member(keys.low, number: low)
            json.member(keys.high, number: high)
        }
        switch target {
        case .heartRate(let low, let high):
            range("HEART_RATE", low.rounded(), high.rounded())
        case .heartRateZone(let zone):
            json.member(keys.type, "HEART_RATE")
            json.member(keys.value, integer: zone)
        case .power(let low, let high):
            range("POWER", low.rounded(), high.rounded())
        case .powerZone(let zone):
            json.member(keys.type, "POWER")
            json.member(keys.value, integer: zone)
        case .powerPercentFTP(let low, let high):
            range("POWER", low, high)
            json.member(keys.valueType, "PERCENT")
        case .pacePerKm, .pacePer100m:
            let speed = WorkoutConversions.speedRange(target) ?? (0, 0)
            range("PACE", speed.low, speed.high)
        case .cadence(let low, let high):
            range("CADENCE", low.rounded(), high.rounded())
        case .open:
            json.member(keys.type, "OPEN")
        }
    }
}

/// The structural problems of a `workout` object: wrong types, missing fields, unknown
/// enum values. Range and provider rules are the validator's job.
public struct WorkoutDecodingError: Error, Sendable, Equatable {
    public var problems: [ValidationProblem]

    public init(problems: [ValidationProblem]) {
        self.problems = problems
    }

    public var failure: ValidationFailure { ValidationFailure(problems: problems) }
}

extension Workout {
    /// Decodes the `workout` object of SPEC §3, collecting every structural problem.
    /// Unknown members are ignored (forward compatibility).
    public static func decode(
        from value: JSONValue, path: String = "workout"
    ) throws(WorkoutDecodingError) -> Workout {
        var quick = WorkoutJSONDecoder(recorder: ProblemFlag())
        if let workout = quick.workout(value, root: path), !quick.recorder.failed { return workout }
        var decoder = WorkoutJSONDecoder(recorder: ProblemList(root: path))
        _ = decoder.workout(value, root: path)
        throw WorkoutDecodingError(problems: decoder.recorder.problems)
    }
}

extension AthleteThresholds {
    /// Decodes the optional `athlete` object: `ftpWatts`, `maxHr`, `thresholdHr`, each an
    /// optional number (`null` counts as absent).
    public static func decode(
        from value: JSONValue, path: String = "athlete"
    ) throws(WorkoutDecodingError) -> AthleteThresholds {
        var quick = WorkoutJSONDecoder(recorder: ProblemFlag())
        if let athlete = quick.athlete(value, root: path), !quick.recorder.failed { return athlete }
        var decoder = WorkoutJSONDecoder(recorder: ProblemList(root: path))
        _ = decoder.athlete(value, root: path)
        throw WorkoutDecodingError(problems: decoder.recorder.problems)
    }
}

/// Names of SPEC §3 that the decoder matches.
enum WorkoutJSONNames {
    /// The `type` values of a duration and of a target, in the order of the decoder's switches.
    static let durationTypes = ["TIME", "DISTANCE", "OPEN"]
    static let targetTypes = [
        "HEART_RATE", "HEART_RATE_ZONE", "POWER", "POWER_ZONE", "POWER_PERCENT_FTP", "PACE", "CADENCE", "OPEN",
    ]
    static let athleteKeys = ["ftpWatts", "maxHr", "thresholdHr"]
}

/// Walks the JSON, records problems and keeps going so that all of them are reported.
/// The current location is kept by the recorder (which may keep only whether there is a
/// problem, see ``ProblemRecorder``).
struct WorkoutJSONDecoder<Recorder: ProblemRecorder> {
    var recorder: Recorder

    /// A problem at an explicit path.
    mutating func fail(_ path: String, _ message: @autoclosure () -> String) {
        recorder.fail(path: path, message())
    }

    /// A problem at the current path.
    mutating func report(_ message: @autoclosure () -> String) {
        recorder.fail(message())
    }

    /// A problem at the member `key` of the current path.
    mutating func report(_ key: String, _ message: @autoclosure () -> String) {
        recorder.fail(key, message())
    }

    /// Makes `root` the current path (`workout`, `athlete`, `session`).
    mutating func start(at root: String) {
        recorder.start(at: root)
    }

    mutating func object(_ value: JSONValue) -> JSONObject? {
        guard case .object(let object) = value else {
            report("must be an object, got \(value.typeName)")
            return nil
        }
        return object
    }

    /// A required number.
    mutating func number(_ object: JSONObject, _ key: String) -> Double? {
        guard let value = object[key], value != .null else {
            report(key, "is required")
            return nil
        }
        guard let number = value.doubleValue else {
            report(key, "must be a number, got \(value.typeName)")
            return nil
        }
        return number
    }

    /// A required integer.
    mutating func integer(_ object: JSONObject, _ key: String) -> Int? {
        guard let value = object[key], value != .null else {
            report(key, "is required")
            return nil
        }
        guard let int = value.intValue, let small = Int(exactly: int) else {
            if value.doubleValue != nil {
                report(key, "must be an integer")
            } else {
                report(key, "must be an integer, got \(value.typeName)")
            }
            return nil
        }
        return small
    }

    /// An optional string (absent or null gives nil).
    mutating func optionalString(_ object: JSONObject, _ key: String) -> String? {
        guard let value = object[key], value != .null else { return nil }
        guard case .string(let string) = value else {
            report(key, "must be a string, got \(value.typeName)")
            return nil
        }
        return string
    }

    /// A required enum given as a string.
    mutating func enumeration<E: RawRepresentable & CaseIterable>(
        _ object: JSONObject, _ key: String, as type: E.Type
    ) -> E? where E.RawValue == String {
        guard let value = object[key], value != .null else {
            report(key, "is required")
            return nil
        }
        // Built only for an error message: this runs for every step.
        var allowed: String { E.allCases.map(\.rawValue).joined(separator: ", ") }
        guard case .string(let string) = value else {
            report(key, "must be one of \(allowed), got \(value.typeName)")
            return nil
        }
        // The same match as `E(rawValue:)`, without its generic string switch.
        for value in E.allCases where value.rawValue == string { return value }
        report(key, "must be one of \(allowed), got \"\(string)\"")
        return nil
    }

    /// The `workout` object at `root`.
    mutating func workout(_ value: JSONValue, root: String) -> Workout? {
        start(at: root)
        guard let object = object(value) else { return nil }
        let sport = enumeration(object, "sport", as: Sport.self)
        let items = itemList(object)
        guard let sport, let items else { return nil }
        return Workout(sport: sport, items: items)
    }

    /// The `steps` array of a workout or a repeat block (a member of the current path).
    mutating func itemList(_ object: JSONObject) -> [WorkoutItem]? {
        recorder.push("steps")
        defer { recorder.pop() }
        guard let value = object["steps"], value != .null else {
            report("is required")
            return nil
        }
        guard case .array(let array) = value else {
            report("must be an array, got \(value.typeName)")
            return nil
        }
        var items: [WorkoutItem] = []
        items.reserveCapacity(array.count)
        var ok = true
        for index in array.indices {
            recorder.push(index: index)
            if let item = item(array[index]) {
                items.append(item)
            } else {
                ok = false
            }
            recorder.pop()
        }
        return ok ? items : nil
    }

    mutating func item(_ value: JSONValue) -> WorkoutItem? {
        guard let object = object(value) else { return nil }
        if object["repeat"] != nil {
            let count = integer(object, "repeat")
            let items = itemList(object)
            guard let count, let items else { return nil }
            return .repeatBlock(RepeatBlock(count: count, items: items))
        }
        return step(object).map(WorkoutItem.step)
    }

    mutating func step(_ object: JSONObject) -> WorkoutStep? {
        let kind = enumeration(object, "kind", as: StepKind.self)
        let name = optionalString(object, "name")
        let notes = optionalString(object, "notes")
        var duration: StepDuration?
        if let value = object["duration"], value != .null {
            recorder.push("duration")
            duration = self.duration(value)
            recorder.pop()
        } else {
            report("duration", "is required")
        }
        var target: WorkoutTarget?? = .some(nil)
        if let value = object["target"], value != .null {
            recorder.push("target")
            target = self.target(value).map { .some($0) }
            recorder.pop()
        }
        var secondary: WorkoutTarget?? = .some(nil)
        if let value = object["secondaryTarget"], value != .null {
            recorder.push("secondaryTarget")
            secondary = self.target(value).map { .some($0) }
            recorder.pop()
        }
        guard let kind, let duration, let target, let secondary else { return nil }
        return WorkoutStep(
            kind: kind, name: name, notes: notes, duration: duration, target: target,
            secondaryTarget: secondary)
    }

    mutating func duration(_ value: JSONValue) -> StepDuration? {
        guard let object = object(value) else { return nil }
        switch typeIndex(object, allowed: WorkoutJSONNames.durationTypes) {
        case 0?: return number(object, "seconds").map { .time(seconds: $0) }
        case 1?: return number(object, "meters").map { .distance(meters: $0) }
        case 2?: return .open
        default: return nil
        }
    }

    /// The position in `allowed` of the `type` member.
    mutating func typeIndex(_ object: JSONObject, allowed: [String]) -> Int? {
        guard let value = object["type"], value != .null else {
            report("type", "is required")
            return nil
        }
        var list: String { allowed.joined(separator: ", ") }
        guard case .string(let type) = value else {
            report("type", "must be one of \(list), got \(value.typeName)")
            return nil
        }
        guard let index = allowed.firstIndex(of: type) else {
            report("type", "must be one of \(list), got \"\(type)\"")
            return nil
        }
        return index
    }

    mutating func range(_ object: JSONObject, _ minKey: String, _ maxKey: String) -> (Double, Double)? {
        let low = number(object, minKey)
        let high = number(object, maxKey)
        guard let low, let high else { return nil }
        return (low, high)
    }

    mutating func target(_ value: JSONValue) -> WorkoutTarget? {
        guard let object = object(value) else { return nil }
        guard let type = typeIndex(object, allowed: WorkoutJSONNames.targetTypes) else { return nil }
        switch type {
        case 0:  // HEART_RATE
            return range(object, "minBpm", "maxBpm").map { .heartRate(minBpm: $0, maxBpm: $1) }
        case 1:  // HEART_RATE_ZONE
            return integer(object, "zone").map { .heartRateZone($0) }
        case 2:  // POWER
            return range(object, "minWatts", "maxWatts").map { .power(minWatts: $0, maxWatts: $1) }
        case 3:  // POWER_ZONE
            return integer(object, "zone").map { .powerZone($0) }
        case 4:  // POWER_PERCENT_FTP
            return range(object, "min", "max").map { .powerPercentFTP(min: $0, max: $1) }
        case 5:  // PACE
            if object["minSecondsPerKm"] != nil || object["maxSecondsPerKm"] != nil {
                return range(object, "minSecondsPerKm", "maxSecondsPerKm").map {
                    .pacePerKm(minSeconds: $0, maxSeconds: $1)
                }
            }
            if object["minSecondsPer100m"] != nil || object["maxSecondsPer100m"] != nil {
                return range(object, "minSecondsPer100m", "maxSecondsPer100m").map {
                    .pacePer100m(minSeconds: $0, maxSeconds: $1)
                }
            }
            report("PACE needs minSecondsPerKm/maxSecondsPerKm (RUN) or minSecondsPer100m/maxSecondsPer100m (SWIM)")
            return nil
        case 6:  // CADENCE
            return range(object, "minRpm", "maxRpm").map { .cadence(minRpm: $0, maxRpm: $1) }
        default:  // OPEN
            return .open
        }
    }

    /// The `athlete` object at `root`.
    mutating func athlete(_ value: JSONValue, root: String) -> AthleteThresholds? {
        start(at: root)
        guard let object = object(value) else { return nil }
        var result = AthleteThresholds()
        var ok = true
        for key in WorkoutJSONNames.athleteKeys {
            guard let member = object[key], member != .null else { continue }
            guard let number = member.doubleValue else {
                report(key, "must be a number, got \(member.typeName)")
                ok = false
                continue
            }
            switch key {
            case "ftpWatts": result.ftpWatts = number
            case "maxHr": result.maxHr = number
            default: result.thresholdHr = number
            }
        }
        return ok ? result : nil
    }
}

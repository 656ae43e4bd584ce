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
        var decoder = WorkoutJSONDecoder()
        let workout = decoder.workout(value, path: path)
        if let workout, decoder.problems.isEmpty { return workout }
        throw WorkoutDecodingError(problems: decoder.problems)
    }
}

extension AthleteThresholds {
    /// Decodes the optional `athlete` object: `ftpWatts`, `maxHr`, `thresholdHr`, each an
    /// optional number (`null` counts as absent).
    public static func decode(
        from value: JSONValue, path: String = "athlete"
    ) throws(WorkoutDecodingError) -> AthleteThresholds {
        var decoder = WorkoutJSONDecoder()
        let athlete = decoder.athlete(value, path: path)
        if let athlete, decoder.problems.isEmpty { return athlete }
        throw WorkoutDecodingError(problems: decoder.problems)
    }
}

/// Walks the JSON, records problems and keeps going so that all of them are reported.
struct WorkoutJSONDecoder {
    var problems: [ValidationProblem] = []

    mutating func fail(_ path: String, _ message: String) {
        problems.append(ValidationProblem(path: path, message: message))
    }

    mutating func object(_ value: JSONValue, path: String) -> JSONObject? {
        guard let object = value.objectValue else {
            fail(path, "must be an object, got \(value.typeName)")
            return nil
        }
        return object
    }

    /// A required number.
    mutating func number(_ object: JSONObject, _ key: String, path: String) -> Double? {
        guard let value = object[key], value != .null else {
            fail(path + "." + key, "is required")
            return nil
        }
        guard let number = value.doubleValue else {
            fail(path + "." + key, "must be a number, got \(value.typeName)")
            return nil
        }
        return number
    }

    /// A required integer.
    mutating func integer(_ object: JSONObject, _ key: String, path: String) -> Int? {
        guard let value = object[key], value != .null else {
            fail(path + "." + key, "is required")
            return nil
        }
        guard let int = value.intValue, let small = Int(exactly: int) else {
            if value.doubleValue != nil {
                fail(path + "." + key, "must be an integer")
            } else {
                fail(path + "." + key, "must be an integer, got \(value.typeName)")
            }
            return nil
        }
        return small
    }

    /// An optional string (absent or null gives nil).
    mutating func optionalString(_ object: JSONObject, _ key: String, path: String) -> String? {
        guard let value = object[key], value != .null else { return nil }
        guard let string = value.stringValue else {
            fail(path + "." + key, "must be a string, got \(value.typeName)")
            return nil
        }
        return string
    }

    /// A required enum given as a string.
    mutating func enumeration<E: RawRepresentable & CaseIterable>(
        _ object: JSONObject, _ key: String, path: String, as type: E.Type
    ) -> E? where E.RawValue == String {
        guard let value = object[key], value != .null else {
            fail(path + "." + key, "is required")
            return nil
        }
        // Built only for an error message: this runs for every step.
        var allowed: String { E.allCases.map(\.rawValue).joined(separator: ", ") }
        guard let string = value.stringValue else {
            fail(path + "." + key, "must be one of \(allowed), got \(value.typeName)")
            return nil
        }
        guard let result = E(rawValue: string) else {
            fail(path + "." + key, "must be one of \(allowed), got \"\(string)\"")
            return nil
        }
        return result
    }

    mutating func workout(_ value: JSONValue, path: String) -> Workout? {
        guard let object = object(value, path: path) else { return nil }
        let sport = enumeration(object, "sport", path: path, as: Sport.self)
        let items = itemList(object, path: path)
        guard let sport, let items else { return nil }
        return Workout(sport: sport, items: items)
    }

    /// The `steps` array of a workout or a repeat block.
    mutating func itemList(_ object: JSONObject, path: String) -> [WorkoutItem]? {
        let stepsPath = path + ".steps"
        guard let value = object["steps"], value != .null else {
            fail(stepsPath, "is required")
            return nil
        }
        guard let array = value.arrayValue else {
            fail(stepsPath, "must be an array, got \(value.typeName)")
            return nil
        }
        var items: [WorkoutItem] = []
        items.reserveCapacity(array.count)
        var ok = true
        for (index, element) in array.enumerated() {
            if let item = item(element, path: stepsPath + "[\(index)]") {
                items.append(item)
            } else {
                ok = false
            }
        }
        return ok ? items : nil
    }

    mutating func item(_ value: JSONValue, path: String) -> WorkoutItem? {
        guard let object = object(value, path: path) else { return nil }
        if object["repeat"] != nil {
            let count = integer(object, "repeat", path: path)
            let items = itemList(object, path: path)
            guard let count, let items else { return nil }
            return .repeatBlock(RepeatBlock(count: count, items: items))
        }
        return step(object, path: path).map(WorkoutItem.step)
    }

    mutating func step(_ object: JSONObject, path: String) -> WorkoutStep? {
        let kind = enumeration(object, "kind", path: path, as: StepKind.self)
        let name = optionalString(object, "name", path: path)
        let notes = optionalString(object, "notes", path: path)
        var duration: StepDuration?
        if let value = object["duration"], value != .null {
            duration = self.duration(value, path: path + ".duration")
        } else {
            fail(path + ".duration", "is required")
        }
        var target: WorkoutTarget?? = .some(nil)
        if let value = object["target"], value != .null {
            target = self.target(value, path: path + ".target").map { .some($0) }
        }
        var secondary: WorkoutTarget?? = .some(nil)
        if let value = object["secondaryTarget"], value != .null {
            secondary = self.target(value, path: path + ".secondaryTarget").map { .some($0) }
        }
        guard let kind, let duration, let target, let secondary else { return nil }
        return WorkoutStep(
            kind: kind, name: name, notes: notes, duration: duration, target: target,
            secondaryTarget: secondary)
    }

    mutating func duration(_ value: JSONValue, path: String) -> StepDuration? {
        guard let object = object(value, path: path) else { return nil }
        guard let type = typeString(object, path: path, allowed: ["TIME", "DISTANCE", "OPEN"]) else {
            return nil
        }
        switch type {
        case "TIME": return number(object, "seconds", path: path).map { .time(seconds: $0) }
        case "DISTANCE": return number(object, "meters", path: path).map { .distance(meters: $0) }
        default: return .open
        }
    }

    static let targetTypes = [
        "HEART_RATE", "HEART_RATE_ZONE", "POWER", "POWER_ZONE", "POWER_PERCENT_FTP", "PACE", "CADENCE",
        "OPEN",
    ]

    mutating func typeString(_ object: JSONObject, path: String, allowed: [String]) -> String? {
        guard let value = object["type"], value != .null else {
            fail(path + ".type", "is required")
            return nil
        }
        var list: String { allowed.joined(separator: ", ") }
        guard let type = value.stringValue else {
            fail(path + ".type", "must be one of \(list), got \(value.typeName)")
            return nil
        }
        guard allowed.contains(type) else {
            fail(path + ".type", "must be one of \(list), got \"\(type)\"")
            return nil
        }
        return type
    }

    mutating func range(
        _ object: JSONObject, _ minKey: String, _ maxKey: String, path: String
    ) -> (Double, Double)? {
        let low = number(object, minKey, path: path)
        let high = number(object, maxKey, path: path)
        guard let low, let high else { return nil }
        return (low, high)
    }

    mutating func target(_ value: JSONValue, path: String) -> WorkoutTarget? {
        guard let object = object(value, path: path) else { return nil }
        guard let type = typeString(object, path: path, allowed: Self.targetTypes) else { return nil }
        switch type {
        case "HEART_RATE":
            return range(object, "minBpm", "maxBpm", path: path).map {
                .heartRate(minBpm: $0, maxBpm: $1)
            }
        case "HEART_RATE_ZONE":
            return integer(object, "zone", path: path).map { .heartRateZone($0) }
        case "POWER":
            return range(object, "minWatts", "maxWatts", path: path).map {
                .power(minWatts: $0, maxWatts: $1)
            }
        case "POWER_ZONE":
            return integer(object, "zone", path: path).map { .powerZone($0) }
        case "POWER_PERCENT_FTP":
            return range(object, "min", "max", path: path).map { .powerPercentFTP(min: $0, max: $1) }
        case "PACE":
            if object["minSecondsPerKm"] != nil || object["maxSecondsPerKm"] != nil {
                return range(object, "minSecondsPerKm", "maxSecondsPerKm", path: path).map {
                    .pacePerKm(minSeconds: $0, maxSeconds: $1)
                }
            }
            if object["minSecondsPer100m"] != nil || object["maxSecondsPer100m"] != nil {
                return range(object, "minSecondsPer100m", "maxSecondsPer100m", path: path).map {
                    .pacePer100m(minSeconds: $0, maxSeconds: $1)
                }
            }
            fail(
                path,
                "PACE needs minSecondsPerKm/maxSecondsPerKm (RUN) or minSecondsPer100m/maxSecondsPer100m (SWIM)"
            )
            return nil
        case "CADENCE":
            return range(object, "minRpm", "maxRpm", path: path).map { .cadence(minRpm: $0, maxRpm: $1) }
        default:
            return .open
        }
    }

    mutating func athlete(_ value: JSONValue, path: String) -> AthleteThresholds? {
        guard let object = object(value, path: path) else { return nil }
        var result = AthleteThresholds()
        var ok = true
        for key in ["ftpWatts", "maxHr", "thresholdHr"] {
            guard let member = object[key], member != .null else { continue }
            guard let number = member.doubleValue else {
                fail(path + "." + key, "must be a number, got \(member.typeName)")
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

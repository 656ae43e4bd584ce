import GatewayCore
import GatewayProviders
import Testing

/// A seeded generator (SplitMix64) so that every failure reproduces from its seed.
struct SplitMix64 {
    var state: UInt64

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func int(_ range: ClosedRange<Int>) -> Int {
        range.lowerBound + Int(next() % UInt64(range.upperBound - range.lowerBound + 1))
    }

    mutating func chance(_ percent: Int) -> Bool { int(1...100) <= percent }

    mutating func pick<T>(_ items: [T]) -> T { items[int(0...(items.count - 1))] }
}

/// Faults injected into otherwise valid workouts.
enum Fault: CaseIterable {
    case zeroSeconds, negativeMeters, minAboveMax, heartRateTooLow, zoneTooHigh, cadenceInRun
    case repeatZero, emptyRepeat, unknownKind, missingDuration, wrongType, paceOutOfBounds
}

/// Random sessions as JSON, following SPEC §3 unless a fault is asked for.
struct WorkoutGenerator {
    var rng: SplitMix64
    let sport: String
    var fault: Fault?
    var stepBudget = 0

    init(seed: UInt64, fault: Fault? = nil) {
        rng = SplitMix64(state: seed)
        sport = rng.pick(["RUN", "BIKE", "SWIM"])
        self.fault = fault
    }

    mutating func range(_ low: Int, _ high: Int) -> (JSONValue, JSONValue) {
        let a = rng.int(low...high)
        let b = rng.int(low...high)
        return (.int(Int64(min(a, b))), .int(Int64(max(a, b))))
    }

    mutating func target(excluding: String? = nil) -> JSONValue? {
        var kinds = ["HEART_RATE", "HEART_RATE_ZONE", "OPEN", "NONE"]
        if sport != "SWIM" { kinds += ["POWER", "POWER_ZONE", "POWER_PERCENT_FTP"] }
        if sport == "BIKE" { kinds.append("CADENCE") }
        if sport != "BIKE" { kinds.append("PACE") }
        kinds.removeAll { quantity($0) != nil && quantity($0) == excluding.flatMap(quantity) }
        switch rng.pick(kinds) {
        case "HEART_RATE":
            let (a, b) = range(30, 250)
            return ["type": "HEART_RATE", "minBpm": a, "maxBpm": b]
        case "HEART_RATE_ZONE": return ["type": "HEART_RATE_ZONE", "zone": .int(Int64(rng.int(1...5)))]
        case "POWER":
            let (a, b) = range(0, 3000)
            return ["type": "POWER", "minWatts": a, "maxWatts": b]
        case "POWER_ZONE": return ["type": "POWER_ZONE", "zone": .int(Int64(rng.int(1...7)))]
        case "POWER_PERCENT_FTP":
            let (a, b) = range(1, 300)
            return ["type": "POWER_PERCENT_FTP", "min": a, "max": b]
        case "CADENCE":
            let (a, b) = range(20, 250)
            return ["type": "CADENCE", "minRpm": a, "maxRpm": b]
        case "PACE":
            if sport == "RUN" {
                let (a, b) = range(120, 1200)
                return ["type": "PACE", "minSecondsPerKm": a, "maxSecondsPerKm": b]
            }
            let (a, b) = range(40, 600)
            return ["type": "PACE", "minSecondsPer100m": a, "maxSecondsPer100m": b]
        case "OPEN": return ["type": "OPEN"]
        default: return nil
        }
    }

    func quantity(_ type: String) -> String? {
        switch type {
        case "HEART_RATE", "HEART_RATE_ZONE": return "hr"
        case "POWER", "POWER_ZONE", "POWER_PERCENT_FTP": return "power"
        case "PACE": return "speed"
        case "CADENCE": return "cadence"
        default: return nil
        }
    }

    mutating func step() -> JSONValue {
        var object = JSONObject()
        object["kind"] = .string(rng.pick(StepKind.allCases).rawValue)
        if rng.chance(20) { object["name"] = .string("step \(rng.int(1...99))") }
        switch rng.int(1...10) {
        case 1...5:
            let seconds = rng.chance(20) ? Double(rng.int(1...7200)) + 0.5 : Double(rng.int(1...3600))
            object["duration"] = ["type": "TIME", "seconds": .double(seconds)]
        case 6...9:
            object["duration"] = ["type": "DISTANCE", "meters": .int(Int64(rng.int(1...10_000)))]
        default:
            object["duration"] = ["type": "OPEN"]
        }
        if let target = target() {
            object["target"] = target
            if rng.chance(30), let secondary = self.target(excluding: target["type"]?.stringValue) {
                object["secondaryTarget"] = secondary
            }
        }
        return .object(object)
    }

    mutating func items(depth: Int) -> JSONValue {
        var items: [JSONValue] = []
        for _ in 0..<rng.int(1...5) {
            if depth < 2, rng.chance(30) {
                items.append(["repeat": .int(Int64(rng.int(1...8))), "steps": self.items(depth: depth + 1)])
            } else {
                items.append(step())
            }
        }
        return .array(items)
    }

    /// Breaks the first step of `items` (or the first repeat) according to `fault`.
    mutating func inject(_ fault: Fault, into items: inout [JSONValue]) {
        var step = items[0].objectValue ?? JSONObject()
        if step["repeat"] != nil {
            step = JSONObject([("kind", "ACTIVE"), ("duration", ["type": "TIME", "seconds": 60])])
        }
        switch fault {
        case .zeroSeconds: step["duration"] = ["type": "TIME", "seconds": 0]
        case .negativeMeters: step["duration"] = ["type": "DISTANCE", "meters": -1]
        case .minAboveMax: step["target"] = ["type": "HEART_RATE", "minBpm": 180, "maxBpm": 150]
        case .heartRateTooLow: step["target"] = ["type": "HEART_RATE", "minBpm": 10, "maxBpm": 150]
        case .zoneTooHigh: step["target"] = ["type": "POWER_ZONE", "zone": 9]
        case .cadenceInRun:
            step["target"] = ["type": "CADENCE", "minRpm": 80, "maxRpm": 90]
            if sport == "BIKE" { step["target"] = ["type": "CADENCE", "minRpm": 5, "maxRpm": 90] }
        case .repeatZero:
            items[0] = ["repeat": 0, "steps": [.object(step)]]
            return
        case .emptyRepeat:
            items[0] = ["repeat": 3, "steps": []]
            return
        case .unknownKind: step["kind"] = "SPRINT"
        case .missingDuration: step["duration"] = nil
        case .wrongType: step["duration"] = ["type": "TIME", "seconds": "sixty"]
        case .paceOutOfBounds:
            step["target"] =
                sport == "SWIM"
                ? ["type": "PACE", "minSecondsPer100m": 10, "maxSecondsPer100m": 20]
                : ["type": "PACE", "minSecondsPerKm": 10, "maxSecondsPerKm": 20]
        }
        items[0] = .object(step)
    }

    mutating func session() -> JSONValue {
        var items = self.items(depth: 0).arrayValue!
        if let fault { inject(fault, into: &items) }
        return [
            "id": "ses_prop", "athleteId": "ath", "revision": 1, "sessionType": "ENDURANCE",
            "date": "2026-12-01", "title": "Random",
            "athlete": ["ftpWatts": 250, "maxHr": 190, "thresholdHr": 172],
            "workout": ["sport": .string(sport), "steps": .array(items)],
        ]
    }
}

struct PropertyTests {
    static let seeds: [UInt64] = Array(1...300)

    @Test(arguments: seeds)
    func randomValidWorkoutsExport(seed: UInt64) throws {
        var generator = WorkoutGenerator(seed: seed)
        let json = generator.session()
        let session = try ExportSession.decode(from: json)
        #expect(ExportSession.validationError(session: json, for: .generic) == nil)
        let normalized = try session.prepare(for: .fit)

        // FIT: decodes to the same durations, step by step as performed.
        let messages = try readFIT(try FITWorkoutEncoder.encode(session))
        let steps = messages.filter { $0.global == 27 }
        #expect(steps.count == normalized.treeStepCount)
        let totals = fitTotals(steps)
        #expect(totals.count == normalized.steps.count)
        var expectedMs: UInt64 = 0
        var expectedCm: UInt64 = 0
        for step in normalized.steps {
            switch step.duration {
            case .time(let s): expectedMs += UInt64((s * 1000).rounded())
            case .distance(let m): expectedCm += UInt64((m * 100).rounded())
            case .open: break
            }
        }
        #expect(totals.milliseconds == expectedMs)
        #expect(totals.centimeters == expectedCm)

        // Garmin: flat stepOrder 1...n in pre-order, or the step limit.
        if normalized.treeStepCount <= WorkoutValidator.garminMaxSteps {
            let body = try GarminWorkoutEncoder.encode(session)
            var orders: [Int64] = []
            func collect(_ steps: [JSONValue]) {
                for step in steps {
                    orders.append(step["stepOrder"]?.intValue ?? -1)
                    if let inner = step["steps"]?.arrayValue { collect(inner) }
                }
            }
            collect(body["segments"]?.arrayValue?[0]["steps"]?.arrayValue ?? [])
            #expect(orders == Array(1...Int64(normalized.treeStepCount)))
        } else {
            #expect(throws: ValidationFailure.self) { try GarminWorkoutEncoder.encode(session) }
        }

        // Wahoo: everything but SWIM and lap-button steps.
        if session.workout.sport != .swim, normalized.openStepCount == 0 {
            let plan = try WahooPlanEncoder.plan(session)
            #expect(plan["intervals"]?.arrayValue?.count == normalized.tree.count)
        } else {
            #expect(throws: ValidationFailure.self) { try WahooPlanEncoder.plan(session) }
        }
    }

    @Test(arguments: seeds)
    func randomInvalidWorkoutsFailCleanly(seed: UInt64) {
        var picker = SplitMix64(state: seed &* 7919)
        let fault = picker.pick(Fault.allCases)
        var generator = WorkoutGenerator(seed: seed, fault: fault)
        let json = generator.session()
        for target in ExportTarget.allCases {
            let message = ExportSession.validationError(session: json, for: target)
            // The injected fault is reported at its path (provider limits may come first).
            let reported = message.map {
                $0.hasPrefix("Validation failed: ") && $0.contains("workout.steps[0]")
            }
            #expect(reported == true, "\(fault): \(message ?? "nil")")
        }
    }

    @Test(arguments: Array(UInt64(1)...200))
    func randomJSONNeverCrashes(seed: UInt64) {
        var rng = SplitMix64(state: seed)
        func value(_ depth: Int) -> JSONValue {
            switch rng.int(0...(depth > 3 ? 4 : 7)) {
            case 0: return .null
            case 1: return .bool(rng.chance(50))
            case 2: return .int(Int64(rng.int(-5...400)))
            case 3: return .double(Double(rng.int(-100...100)) / 7)
            case 4:
                return .string(rng.pick(["RUN", "BIKE", "SWIM", "TIME", "OPEN", "PACE", "ACTIVE", "x"]))
            case 5, 6:
                var object = JSONObject()
                let keys = [
                    "sport", "steps", "kind", "duration", "type", "seconds", "meters", "repeat", "target",
                    "zone", "minBpm", "maxBpm", "secondaryTarget",
                ]
                for _ in 0..<rng.int(0...5) { object[rng.pick(keys)] = value(depth + 1) }
                return .object(object)
            default:
                return .array((0..<rng.int(0...4)).map { _ in value(depth + 1) })
            }
        }
        let json: JSONValue = [
            "id": "s", "date": "2026-12-01", "workout": value(0),
        ]
        for target in ExportTarget.allCases {
            if let message = ExportSession.validationError(session: json, for: target) {
                #expect(message.hasPrefix("Validation failed: "))
            }
        }
    }
}

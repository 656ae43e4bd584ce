/// The sport of a workout (SPEC §3).
public enum Sport: String, Sendable, Equatable, CaseIterable {
    case run = "RUN"
    case bike = "BIKE"
    case swim = "SWIM"
}

/// What a step is for; providers call it intensity.
public enum StepKind: String, Sendable, Equatable, CaseIterable {
    case warmup = "WARMUP"
    case active = "ACTIVE"
    case interval = "INTERVAL"
    case recovery = "RECOVERY"
    case rest = "REST"
    case cooldown = "COOLDOWN"
}

/// How a step ends.
public enum StepDuration: Sendable, Equatable {
    case time(seconds: Double)
    case distance(meters: Double)
    /// Ends when the athlete presses the lap button.
    case open
}

/// What the athlete aims at during a step. Ranges keep the names of SPEC §3.
public enum WorkoutTarget: Sendable, Equatable {
    case heartRate(minBpm: Double, maxBpm: Double)
    case heartRateZone(Int)
    case power(minWatts: Double, maxWatts: Double)
    case powerZone(Int)
    /// Percent of FTP (95 means 95 %).
    case powerPercentFTP(min: Double, max: Double)
    /// Run pace; `min` is the faster pace (fewer seconds).
    case pacePerKm(minSeconds: Double, maxSeconds: Double)
    /// Swim pace; `min` is the faster pace.
    case pacePer100m(minSeconds: Double, maxSeconds: Double)
    case cadence(minRpm: Double, maxRpm: Double)
    case open

    /// The `type` string of SPEC §3.
    public var typeName: String {
        switch self {
        case .heartRate: return "HEART_RATE"
        case .heartRateZone: return "HEART_RATE_ZONE"
        case .power: return "POWER"
        case .powerZone: return "POWER_ZONE"
        case .powerPercentFTP: return "POWER_PERCENT_FTP"
        case .pacePerKm, .pacePer100m: return "PACE"
        case .cadence: return "CADENCE"
        case .open: return "OPEN"
        }
    }

    /// The measured quantity, so that a secondary target cannot repeat the primary one.
    public var quantity: WorkoutTargetQuantity {
        switch self {
        case .heartRate, .heartRateZone: return .heartRate
        case .power, .powerZone, .powerPercentFTP: return .power
        case .pacePerKm, .pacePer100m: return .speed
        case .cadence: return .cadence
        case .open: return .none
        }
    }
}

/// The physical quantity a target constrains.
public enum WorkoutTargetQuantity: Sendable, Equatable {
    case heartRate, power, speed, cadence, none
}

/// One step of a workout.
public struct WorkoutStep: Sendable, Equatable {
    public var kind: StepKind
    public var name: String?
    public var notes: String?
    public var duration: StepDuration
    public var target: WorkoutTarget?
    public var secondaryTarget: WorkoutTarget?

    public init(
        kind: StepKind, name: String? = nil, notes: String? = nil, duration: StepDuration,
        target: WorkoutTarget? = nil, secondaryTarget: WorkoutTarget? = nil
    ) {
        self.kind = kind
        self.name = name
        self.notes = notes
        self.duration = duration
        self.target = target
        self.secondaryTarget = secondaryTarget
    }
}

/// `{"repeat": N, "steps": [...]}`: the items run N times in a row.
public struct RepeatBlock: Sendable, Equatable {
    public var count: Int
    public var items: [WorkoutItem]

    public init(count: Int, items: [WorkoutItem]) {
        self.count = count
        self.items = items
    }
}

/// An entry of a `steps` array: a step or a repeat block.
public enum WorkoutItem: Sendable, Equatable {
    case step(WorkoutStep)
    case repeatBlock(RepeatBlock)
}

/// How a step ends and what it aims at: the parts of a step that the validator and the
/// normalizer read, all plain values.
struct StepMeasures {
    var duration: StepDuration
    var target: WorkoutTarget?
    var secondaryTarget: WorkoutTarget?
}

extension WorkoutItem {
    /// The measures of a step, nil for a repeat block. Read in place, without copying the
    /// step (its name and notes), when walking a tree.
    var stepMeasures: StepMeasures? {
        guard case .step(let step) = self else { return nil }
        return StepMeasures(duration: step.duration, target: step.target, secondaryTarget: step.secondaryTarget)
    }
}

/// The `workout` object of a session (SPEC §3), as the coach wrote it.
public struct Workout: Sendable, Equatable {
    public var sport: Sport
    public var items: [WorkoutItem]

    public init(sport: Sport, items: [WorkoutItem]) {
        self.sport = sport
        self.items = items
    }
}

/// The optional `athlete` object of a session: what zone targets are computed from.
public struct AthleteThresholds: Sendable, Equatable {
    public var ftpWatts: Double?
    public var maxHr: Double?
    public var thresholdHr: Double?

    public init(ftpWatts: Double? = nil, maxHr: Double? = nil, thresholdHr: Double? = nil) {
        self.ftpWatts = ftpWatts
        self.maxHr = maxHr
        self.thresholdHr = thresholdHr
    }
}

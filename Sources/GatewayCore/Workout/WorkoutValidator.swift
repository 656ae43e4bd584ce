/// Where a workout is going: each destination adds its own limits to the rules of SPEC §3.
public enum ExportTarget: String, Sendable, Equatable, CaseIterable {
    /// SPEC §3 rules only.
    case generic = "GENERIC"
    /// Garmin Training API V2: at most 100 steps; RUNNING, CYCLING, LAP_SWIMMING.
    case garmin = "GARMIN"
    /// Wahoo Cloud API plans: BIKE and RUN only, no lap-button steps, zone targets need the
    /// athlete's thresholds.
    case wahoo = "WAHOO"
    /// FIT workout file.
    case fit = "FIT"
}

/// The rules of SPEC §3 plus the providers' limits. Problems come in document order.
public enum WorkoutValidator {
    /// Garmin's limit on steps (steps and repeat blocks, after unwrapping repeats of 1).
    public static let garminMaxSteps = 100
    /// The longest TIME step accepted (24 h) and the longest DISTANCE step (1000 km).
    public static let maxStepSeconds = 86_400.0
    public static let maxStepMeters = 1_000_000.0

    /// Every problem of `workout` for `target`; empty when it can be exported.
    public static func validate(
        _ workout: Workout, athlete: AthleteThresholds?, for target: ExportTarget,
        path: String = "workout", athletePath: String = "athlete"
    ) -> [ValidationProblem] {
        var walker = Walker(
            sport: workout.sport, athlete: athlete, target: target, athletePath: athletePath)
        if target == .wahoo, workout.sport == .swim {
            walker.fail(path + ".sport", "Wahoo supports only BIKE and RUN workouts, not SWIM")
        }
        walker.items(workout.items, path: path + ".steps")
        let expanded = WorkoutNormalizer.expandedCount(workout.items)
        if expanded > WorkoutNormalizer.maxExpandedSteps {
            walker.fail(
                path + ".steps", "expands to more than \(WorkoutNormalizer.maxExpandedSteps) steps")
        }
        if target == .garmin {
            let count = WorkoutNormalizer.treeCount(WorkoutNormalizer.unwrap(workout.items))
            if count > garminMaxSteps {
                walker.fail(
                    path + ".steps",
                    "Garmin accepts at most \(garminMaxSteps) steps, this workout has \(count)"
                )
            }
        }
        if target == .wahoo, let athlete {
            walker.athlete(athlete)
        }
        return walker.problems
    }
}

private struct Walker {
    let sport: Sport
    let athlete: AthleteThresholds?
    let target: ExportTarget
    let athletePath: String
    var problems: [ValidationProblem] = []

    init(sport: Sport, athlete: AthleteThresholds?, target: ExportTarget, athletePath: String) {
        self.sport = sport
        self.athlete = athlete
        self.target = target
        self.athletePath = athletePath
    }

    mutating func fail(_ path: String, _ message: String) {
        problems.append(ValidationProblem(path: path, message: message))
    }

    mutating func items(_ items: [WorkoutItem], path: String) {
        if items.isEmpty {
            fail(path, "must contain at least one step")
            return
        }
        for (index, item) in items.enumerated() {
            let itemPath = path + "[\(index)]"
            switch item {
            case .step(let step): self.step(step, path: itemPath)
            case .repeatBlock(let block):
                if block.count < 1 {
                    fail(itemPath + ".repeat", "must be >= 1, got \(block.count)")
                }
                self.items(block.items, path: itemPath + ".steps")
            }
        }
    }

    mutating func step(_ step: WorkoutStep, path: String) {
        switch step.duration {
        case .time(let seconds):
            positive(
                seconds, max: WorkoutValidator.maxStepSeconds, unit: "s", path: path + ".duration.seconds")
        case .distance(let meters):
            positive(
                meters, max: WorkoutValidator.maxStepMeters, unit: "m", path: path + ".duration.meters")
        case .open:
            if target == .wahoo {
                fail(path + ".duration", "Wahoo has no lap-button (OPEN) steps; use TIME or DISTANCE")
            }
        }
        if let primary = step.target {
            self.target(primary, path: path + ".target")
        }
        if let secondary = step.secondaryTarget {
            self.target(secondary, path: path + ".secondaryTarget")
            if let primary = step.target, primary.quantity != .none,
                primary.quantity == secondary.quantity
            {
                fail(
                    path + ".secondaryTarget",
                    "must not constrain the same quantity as target (\(primary.typeName))")
            }
        }
    }

    mutating func positive(_ value: Double, max: Double, unit: String, path: String) {
        if !(value > 0) {
            fail(path, "must be > 0, got \(formatNumber(value))")
        } else if value > max {
            fail(path, "must be at most \(formatNumber(max)) \(unit), got \(formatNumber(value))")
        }
    }

    mutating func bounded(
        _ value: Double, _ bounds: ClosedRange<Double>, unit: String, path: String
    ) {
        guard !bounds.contains(value) else { return }
        let suffix = unit.isEmpty ? "" : " " + unit
        fail(
            path,
            "must be between \(formatNumber(bounds.lowerBound)) and \(formatNumber(bounds.upperBound))"
                + "\(suffix), got \(formatNumber(value))")
    }

    mutating func range(
        _ low: Double, _ high: Double, keys: (String, String), bounds: ClosedRange<Double>,
        unit: String, path: String
    ) {
        bounded(low, bounds, unit: unit, path: path + "." + keys.0)
        bounded(high, bounds, unit: unit, path: path + "." + keys.1)
        if low > high {
            fail(path + "." + keys.1, "must be >= \(keys.0)")
        }
    }

    mutating func zone(_ zone: Int, count: Int, path: String) {
        if !(1...count).contains(zone) {
            fail(path + ".zone", "must be between 1 and \(count), got \(zone)")
        }
    }

    mutating func target(_ target: WorkoutTarget, path: String) {
        switch target {
        case .heartRate(let low, let high):
            range(low, high, keys: ("minBpm", "maxBpm"), bounds: 30...250, unit: "bpm", path: path)
        case .heartRateZone(let zone):
            self.zone(zone, count: 5, path: path)
            if self.target == .wahoo, athlete?.maxHr == nil {
                fail(path, "HEART_RATE_ZONE needs the athlete's max HR (\(athletePath).maxHr)")
            }
        case .power(let low, let high):
            range(low, high, keys: ("minWatts", "maxWatts"), bounds: 0...3000, unit: "W", path: path)
        case .powerZone(let zone):
            self.zone(zone, count: 7, path: path)
            if self.target == .wahoo, athlete?.ftpWatts == nil {
                fail(path, "POWER_ZONE needs the athlete's FTP (\(athletePath).ftpWatts)")
            }
        case .powerPercentFTP(let low, let high):
            range(low, high, keys: ("min", "max"), bounds: 1...300, unit: "%", path: path)
        case .pacePerKm(let fast, let slow):
            if sport != .run {
                fail(path, "PACE in s/km is only allowed in RUN workouts")
            }
            range(
                fast, slow, keys: ("minSecondsPerKm", "maxSecondsPerKm"), bounds: 120...1200, unit: "s/km",
                path: path)
        case .pacePer100m(let fast, let slow):
            if sport != .swim {
                fail(path, "PACE in s/100 m is only allowed in SWIM workouts")
            }
            range(
                fast, slow, keys: ("minSecondsPer100m", "maxSecondsPer100m"), bounds: 40...600,
                unit: "s/100m", path: path)
        case .cadence(let low, let high):
            if sport != .bike {
                fail(path, "CADENCE is only allowed in BIKE workouts")
            }
            range(low, high, keys: ("minRpm", "maxRpm"), bounds: 20...250, unit: "rpm", path: path)
        case .open:
            break
        }
        if sport == .swim, target.quantity == .power {
            fail(path, "\(target.typeName) is not allowed in SWIM workouts")
        }
    }

    mutating func athlete(_ athlete: AthleteThresholds) {
        if let ftp = athlete.ftpWatts {
            bounded(ftp, 1...3000, unit: "W", path: athletePath + ".ftpWatts")
        }
        if let maxHr = athlete.maxHr {
            bounded(maxHr, 30...250, unit: "bpm", path: athletePath + ".maxHr")
        }
        if let thresholdHr = athlete.thresholdHr {
            bounded(thresholdHr, 30...250, unit: "bpm", path: athletePath + ".thresholdHr")
        }
    }
}

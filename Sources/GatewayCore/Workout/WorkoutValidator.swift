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
        // Most workouts are valid: a first walk only looks for a problem, the second one
        // (the same rules) names them all.
        var quick = Walker(
            recorder: ProblemFlag(), sport: workout.sport, athlete: athlete, target: target, athletePath: athletePath)
        quick.run(workout)
        guard quick.recorder.failed else { return [] }
        var full = Walker(
            recorder: ProblemList(root: path), sport: workout.sport, athlete: athlete, target: target,
            athletePath: athletePath)
        full.run(workout)
        return full.recorder.problems
    }
}

/// Walks a workout with the current location kept by the recorder.
private struct Walker<Recorder: ProblemRecorder> {
    var recorder: Recorder
    let sport: Sport
    let athlete: AthleteThresholds?
    let target: ExportTarget
    let athletePath: String

    mutating func run(_ workout: Workout) {
        if target == .wahoo, workout.sport == .swim {
            fail("sport", "Wahoo supports only BIKE and RUN workouts, not SWIM")
        }
        recorder.push("steps")
        items(workout.items)
        let expanded = WorkoutNormalizer.expandedCount(workout.items)
        if expanded > WorkoutNormalizer.maxExpandedSteps {
            fail("expands to more than \(WorkoutNormalizer.maxExpandedSteps) steps")
        }
        if target == .garmin {
            let count = WorkoutNormalizer.unwrappedTreeCount(workout.items)
            if count > WorkoutValidator.garminMaxSteps {
                fail("Garmin accepts at most \(WorkoutValidator.garminMaxSteps) steps, this workout has \(count)")
            }
        }
        recorder.pop()
        if target == .wahoo, let athlete {
            self.athlete(athlete)
        }
    }

    /// A problem at the current path.
    mutating func fail(_ message: @autoclosure () -> String) {
        recorder.fail(message())
    }

    /// A problem at the member `key` of the current path.
    mutating func fail(_ key: String, _ message: @autoclosure () -> String) {
        recorder.fail(key, message())
    }

    /// The items of a `steps` array; the current path is that array.
    mutating func items(_ items: [WorkoutItem]) {
        if items.isEmpty {
            fail("must contain at least one step")
            return
        }
        for index in items.indices {
            recorder.push(index: index)
            if let step = items[index].stepMeasures {
                self.step(step)
                recorder.pop()
                continue
            }
            switch items[index] {
            case .step: break
            case .repeatBlock(let block):
                if block.count < 1 {
                    fail("repeat", "must be >= 1, got \(block.count)")
                }
                recorder.push("steps")
                self.items(block.items)
                recorder.pop()
            }
            recorder.pop()
        }
    }

    mutating func step(_ step: StepMeasures) {
        switch step.duration {
        case .time(let seconds):
            recorder.push("duration")
            positive(seconds, max: WorkoutValidator.maxStepSeconds, unit: "s", key: "seconds")
            recorder.pop()
        case .distance(let meters):
            recorder.push("duration")
            positive(meters, max: WorkoutValidator.maxStepMeters, unit: "m", key: "meters")
            recorder.pop()
        case .open:
            if target == .wahoo {
                fail("duration", "Wahoo has no lap-button (OPEN) steps; use TIME or DISTANCE")
            }
        }
        if let primary = step.target {
            recorder.push("target")
            self.target(primary)
            recorder.pop()
        }
        if let secondary = step.secondaryTarget {
            recorder.push("secondaryTarget")
            self.target(secondary)
            if let primary = step.target, primary.quantity != .none,
                primary.quantity == secondary.quantity
            {
                fail("must not constrain the same quantity as target (\(primary.typeName))")
            }
            recorder.pop()
        }
    }

    mutating func positive(_ value: Double, max: Double, unit: String, key: String) {
        if !(value > 0) {
            fail(key, "must be > 0, got \(formatNumber(value))")
        } else if value > max {
            fail(key, "must be at most \(formatNumber(max)) \(unit), got \(formatNumber(value))")
        }
    }

    mutating func bounded(
        _ value: Double, _ bounds: ClosedRange<Double>, unit: String, key: String
    ) {
        guard !bounds.contains(value) else { return }
        let suffix = unit.isEmpty ? "" : " " + unit
        fail(
            key,
            "must be between \(formatNumber(bounds.lowerBound)) and \(formatNumber(bounds.upperBound))"
                + "\(suffix), got \(formatNumber(value))")
    }

    mutating func range(
        _ low: Double, _ high: Double, keys: (String, String), bounds: ClosedRange<Double>,
        unit: String
    ) {
        bounded(low, bounds, unit: unit, key: keys.0)
        bounded(high, bounds, unit: unit, key: keys.1)
        if low > high {
            fail(keys.1, "must be >= \(keys.0)")
        }
    }

    mutating func zone(_ zone: Int, count: Int) {
        if !(1...count).contains(zone) {
            fail("zone", "must be between 1 and \(count), got \(zone)")
        }
    }

    /// A target; the current path is the target object.
    mutating func target(_ target: WorkoutTarget) {
        switch target {
        case .heartRate(let low, let high):
            range(low, high, keys: ("minBpm", "maxBpm"), bounds: 30...250, unit: "bpm")
        case .heartRateZone(let zone):
            self.zone(zone, count: 5)
            if self.target == .wahoo, athlete?.maxHr == nil {
                let athletePath = self.athletePath
                fail("HEART_RATE_ZONE needs the athlete's max HR (\(athletePath).maxHr)")
            }
        case .power(let low, let high):
            range(low, high, keys: ("minWatts", "maxWatts"), bounds: 0...3000, unit: "W")
        case .powerZone(let zone):
            self.zone(zone, count: 7)
            if self.target == .wahoo, athlete?.ftpWatts == nil {
                let athletePath = self.athletePath
                fail("POWER_ZONE needs the athlete's FTP (\(athletePath).ftpWatts)")
            }
        case .powerPercentFTP(let low, let high):
            range(low, high, keys: ("min", "max"), bounds: 1...300, unit: "%")
        case .pacePerKm(let fast, let slow):
            if sport != .run {
                fail("PACE in s/km is only allowed in RUN workouts")
            }
            range(fast, slow, keys: ("minSecondsPerKm", "maxSecondsPerKm"), bounds: 120...1200, unit: "s/km")
        case .pacePer100m(let fast, let slow):
            if sport != .swim {
                fail("PACE in s/100 m is only allowed in SWIM workouts")
            }
            range(
                fast, slow, keys: ("minSecondsPer100m", "maxSecondsPer100m"), bounds: 40...600, unit: "s/100m")
        case .cadence(let low, let high):
            if sport != .bike {
                fail("CADENCE is only allowed in BIKE workouts")
            }
            range(low, high, keys: ("minRpm", "maxRpm"), bounds: 20...250, unit: "rpm")
        case .open:
            break
        }
        if sport == .swim, target.quantity == .power {
            fail("\(target.typeName) is not allowed in SWIM workouts")
        }
    }

    /// The athlete's thresholds, under `athletePath`.
    mutating func athlete(_ athlete: AthleteThresholds) {
        recorder.start(at: athletePath)
        if let ftp = athlete.ftpWatts {
            bounded(ftp, 1...3000, unit: "W", key: "ftpWatts")
        }
        if let maxHr = athlete.maxHr {
            bounded(maxHr, 30...250, unit: "bpm", key: "maxHr")
        }
        if let thresholdHr = athlete.thresholdHr {
            bounded(thresholdHr, 30...250, unit: "bpm", key: "thresholdHr")
        }
    }
}

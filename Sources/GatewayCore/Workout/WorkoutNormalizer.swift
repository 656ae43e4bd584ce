/// A workout ready for the exporters: the canonical (expanded) step list, the repeat
/// tree for exporters that express repeats natively, and totals.
public struct NormalizedWorkout: Sendable, Equatable {
    public var sport: Sport
    /// The repeat tree with every repeat of 1 unwrapped into its parent.
    public var tree: [WorkoutItem]
    /// Every step in the order the athlete performs it, repeats expanded.
    public var steps: [WorkoutStep]
    /// Sum of the TIME steps, in seconds.
    public var totalSeconds: Double
    /// Sum of the DISTANCE steps, in meters.
    public var totalMeters: Double
    /// How many performed steps end with the lap button.
    public var openStepCount: Int
    /// Entries of ``tree`` counted the way Garmin and FIT count steps: every step and
    /// every repeat block once, however many times it runs.
    public var treeStepCount: Int
}

/// Expands and measures workouts. Call ``WorkoutValidator/validate(_:athlete:for:)``
/// first: the expansion stops at ``maxExpandedSteps``.
public enum WorkoutNormalizer {
    /// The most steps a workout may expand to (a guard against `{"repeat": 1000000}`).
    public static let maxExpandedSteps = 10_000

    public static func normalize(_ workout: Workout) -> NormalizedWorkout {
        let tree = unwrap(workout.items)
        var result = NormalizedWorkout(
            sport: workout.sport, tree: tree, steps: [], totalSeconds: 0, totalMeters: 0,
            openStepCount: 0, treeStepCount: treeCount(tree))
        let expected = min(expandedCount(workout.items), maxExpandedSteps)
        result.steps.reserveCapacity(expected)
        expand(tree, into: &result)
        return result
    }

    /// Replaces every repeat of 1 by its items, recursively.
    public static func unwrap(_ items: [WorkoutItem]) -> [WorkoutItem] {
        // Most workouts have no repeat of 1: share the array instead of rebuilding it.
        guard containsRepeatOfOne(items) else { return items }
        var out: [WorkoutItem] = []
        out.reserveCapacity(items.count)
        for item in items {
            switch item {
            case .step: out.append(item)
            case .repeatBlock(let block):
                let inner = unwrap(block.items)
                if block.count == 1 {
                    out.append(contentsOf: inner)
                } else {
                    out.append(.repeatBlock(RepeatBlock(count: block.count, items: inner)))
                }
            }
        }
        return out
    }

    static func containsRepeatOfOne(_ items: [WorkoutItem]) -> Bool {
        for item in items {
            if case .repeatBlock(let block) = item, block.count == 1 || containsRepeatOfOne(block.items) {
                return true
            }
        }
        return false
    }

    /// `treeCount(unwrap(items))`, without building the unwrapped tree.
    public static func unwrappedTreeCount(_ items: [WorkoutItem]) -> Int {
        var count = 0
        for item in items {
            switch item {
            case .step: count += 1
            case .repeatBlock(let block):
                let inner = unwrappedTreeCount(block.items)
                count += block.count == 1 ? inner : 1 + inner
            }
        }
        return count
    }

    /// Steps plus repeat blocks in a tree.
    public static func treeCount(_ items: [WorkoutItem]) -> Int {
        var count = 0
        for item in items {
            switch item {
            case .step: count += 1
            case .repeatBlock(let block): count += 1 + treeCount(block.items)
            }
        }
        return count
    }

    /// How many steps the items expand to, saturating at `Int.max`; repeats below 1 count 0.
    public static func expandedCount(_ items: [WorkoutItem]) -> Int {
        var count = 0
        for item in items {
            let add: Int
            switch item {
            case .step: add = 1
            case .repeatBlock(let block):
                let inner = expandedCount(block.items)
                let (product, overflow) = inner.multipliedReportingOverflow(by: max(block.count, 0))
                add = overflow ? Int.max : product
            }
            let (sum, overflow) = count.addingReportingOverflow(add)
            count = overflow ? Int.max : sum
        }
        return count
    }

    private static func expand(_ items: [WorkoutItem], into result: inout NormalizedWorkout) {
        for item in items {
            guard result.steps.count < maxExpandedSteps else { return }
            switch item {
            case .step(let step):
                result.steps.append(step)
                switch step.duration {
                case .time(let seconds): result.totalSeconds += seconds
                case .distance(let meters): result.totalMeters += meters
                case .open: result.openStepCount += 1
                }
            case .repeatBlock(let block):
                for _ in 0..<max(block.count, 0) {
                    expand(block.items, into: &result)
                }
            }
        }
    }
}

extension NormalizedWorkout {
    /// Estimated duration in seconds: TIME steps as given, DISTANCE steps at the step's
    /// pace target (mid-range) or else at a default speed for the sport (RUN 5:00/km,
    /// BIKE 30 km/h, SWIM 2:00/100 m), OPEN steps not counted.
    public var estimatedSeconds: Double {
        var total = 0.0
        for step in steps {
            switch step.duration {
            case .time(let seconds): total += seconds
            case .distance(let meters):
                total += meters / WorkoutConversions.estimatedSpeed(for: step, sport: sport)
            case .open: break
            }
        }
        return total
    }
}

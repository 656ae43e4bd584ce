/// A workout ready for the exporters: the repeat tree (with repeats of 1 unwrapped) and
/// its totals, summed in the order the athlete performs the steps. The expanded step list
/// is built only when asked for (``steps``).
public struct NormalizedWorkout: Sendable, Equatable {
    public internal(set) var sport: Sport
    /// The repeat tree with every repeat of 1 unwrapped into its parent.
    public internal(set) var tree: [WorkoutItem]
    /// Sum of the TIME steps, in seconds.
    public internal(set) var totalSeconds: Double
    /// Sum of the DISTANCE steps, in meters.
    public internal(set) var totalMeters: Double
    /// How many performed steps end with the lap button.
    public internal(set) var openStepCount: Int
    /// Entries of ``tree`` counted the way Garmin and FIT count steps: every step and
    /// every repeat block once, however many times it runs.
    public internal(set) var treeStepCount: Int
    /// Estimated duration in seconds: TIME steps as given, DISTANCE steps at the step's
    /// pace target (mid-range) or else at a default speed for the sport (RUN 5:00/km,
    /// BIKE 30 km/h, SWIM 2:00/100 m), OPEN steps not counted.
    public internal(set) var estimatedSeconds: Double

    /// Every step in the order the athlete performs it, repeats expanded (at most
    /// ``WorkoutNormalizer/maxExpandedSteps``).
    public var steps: [WorkoutStep] {
        var steps: [WorkoutStep] = []
        steps.reserveCapacity(min(WorkoutNormalizer.expandedCount(tree), WorkoutNormalizer.maxExpandedSteps))
        WorkoutNormalizer.expand(tree, into: &steps)
        return steps
    }
}

/// Expands and measures workouts. Call ``WorkoutValidator/validate(_:athlete:for:)``
/// first: the expansion stops at ``maxExpandedSteps``.
public enum WorkoutNormalizer {
    /// The most steps a workout may expand to (a guard against `{"repeat": 1000000}`).
    public static let maxExpandedSteps = 10_000

    public static func normalize(_ workout: Workout) -> NormalizedWorkout {
        let tree = unwrap(workout.items)
        var totals = Totals()
        accumulate(tree, sport: workout.sport, into: &totals)
        return NormalizedWorkout(
            sport: workout.sport, tree: tree, totalSeconds: totals.seconds, totalMeters: totals.meters,
            openStepCount: totals.open, treeStepCount: treeCount(tree), estimatedSeconds: totals.estimated)
    }

    /// Running sums over the performed steps.
    struct Totals {
        var steps = 0
        var seconds = 0.0
        var meters = 0.0
        var open = 0
        var estimated = 0.0
    }

    /// Adds the steps of `items` in the order they are performed, the first
    /// ``maxExpandedSteps`` only (the same steps as ``NormalizedWorkout/steps``).
    static func accumulate(_ items: [WorkoutItem], sport: Sport, into totals: inout Totals) {
        for index in items.indices {
            guard totals.steps < maxExpandedSteps else { return }
            if let step = items[index].stepMeasures {
                totals.steps += 1
                switch step.duration {
                case .time(let seconds):
                    totals.seconds += seconds
                    totals.estimated += seconds
                case .distance(let meters):
                    totals.meters += meters
                    totals.estimated +=
                        meters
                        / WorkoutConversions.estimatedSpeed(
                            target: step.target, secondaryTarget: step.secondaryTarget, sport: sport)
                case .open:
                    totals.open += 1
                }
                continue
            }
            switch items[index] {
            case .step: break
            case .repeatBlock(let block):
                for _ in 0..<max(block.count, 0) {
                    guard totals.steps < maxExpandedSteps else { return }
                    accumulate(block.items, sport: sport, into: &totals)
                }
            }
        }
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

    // The walks below read the items in place (by index, binding only repeat blocks): a
    // step is not copied.

    static func containsRepeatOfOne(_ items: [WorkoutItem]) -> Bool {
        for index in items.indices {
            if case .repeatBlock(let block) = items[index], block.count == 1 || containsRepeatOfOne(block.items) {
                return true
            }
        }
        return false
    }

    /// `treeCount(unwrap(items))`, without building the unwrapped tree.
    public static func unwrappedTreeCount(_ items: [WorkoutItem]) -> Int {
        var count = 0
        for index in items.indices {
            if case .repeatBlock(let block) = items[index] {
                let inner = unwrappedTreeCount(block.items)
                count += block.count == 1 ? inner : 1 + inner
            } else {
                count += 1
            }
        }
        return count
    }

    /// Steps plus repeat blocks in a tree.
    public static func treeCount(_ items: [WorkoutItem]) -> Int {
        var count = 0
        for index in items.indices {
            if case .repeatBlock(let block) = items[index] {
                count += 1 + treeCount(block.items)
            } else {
                count += 1
            }
        }
        return count
    }

    /// How many steps the items expand to, saturating at `Int.max`; repeats below 1 count 0.
    public static func expandedCount(_ items: [WorkoutItem]) -> Int {
        var count = 0
        for index in items.indices {
            var add = 1
            if case .repeatBlock(let block) = items[index] {
                let inner = expandedCount(block.items)
                let (product, overflow) = inner.multipliedReportingOverflow(by: max(block.count, 0))
                add = overflow ? Int.max : product
            }
            let (sum, overflow) = count.addingReportingOverflow(add)
            count = overflow ? Int.max : sum
        }
        return count
    }

    /// Appends the steps of `items` in the order they are performed, up to ``maxExpandedSteps``.
    static func expand(_ items: [WorkoutItem], into steps: inout [WorkoutStep]) {
        for item in items {
            guard steps.count < maxExpandedSteps else { return }
            switch item {
            case .step(let step):
                steps.append(step)
            case .repeatBlock(let block):
                for _ in 0..<max(block.count, 0) {
                    expand(block.items, into: &steps)
                }
            }
        }
    }
}

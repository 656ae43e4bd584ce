import Foundation

/// When the writer should wait a moment before committing, so that more operations
/// share one transaction (docs/DECISIONS.md, "A busy writer gathers before it commits").
///
/// Every commit costs the same whatever its size: the B-tree pages it touches are
/// written to the WAL again, checkpointed again and flushed again. Left alone, the
/// writer wakes for the first waiting webhook and commits a handful at a time, since
/// it runs faster than the event loop hands it work. Waiting pays off only when
/// more operations are sure to arrive during the wait: the gatherer keeps an
/// estimate of the arrival rate that decays with time (a time constant of
/// `memoryWindows` windows) and asks for a wait of `windowNanos` only if at least
/// `minimumExpected` more operations are expected in it. After a quiet spell (no
/// batch taken or committed for `quietWindows` windows) it never asks, whatever the
/// estimate: an operation after a pause is committed at once, and only a busy writer
/// waits.
struct CommitGatherer {
    let windowNanos: UInt64
    let minimumExpected: Double
    /// Idle for this many windows since the last batch counts as a quiet spell.
    static let quietWindows: UInt64 = 5
    /// The rate estimate forgets with a time constant of this many windows.
    static let memoryWindows = 5.0
    /// When the writer last took a batch, and when it last finished a commit.
    private var lastTake: UInt64?
    private var lastActivity: UInt64 = 0
    /// Operations per nanosecond at `lastTake`: each batch adds count / τ, and the sum
    /// decays by e^(-Δt / τ), so older batches weigh less the longer ago they came.
    private(set) var rate: Double = 0

    init(windowNanos: UInt64, minimumExpected: Double = 2) {
        self.windowNanos = windowNanos
        self.minimumExpected = minimumExpected
    }

    private var tau: Double { Double(windowNanos) * Self.memoryWindows }

    /// Asked when the writer wakes for waiting operations at `now`.
    func shouldGather(now: UInt64) -> Bool {
        // `lastActivity` is never before `lastTake` (a take is activity too).
        guard windowNanos > 0, let lastTake, now >= lastActivity else { return false }
        guard now - lastActivity <= windowNanos * Self.quietWindows else { return false }
        let current = rate * exp(-Double(now - lastTake) / tau)
        return current * Double(windowNanos) >= minimumExpected
    }

    /// Records that the writer took `count` operations at `now`.
    mutating func took(_ count: Int, now: UInt64) {
        defer {
            lastTake = now
            lastActivity = max(lastActivity, now)
        }
        guard windowNanos > 0 else { return }
        let decay = lastTake.map { now > $0 ? exp(-Double(now - $0) / tau) : 1 } ?? 0
        rate = rate * decay + Double(count) / tau
    }

    /// Records that the writer finished committing at `now`: a long commit is activity,
    /// not a quiet spell.
    mutating func finished(now: UInt64) {
        lastActivity = max(lastActivity, now)
    }
}

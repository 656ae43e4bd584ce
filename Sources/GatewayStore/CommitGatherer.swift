/// When the writer should wait a moment before committing, so that more operations
/// share one transaction (docs/DECISIONS.md, "Group commit gathering").
///
/// Every commit costs the same whatever its size: the B-tree pages it touches are
/// written to the WAL again, checkpointed again and flushed again. Left alone, the
/// writer wakes for the first waiting webhook and commits a handful at a time, since
/// it runs faster than the event loop hands it work. Waiting pays off only when
/// more operations are sure to arrive during the wait: the gatherer keeps a moving
/// estimate of the arrival rate and asks for a wait of `windowNanos` only if at
/// least `minimumExpected` more operations are expected in it. An operation after a
/// quiet spell is therefore committed at once, and only a busy writer waits.
struct CommitGatherer {
    let windowNanos: UInt64
    let minimumExpected: Double
    /// Weight of the newest interval in the moving rate.
    static let smoothing = 0.25
    /// Idle for this many windows since the last batch counts as a quiet spell.
    static let quietWindows: UInt64 = 5
    private var lastTake: UInt64?
    /// Operations per nanosecond, smoothed over the last batches.
    private(set) var rate: Double = 0

    init(windowNanos: UInt64, minimumExpected: Double = 2) {
        self.windowNanos = windowNanos
        self.minimumExpected = minimumExpected
    }

    /// Asked when the writer wakes for waiting operations at `now`. After a quiet
    /// spell (no batch taken for `quietWindows` windows) it never waits, whatever the
    /// estimate says: the rate is only updated when a batch is taken.
    func shouldGather(now: UInt64) -> Bool {
        guard windowNanos > 0, let lastTake, now >= lastTake else { return false }
        guard now - lastTake <= windowNanos * Self.quietWindows else { return false }
        return rate * Double(windowNanos) >= minimumExpected
    }

    /// Records that the writer took `count` operations at `now`.
    mutating func took(_ count: Int, now: UInt64) {
        defer { lastTake = now }
        guard let lastTake, now > lastTake else { return }
        let sample = Double(count) / Double(now - lastTake)
        rate += Self.smoothing * (sample - rate)
    }
}

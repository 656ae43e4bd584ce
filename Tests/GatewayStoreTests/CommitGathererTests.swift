import Testing

@testable import GatewayStore

private let window: UInt64 = 400_000  // 400 µs, as the writer uses
private let micro: UInt64 = 1_000

/// Takes `batches` batches of `count` operations, one every `every` ns, from `start`;
/// returns the time of the last one.
private func feed(_ gatherer: inout CommitGatherer, count: Int, every: UInt64, batches: Int, start: UInt64) -> UInt64 {
    var now = start
    for _ in 0..<batches {
        now += every
        gatherer.took(count, now: now)
    }
    return now
}

@Test func aFirstOperationIsCommittedAtOnce() {
    let gatherer = CommitGatherer(windowNanos: window)
    #expect(!gatherer.shouldGather(now: 1_000_000_000))
}

@Test func aBusyWriterWaitsForMore() {
    var gatherer = CommitGatherer(windowNanos: window)
    gatherer.took(1, now: 1_000_000_000)
    // 10 operations every 800 µs: 12,500/s, 5 expected per window.
    let last = feed(&gatherer, count: 10, every: 800 * micro, batches: 20, start: 1_000_000_000)
    #expect(gatherer.shouldGather(now: last + 100 * micro))
    // Measured at a take, the estimate sits between the true rate and twice it.
    #expect(gatherer.rate * 1e9 > 12_500 && gatherer.rate * 1e9 < 25_000)
}

@Test func aSteadyTrickleIsNotDelayed() {
    var gatherer = CommitGatherer(windowNanos: window)
    gatherer.took(1, now: 1_000_000_000)
    // One operation every 1 ms: 1,000/s, 0.4 expected per window.
    let last = feed(&gatherer, count: 1, every: 1_000 * micro, batches: 50, start: 1_000_000_000)
    #expect(!gatherer.shouldGather(now: last + 900 * micro))
}

@Test func aQuietSpellEndsGatheringWhateverTheEstimate() {
    var gatherer = CommitGatherer(windowNanos: window)
    gatherer.took(1, now: 1_000_000_000)
    let last = feed(&gatherer, count: 20, every: 500 * micro, batches: 20, start: 1_000_000_000)
    #expect(gatherer.shouldGather(now: last + 2 * window))
    #expect(!gatherer.shouldGather(now: last + CommitGatherer.quietWindows * window + 1))
}

@Test func theEstimateFollowsTheLoadDown() {
    var gatherer = CommitGatherer(windowNanos: window)
    gatherer.took(1, now: 1_000_000_000)
    var last = feed(&gatherer, count: 20, every: 500 * micro, batches: 20, start: 1_000_000_000)
    #expect(gatherer.shouldGather(now: last + micro))
    // The load falls to one operation every 1.5 ms: within a few batches the writer
    // stops waiting.
    last = feed(&gatherer, count: 1, every: 1_500 * micro, batches: 12, start: last)
    #expect(!gatherer.shouldGather(now: last + micro))
}

@Test func aZeroWindowNeverGathers() {
    var gatherer = CommitGatherer(windowNanos: 0)
    gatherer.took(1, now: 1_000_000_000)
    let last = feed(&gatherer, count: 100, every: 100 * micro, batches: 10, start: 1_000_000_000)
    #expect(!gatherer.shouldGather(now: last + micro))
}

/// After a burst, a trickle of single operations is delayed a few times at most
/// while the estimate decays, never for long.
@Test func aTrickleAfterABurstIsDelayedAFewTimesAtMost() {
    var gatherer = CommitGatherer(windowNanos: window)
    gatherer.took(1, now: 1_000_000_000)
    var now = feed(&gatherer, count: 20, every: 500 * micro, batches: 20, start: 1_000_000_000)
    var delayed = 0
    for _ in 0..<10 {
        now += 1_500 * micro
        if gatherer.shouldGather(now: now) { delayed += 1 }
        gatherer.took(1, now: now)
        gatherer.finished(now: now + 100 * micro)
    }
    #expect(delayed <= 3)
    #expect(!gatherer.shouldGather(now: now + 1_500 * micro))
}

/// A commit that took longer than the quiet spell is activity: the writer keeps
/// gathering after it while the load lasts.
@Test func aLongCommitIsNotAQuietSpell() {
    var gatherer = CommitGatherer(windowNanos: window)
    gatherer.took(1, now: 1_000_000_000)
    let last = feed(&gatherer, count: 20, every: 500 * micro, batches: 20, start: 1_000_000_000)
    let after = last + CommitGatherer.quietWindows * window + 500 * micro
    #expect(!gatherer.shouldGather(now: after))
    gatherer.finished(now: after - 100 * micro)
    #expect(gatherer.shouldGather(now: after))
}

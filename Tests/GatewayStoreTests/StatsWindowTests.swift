import Testing

@testable import GatewayStore

/// The readings at which `window` rolls, in order.
private func rolls(_ window: inout StatsWindow, _ readings: [UInt64]) -> [UInt64] {
    readings.filter { window.roll(now: $0) }
}

@Test func theStatsWindowRollsOnceASecond() {
    var window = StatsWindow(now: 5_000_000_000)
    let rolled = rolls(&window, [5_999_999_999, 6_000_000_000, 6_500_000_000, 7_000_000_001])
    #expect(rolled == [6_000_000_000, 7_000_000_001])
    #expect(window.since == 7_000_000_001)
}

/// Two flushers read the clock before they take the lock: the one that rolls the
/// window may hold the later reading. The other's earlier reading must count as no
/// time passed (it trapped on an unsigned subtraction and stopped the daemon).
@Test func anEarlierReadingThanTheWindowIsNoTimePassed() {
    var window = StatsWindow(now: 1_000_000_000)
    let rolled = rolls(&window, [2_000_000_105, 2_000_000_100, 0])
    #expect(rolled == [2_000_000_105])
    #expect(window.since == 2_000_000_105)
}

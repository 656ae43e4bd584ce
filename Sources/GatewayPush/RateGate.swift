import CoreMetrics
import Foundation
import GatewayCore
import GatewayProviders
import GatewayStore
import Logging

/// One provider's call admission (SPEC §5): at most `maxConcurrency` calls in
/// flight and at most `perMinute` calls started in ANY 60-second window.
///
/// A sliding log, not a token bucket: a bucket that lets N through at once and then
/// refills allows 2N in some 60 s windows. Each admitted call's start time is
/// committed to SQLite before the call goes out, and the log is reloaded at start,
/// so a restart does not reopen the window.
public final class RateGate: ProviderGate, @unchecked Sendable {
    let provider: ProviderKind
    let perMinute: Int
    let writer: StoreWriter
    let logger: Logger
    private let condition = NSCondition()
    private var starts: [Int64] = []  // admitted call start times (ms), oldest first, last 60 s
    private var inFlight = 0
    private let maxConcurrency: Int
    /// Calls are admitted in the order they asked (the dispatcher claims earliest
    /// dates first; a condition variable alone would wake waiters in any order).
    private var nextTicket = 0
    private var serving = 0
    /// Calls that had to wait for the window (metrics).
    public private(set) var quotaWaits = 0
    static let window: Int64 = 60_000
    /// The provider times a call when it arrives, a little after we admit it: keep a
    /// second of margin so both clocks agree no 60 s window holds more than N.
    static let margin: Int64 = 1000

    public init(
        provider: ProviderKind, perMinute: Int, maxConcurrency: Int, writer: StoreWriter, databasePath: String,
        logger: Logger
    ) throws {
        self.provider = provider
        self.perMinute = perMinute
        self.maxConcurrency = maxConcurrency
        self.writer = writer
        self.logger = logger
        let db = try Database.openForReading(path: databasePath)
        let since = WallClock.nowMillis() - Self.window - Self.margin
        try db.query(
            "SELECT at_ms FROM provider_calls WHERE provider = ? AND at_ms > ? ORDER BY at_ms",
            [.text(provider.rawValue), .int(since)]
        ) { starts.append($0.int(0)) }
    }

    public func enter() {
        condition.lock()
        let ticket = nextTicket
        nextTicket += 1
        while ticket != serving || inFlight >= maxConcurrency { condition.wait() }
        var waited = false
        while true {
            let now = WallClock.nowMillis()
            while let first = starts.first, first <= now - Self.window - Self.margin { starts.removeFirst() }
            if starts.count < perMinute {
                starts.append(now)
                break
            }
            waited = true
            // The oldest start leaves the window at first + 60 s.
            let wake = Date(timeIntervalSince1970: Double(starts[0] + Self.window + Self.margin + 1) / 1000)
            _ = condition.wait(until: wake)
        }
        inFlight += 1
        serving += 1
        condition.broadcast()
        if waited {
            quotaWaits += 1
            Counter(label: "gatewayd_provider_quota_waits_total", dimensions: [("provider", provider.rawValue)])
                .increment()
        }
        let at = starts.last!
        condition.unlock()
        // Durable before the call goes out: after a crash the window is still known.
        let provider = self.provider.rawValue
        do {
            try writer.performAndWait { db in
                try db.statement("INSERT INTO provider_calls(provider, at_ms) VALUES(?, ?)").run([
                    .text(provider), .int(at),
                ])
                try db.statement("DELETE FROM provider_calls WHERE provider = ? AND at_ms < ?").run([
                    .text(provider), .int(at - 2 * Self.window),
                ])
            }
        } catch {
            logger.error("cannot record a provider call", metadata: ["error": "\(error)"])
        }
    }

    /// When a new call could start: now (or earlier) when the window has room, else
    /// the moment its oldest call leaves the window.
    public func nextFreeSlot() -> Int64 {
        condition.lock()
        defer { condition.unlock() }
        let now = WallClock.nowMillis()
        let live = starts.filter { $0 > now - Self.window - Self.margin }
        guard live.count >= perMinute else { return now }
        return live[live.count - perMinute] + Self.window + Self.margin + 1
    }

    public func leave() {
        condition.lock()
        inFlight -= 1
        condition.broadcast()
        condition.unlock()
    }
}

import CoreMetrics
import Foundation
import GatewayCore
import GatewayProviders
import GatewayStore
import Logging

public struct DispatcherSettings: Sendable {
    public var workers = 16
    public var maxAttempts = 10
    public var backoffBaseMillis = 1000
    public var backoffMaxMillis = 3_600_000
    /// How long a claimed job is held; a crashed process's leases are released at start.
    public var leaseMillis: Int64 = 120_000
    public var pollMillis = 200

    public init() {}
}

/// Claims due push jobs from the outbox and runs each attempt on a Dispatch
/// concurrent queue (SPEC §5). Earliest session date first, round-robin across
/// athletes within a claim, at most `workers` attempts at once; provider limits are
/// enforced by each provider's `RateGate` around every call.
public final class Dispatcher: @unchecked Sendable {
    let writer: StoreWriter
    let reader: Database
    let attempt: PushAttempt
    let settings: DispatcherSettings
    let logger: Logger
    private let queue = DispatchQueue(label: "gatewayd.push", attributes: .concurrent)
    private let condition = NSCondition()
    private var running = 0
    private var stopping = false
    private var wakeRequested = false
    private var loopFinished = DispatchSemaphore(value: 0)

    public init(
        databasePath: String, writer: StoreWriter, attempt: PushAttempt, settings: DispatcherSettings, logger: Logger
    ) throws {
        self.writer = writer
        self.attempt = attempt
        self.settings = settings
        self.logger = logger
        reader = try Database.openForReading(path: databasePath)
        // One gateway process owns the database: leases left by a crash are void.
        try writer.performAndWait { db in
            try db.statement("UPDATE jobs SET lease_until_ms = NULL WHERE lease_until_ms IS NOT NULL").run()
        }
    }

    public func start() {
        let thread = Thread { [self] in
            setOSThreadName("gw-dispatcher")
            run()
        }
        thread.name = "gatewayd-dispatcher"
        thread.start()
    }

    /// New work may be due (an ingest commit, a connection): look now.
    public func wake() {
        condition.lock()
        wakeRequested = true
        condition.signal()
        condition.unlock()
    }

    /// Whether the dispatcher thread is alive (readiness).
    public var isAlive: Bool {
        condition.lock()
        defer { condition.unlock() }
        return !stopping
    }

    /// Stops claiming; waits up to `deadline` seconds for attempts in flight. Attempts
    /// still running then keep their lease until the process exits; their jobs are
    /// released at the next start.
    public func stop(deadline: Double) {
        condition.lock()
        stopping = true
        condition.broadcast()
        let until = Date(timeIntervalSinceNow: deadline)
        while running > 0 {
            if !condition.wait(until: until) { break }
        }
        let left = running
        condition.unlock()
        if left > 0 { logger.warning("push attempts still in flight at shutdown", metadata: ["count": "\(left)"]) }
    }

    private var lastGauges: UInt64 = 0
    private let queueDepth = Gauge(label: "gatewayd_push_queue_depth")
    private let oldestDueAge = Gauge(label: "gatewayd_push_oldest_due_age_seconds")

    /// Queue depth and the age of the oldest due job, about once a second.
    private func updateGauges() {
        let now = WallClock.monotonicNanos()
        guard now - lastGauges >= 1_000_000_000 else { return }
        lastGauges = now
        let wall = WallClock.nowMillis()
        _ = try? reader.queryFirst(
            "SELECT COUNT(*), MIN(due_at_ms) FROM jobs WHERE kind = 'session.push' AND due_at_ms <= ?", [.int(wall)]
        ) { row in
            queueDepth.record(row.int(0))
            oldestDueAge.record(row.isNull(1) ? 0 : Double(max(0, wall - row.int(1))) / 1000)
        }
    }

    private func run() {
        while true {
            updateGauges()
            condition.lock()
            if stopping {
                condition.unlock()
                return
            }
            let free = settings.workers - running
            condition.unlock()
            var claimed: [(String, Int64)] = []
            if free > 0 {
                do {
                    claimed = try claim(limit: free)
                } catch {
                    logger.error("cannot claim push jobs", metadata: ["error": "\(error)"])
                }
            }
            for (sessionID, revision) in claimed { launch(sessionID, revision) }
            condition.lock()
            if !stopping && !wakeRequested {
                _ = condition.wait(until: Date(timeIntervalSinceNow: Double(settings.pollMillis) / 1000))
            }
            wakeRequested = false
            condition.unlock()
        }
    }

    private func launch(_ sessionID: String, _ revision: Int64) {
        condition.lock()
        running += 1
        condition.unlock()
        queue.async { [self] in
            attempt.run(sessionID: sessionID, jobRevision: revision)
            condition.lock()
            running -= 1
            condition.broadcast()
            condition.unlock()
        }
    }

    /// Due, unleased jobs: earliest session date first; among sessions of the same date,
    /// round-robin across athletes. Date order alone keeps one athlete's 12-week bulk
    /// publish from starving another's tomorrow (tomorrow sorts first); the round-robin
    /// keeps a bulk publish from starving others on the same day.
    func claim(limit: Int) throws -> [(String, Int64)] {
        let now = WallClock.nowMillis()
        var candidates: [(session: String, athlete: String, revision: Int64, date: String)] = []
        try reader.query(
            """
            SELECT j.subject, s.athlete_id, j.revision, s.date FROM jobs j JOIN sessions s ON s.id = j.subject
            WHERE j.kind = 'session.push' AND j.due_at_ms <= ?1 AND (j.lease_until_ms IS NULL OR j.lease_until_ms < ?1)
            ORDER BY s.date, j.due_at_ms LIMIT ?2
            """, [.int(now), .int(Int64(limit * 4))]
        ) { candidates.append(($0.text(0) ?? "", $0.text(1) ?? "", $0.int(2), $0.text(3) ?? "")) }
        guard !candidates.isEmpty else { return [] }
        var picked: [(String, Int64)] = []
        var start = 0
        while start < candidates.count && picked.count < limit {
            // One date's candidates, interleaved by athlete.
            var end = start
            while end < candidates.count && candidates[end].date == candidates[start].date { end += 1 }
            var byAthlete: [String: [(String, Int64)]] = [:]
            var order: [String] = []
            for c in candidates[start..<end] {
                if byAthlete[c.athlete] == nil { order.append(c.athlete) }
                byAthlete[c.athlete, default: []].append((c.session, c.revision))
            }
            var round = 0
            while picked.count < limit {
                var any = false
                for athlete in order {
                    if let list = byAthlete[athlete], round < list.count, picked.count < limit {
                        picked.append(list[round])
                        any = true
                    }
                }
                if !any { break }
                round += 1
            }
            start = end
        }
        let lease = now + settings.leaseMillis
        let ids = picked.map(\.0)
        let revisions = Dictionary(picked, uniquingKeysWith: { a, _ in a })
        return try writer.performAndWait { db in
            var leased: [(String, Int64)] = []
            let statement = try db.statement(
                """
                UPDATE jobs SET lease_until_ms = ?1 WHERE kind = 'session.push' AND subject = ?2
                    AND (lease_until_ms IS NULL OR lease_until_ms < ?3)
                """)
            for id in ids where try statement.run([.int(lease), .text(id), .int(now)]) == 1 {
                if let revision = revisions[id] { leased.append((id, revision)) }
            }
            return leased
        }
    }
}

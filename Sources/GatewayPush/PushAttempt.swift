import CoreMetrics
import Foundation
import GatewayCore
import GatewayProviders
import GatewayStore
import Logging

/// One push attempt for one session (SPEC §5): provider choice, validation,
/// token, provider calls with checkpoints, and the recorded outcome.
public final class PushAttempt: @unchecked Sendable {
    let writer: StoreWriter
    let tokens: TokenManager
    let providers: [ProviderKind: ProviderOAuth]
    let pushers: [ProviderKind: any ProviderPusher]
    let settings: DispatcherSettings
    let callbackURLSet: Bool
    let logger: Logger
    private let readLock = NSLock()
    private let reader: Database

    public init(
        databasePath: String, writer: StoreWriter, tokens: TokenManager, providers: [ProviderKind: ProviderOAuth],
        pushers: [ProviderKind: any ProviderPusher], settings: DispatcherSettings, callbackURLSet: Bool,
        logger: Logger
    ) throws {
        self.writer = writer
        self.tokens = tokens
        self.providers = providers
        self.pushers = pushers
        self.settings = settings
        self.callbackURLSet = callbackURLSet
        self.logger = logger
        reader = try Database.openForReading(path: databasePath)
    }

    struct Loaded {
        var athleteID: String
        var revision: Int64
        var sessionType: String
        var date: String
        var deleted: Bool
        var status: String?
        var attempts: Int64
        var remote: RemoteWorkout
        var remoteProvider: ProviderKind?
        var body: [UInt8]
        var updatedAtMillis: Int64
    }

    func load(_ sessionID: String) throws -> Loaded? {
        try readLock.withLock {
            try reader.queryFirst(
                """
                SELECT s.athlete_id, s.revision, s.session_type, s.date, s.deleted, s.export_status, s.attempts,
                    s.remote_workout_id, s.remote_schedule_id, s.remote_plan_id, s.remote_date, s.remote_provider,
                    e.body, s.updated_at_ms
                FROM sessions s LEFT JOIN webhook_events e ON e.webhook_id = s.event_id WHERE s.id = ?
                """, [.text(sessionID)]
            ) { s in
                Loaded(
                    athleteID: s.text(0) ?? "", revision: s.int(1), sessionType: s.text(2) ?? "", date: s.text(3) ?? "",
                    deleted: s.int(4) != 0, status: s.text(5), attempts: s.int(6),
                    remote: RemoteWorkout(
                        workoutID: s.text(7), scheduleID: s.text(8), planID: s.text(9), scheduledDate: s.text(10)),
                    remoteProvider: s.text(11).flatMap { ProviderKind(rawValue: $0) }, body: s.blob(12),
                    updatedAtMillis: s.int(13))
            }
        }
    }

    func connected(_ athleteID: String) throws -> [ConnectionRecord] {
        try readLock.withLock { try ConnectionStore.connections(reader, athleteID: athleteID) }
            .filter { $0.status == .connected }
    }

    /// The athlete's primary provider, else the only connected one (SPEC §5).
    static func choose(_ connections: [ConnectionRecord]) -> ProviderKind? {
        if let primary = connections.first(where: \.isPrimary) { return primary.provider }
        return connections.count == 1 ? connections[0].provider : nil
    }

    /// Why an attempt ended, and what to record.
    enum Outcome {
        case sent(provider: ProviderKind?, remote: RemoteWorkout)
        case removed
        case notConnected
        case failed(String)
        case retry(afterMillis: Int64, error: String, rateLimited: Bool)
        /// The provider's quota window is full: the job goes back, due when a call can
        /// start, so the next claim picks the earliest dates again. Not an attempt.
        case deferred(untilMillis: Int64)
    }

    public func run(sessionID: String, jobRevision: Int64) {
        logger.debug("push attempt", metadata: ["session_id": "\(sessionID)", "revision": "\(jobRevision)"])
        let outcome: Outcome
        var loaded: Loaded?
        do {
            loaded = try load(sessionID)
            guard let session = loaded else {
                // The session is gone (athlete deleted): nothing to do.
                try writer.performAndWait { db in
                    try db.statement("DELETE FROM jobs WHERE kind = 'session.push' AND subject = ?").run([
                        .text(sessionID)
                    ])
                }
                return
            }
            outcome = try perform(sessionID: sessionID, session: session)
        } catch {
            logger.error(
                "push attempt failed to run",
                metadata: [
                    "session_id": "\(sessionID)", "athlete_id": "\(loaded?.athleteID ?? "")", "error": "\(error)",
                ])
            outcome = .retry(afterMillis: 5000, error: "internal: \(error)", rateLimited: false)
        }
        record(sessionID: sessionID, jobRevision: jobRevision, session: loaded, outcome: outcome)
    }

    func perform(sessionID: String, session: Loaded) throws -> Outcome {
        let removal = session.deleted || session.sessionType != "ENDURANCE"
        let connections = try connected(session.athleteID)
        let target = Self.choose(connections)

        // Something sits at another provider than the target (the primary changed, or the
        // session is gone): take it off that device first. `remoteProvider` without ids
        // means a create may have gone out there with its answer lost: the pusher's
        // removal looks for it (Wahoo by the session id).
        if let old = session.remoteProvider, removal || old != target {
            if connections.contains(where: { $0.provider == old }), let pusher = pushers[old] {
                do {
                    try pusher.remove(
                        sessionID: sessionID, existing: session.remote,
                        call: call(athleteID: session.athleteID, provider: old),
                        checkpoint: { remote in try self.checkpoint(sessionID, old, remote) })
                    try checkpoint(sessionID, nil, RemoteWorkout())
                } catch {
                    return classify(error, session: session)
                }
            } else if target == nil {
                // No provider is connected: keep what sits at `old`. When the athlete
                // reconnects (the NOT_CONNECTED session is queued again), the workout is
                // updated in place or removed there, never copied a second time.
                return .notConnected
            } else {
                // The athlete moved on to another provider: the old one can no longer be reached.
                try checkpoint(sessionID, nil, RemoteWorkout())
            }
        }
        if removal { return .removed }
        guard let target, let pusher = pushers[target] else { return .notConnected }

        let today = String(ISODateTime.format(epochMillis: WallClock.nowMillis()).prefix(10))
        if session.date < today { return .failed("session date has passed") }

        guard let root = try? JSONParser.parse(session.body), let sessionJSON = root["data"]?["session"] else {
            return .failed("the stored event has no session")
        }
        let exportSession: ExportSession
        let workout: NormalizedWorkout
        do {
            exportSession = try ExportSession.decode(from: sessionJSON)
            workout = try exportSession.prepare(for: target == .garmin ? .garmin : .wahoo)
        } catch {
            return .failed(error.message)
        }

        if let gate = providers[target]?.gate as? RateGate {
            let free = gate.nextFreeSlot()
            if free > WallClock.nowMillis() { return .deferred(untilMillis: free) }
        }
        let attemptNumber = session.attempts + 1
        try writer.performAndWait { db in
            try db.statement("UPDATE sessions SET attempts = ? WHERE id = ? AND revision = ?").run([
                .int(attemptNumber), .text(sessionID), .int(session.revision),
            ])
            // The pusher may create something now; if its answer is lost before the first
            // checkpoint, this marker still sends a later removal to the provider.
            try db.statement("UPDATE sessions SET remote_provider = ?2 WHERE id = ?1 AND remote_provider IS NULL").run(
                [.text(sessionID), .text(target.rawValue)])
        }
        let existing = session.remoteProvider == target ? session.remote : RemoteWorkout()
        do {
            let remote = try pusher.upsert(
                exportSession, workout: workout, existing: existing,
                call: call(athleteID: session.athleteID, provider: target),
                checkpoint: { remote in try self.checkpoint(sessionID, target, remote) })
            try checkpoint(sessionID, target, remote)
            return .sent(provider: target, remote: remote)
        } catch {
            var s = session
            s.attempts = attemptNumber
            return classify(error, session: s)
        }
    }

    /// Provider calls with the token manager's token (refresh on 401) and the gate.
    func call(athleteID: String, provider: ProviderKind) -> ProviderCall {
        let tokens = self.tokens
        let oauth = providers[provider]
        return { method, path, body, contentType throws(ProviderCallError) in
            guard let oauth else { throw .rejected(status: 0, message: "provider not configured") }
            do throws(TokenError) {
                return try tokens.withToken(athleteID: athleteID, provider: provider) {
                    (token) throws(ProviderCallError) in
                    try oauth.call(method, path: path, accessToken: token, body: body, contentType: contentType)
                }
            } catch .provider(let error) {
                throw error
            } catch {
                throw TokenFailure.marker(error)
            }
        }
    }

    func checkpoint(_ sessionID: String, _ provider: ProviderKind?, _ remote: RemoteWorkout) throws {
        try writer.performAndWait { db in
            try db.statement(
                """
                UPDATE sessions SET remote_workout_id = ?2, remote_schedule_id = ?3, remote_plan_id = ?4,
                    remote_date = ?5, remote_provider = ?6 WHERE id = ?1
                """
            ).run([
                .text(sessionID), SQLValue(remote.workoutID), SQLValue(remote.scheduleID), SQLValue(remote.planID),
                SQLValue(remote.scheduledDate), SQLValue(remote.isEmpty ? nil : provider?.rawValue),
            ])
        }
    }

    func classify(_ error: any Error, session: Loaded) -> Outcome {
        if case .rejected(let status, let message)? = error as? ProviderCallError, status == TokenFailure.status {
            return message == TokenError.notConnected.description || message.hasPrefix("connection revoked")
                ? .notConnected : .failed(message)
        }
        guard let error = error as? ProviderCallError else {
            return backoff(session, "\(error)", rateLimited: false)
        }
        switch error {
        case .rateLimited(let after):
            return .retry(afterMillis: Int64(after ?? 60) * 1000, error: error.description, rateLimited: true)
        case .server, .transport, .badResponse, .unauthorized:
            return backoff(session, error.description, rateLimited: false)
        case .rejected, .invalidGrant:
            return .failed(error.description)
        }
    }

    /// Exponential backoff with full jitter, up to max_attempts and never past the
    /// session's date; then FAILED.
    func backoff(_ session: Loaded, _ message: String, rateLimited: Bool) -> Outcome {
        guard session.attempts < Int64(settings.maxAttempts) else {
            return .failed("\(message) (after \(session.attempts) attempts)")
        }
        let exponent = min(Int(session.attempts), 30)
        let ceiling = min(
            Double(settings.backoffMaxMillis), Double(settings.backoffBaseMillis) * pow(2, Double(exponent - 1)))
        let delay = Int64(Double.random(in: 0...max(ceiling, 1)))
        let next = WallClock.nowMillis() + delay
        if let date = CalendarDate(session.date), next >= Int64(date.daysSinceEpoch + 1) * 86_400_000 {
            return .failed("\(message); the session's date passed before the workout could be sent")
        }
        return .retry(afterMillis: delay, error: message, rateLimited: rateLimited)
    }

    func record(sessionID: String, jobRevision: Int64, session: Loaded?, outcome: Outcome) {
        let now = WallClock.nowMillis()
        let provider = session?.remoteProvider
        var metricProvider = provider?.rawValue ?? "NONE"
        let label: String
        var errorText: String?
        switch outcome {
        case .sent(let p, _):
            label = "sent"
            metricProvider = p?.rawValue ?? metricProvider
        case .removed: label = "removed"
        case .notConnected: label = "not_connected"
        case .failed(let message):
            label = "failed"
            errorText = message
        case .retry(_, let message, let limited):
            label = limited ? "rate_limited" : "retry"
            errorText = message
        case .deferred: label = "deferred"
        }
        // One line per attempt that changed something; deferrals (quota) only at debug.
        var metadata: Logger.Metadata = [
            "session_id": "\(sessionID)", "athlete_id": "\(session?.athleteID ?? "")", "revision": "\(jobRevision)",
            "outcome": "\(label)",
        ]
        if case .sent(let p?, _) = outcome { metadata["provider"] = "\(p.rawValue)" }
        if let errorText { metadata["error"] = "\(errorText)" }
        if case .retry(let after, _, _) = outcome { metadata["retry_in_ms"] = "\(after)" }
        switch outcome {
        case .deferred: logger.debug("push outcome", metadata: metadata)
        case .failed: logger.warning("push outcome", metadata: metadata)
        default: logger.info("push outcome", metadata: metadata)
        }
        Counter(label: "gatewayd_pushes_total", dimensions: [("provider", metricProvider), ("outcome", label)])
            .increment()
        if case .sent = outcome, let session {
            Timer(label: "gatewayd_push_latency_seconds").recordNanoseconds(
                max(0, (now - session.updatedAtMillis)) * 1_000_000)
        }
        let callbacks = callbackURLSet
        do {
            try writer.performAndWait { db in
                let current = try db.scalarInt("SELECT revision FROM sessions WHERE id = ?", [.text(sessionID)])
                let isCurrent = current == jobRevision
                let before = try SessionQueries(db: db).status(id: sessionID)?.exportStatus
                switch outcome {
                case .sent(let p, let remote) where isCurrent:
                    try db.statement(
                        """
                        UPDATE sessions SET export_status = 'SENT', export_provider = ?2, exported_at_ms = ?3,
                            external_workout_id = ?4, last_export_error = NULL, next_attempt_at_ms = NULL
                        WHERE id = ?1
                        """
                    ).run([.text(sessionID), SQLValue(p?.rawValue), .int(now), SQLValue(remote.workoutID)])
                case .removed where isCurrent:
                    try db.statement(
                        """
                        UPDATE sessions SET export_status = CASE WHEN export_status IS NULL THEN NULL ELSE 'SENT' END,
                            exported_at_ms = ?2, external_workout_id = NULL, last_export_error = NULL,
                            next_attempt_at_ms = NULL
                        WHERE id = ?1
                        """
                    ).run([.text(sessionID), .int(now)])
                case .notConnected where isCurrent:
                    try db.statement(
                        """
                        UPDATE sessions SET export_status = 'NOT_CONNECTED', next_attempt_at_ms = NULL WHERE id = ?1
                            AND export_status IS NOT NULL
                        """
                    ).run([.text(sessionID)])
                case .failed(let message) where isCurrent:
                    try db.statement(
                        """
                        UPDATE sessions SET export_status = 'FAILED', last_export_error = ?2, next_attempt_at_ms = NULL
                        WHERE id = ?1
                        """
                    ).run([.text(sessionID), .text(message)])
                case .retry(let after, let message, _) where isCurrent:
                    try db.statement(
                        """
                        UPDATE sessions SET export_status = 'PENDING', last_export_error = ?2, next_attempt_at_ms = ?3
                        WHERE id = ?1
                        """
                    ).run([.text(sessionID), .text(message), .int(now + after)])
                default:
                    break  // a newer revision arrived meanwhile: its own job pushes it
                }
                // The job: done for this revision, or due again later.
                if case .deferred(let until) = outcome {
                    try db.statement(
                        """
                        UPDATE jobs SET due_at_ms = MAX(due_at_ms, ?2), lease_until_ms = NULL
                        WHERE kind = 'session.push' AND subject = ?1
                        """
                    ).run([.text(sessionID), .int(until)])
                } else if case .retry(let after, _, _) = outcome, isCurrent {
                    try db.statement(
                        """
                        UPDATE jobs SET due_at_ms = ?3, lease_until_ms = NULL, attempts = attempts + 1
                        WHERE kind = 'session.push' AND subject = ?1 AND revision = ?2
                        """
                    ).run([.text(sessionID), .int(jobRevision), .int(now + after)])
                } else {
                    try db.statement(
                        "DELETE FROM jobs WHERE kind = 'session.push' AND subject = ?1 AND revision <= ?2"
                    ).run([.text(sessionID), .int(jobRevision)])
                }
                try db.statement("UPDATE jobs SET lease_until_ms = NULL WHERE kind = 'session.push' AND subject = ?")
                    .run([.text(sessionID)])
                if callbacks, let after = try SessionQueries(db: db).status(id: sessionID), after.exportStatus != before
                {
                    try StatusCallbacks.enqueue(db, status: after, now: now)
                }
            }
        } catch {
            logger.error(
                "cannot record a push outcome",
                metadata: [
                    "session_id": "\(sessionID)", "athlete_id": "\(session?.athleteID ?? "")", "error": "\(error)",
                ])
        }
    }
}

/// Carries a token failure (not connected, revoked) through a `ProviderCall`, whose
/// errors are `ProviderCallError`s: a `rejected` error with this marker status.
enum TokenFailure {
    static let status = -1

    static func marker(_ error: any Error) -> ProviderCallError {
        .rejected(status: status, message: "\(error)")
    }
}

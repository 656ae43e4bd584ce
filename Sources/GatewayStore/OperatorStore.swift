import Foundation
import GatewayCore

/// A session as the operator CLI shows it: status, provider, attempts, remote ids,
/// dates and its outbox job.
public struct OperatorSession: Sendable, Equatable {
    public var sessionID: String
    public var athleteID: String
    public var revision: Int64
    public var sessionType: String
    public var date: String
    public var startTime: String?
    public var deleted: Bool
    public var exportStatus: String?
    /// Where the session goes now: the athlete's primary connected provider; with no
    /// connection, the provider it was last exported to or still sits at.
    public var provider: String?
    public var exportProvider: String?
    public var exportedAtMillis: Int64?
    public var externalWorkoutID: String?
    public var lastExportError: String?
    public var attempts: Int64
    public var nextAttemptAtMillis: Int64?
    public var remoteProvider: String?
    public var remoteWorkoutID: String?
    public var remoteScheduleID: String?
    public var remotePlanID: String?
    public var remoteDate: String?
    public var createdAtMillis: Int64
    public var updatedAtMillis: Int64
    public var job: OperatorJob?

    public var json: JSONValue {
        func time(_ millis: Int64?) -> JSONValue {
            millis.map { .string(ISODateTime.format(epochMillis: $0)) } ?? .null
        }
        func text(_ value: String?) -> JSONValue { value.map { .string($0) } ?? .null }
        return .object(
            JSONObject([
                ("sessionId", .string(sessionID)),
                ("athleteId", .string(athleteID)),
                ("revision", .int(revision)),
                ("sessionType", .string(sessionType)),
                ("date", .string(date)),
                ("startTime", text(startTime)),
                ("deleted", .bool(deleted)),
                ("exportStatus", text(exportStatus)),
                ("provider", text(provider)),
                ("exportProvider", text(exportProvider)),
                ("exportedAt", time(exportedAtMillis)),
                ("externalWorkoutId", text(externalWorkoutID)),
                ("lastExportError", text(lastExportError)),
                ("attempts", .int(attempts)),
                ("nextAttemptAt", time(nextAttemptAtMillis)),
                (
                    "remote",
                    .object(
                        JSONObject([
                            ("provider", text(remoteProvider)), ("workoutId", text(remoteWorkoutID)),
                            ("scheduleId", text(remoteScheduleID)), ("planId", text(remotePlanID)),
                            ("date", text(remoteDate)),
                        ]))
                ),
                ("createdAt", time(createdAtMillis)),
                ("updatedAt", time(updatedAtMillis)),
                ("job", job?.json ?? .null),
            ]))
    }
}

/// The session's row in the outbox (`jobs`), if a push is queued or in flight.
public struct OperatorJob: Sendable, Equatable {
    public var revision: Int64
    public var dueAtMillis: Int64
    public var leaseUntilMillis: Int64?
    public var attempts: Int64

    public var json: JSONValue {
        .object(
            JSONObject([
                ("revision", .int(revision)),
                ("dueAt", .string(ISODateTime.format(epochMillis: dueAtMillis))),
                ("leasedUntil", leaseUntilMillis.map { .string(ISODateTime.format(epochMillis: $0)) } ?? .null),
                ("attempts", .int(attempts)),
            ]))
    }
}

public struct OperatorSessionFilter: Sendable, Equatable {
    public var athleteID: String?
    public var status: ExportStatus?
    public var provider: ProviderKind?
    public var limit: Int?

    public init(
        athleteID: String? = nil, status: ExportStatus? = nil, provider: ProviderKind? = nil, limit: Int? = nil
    ) {
        self.athleteID = athleteID
        self.status = status
        self.provider = provider
        self.limit = limit
    }
}

/// What `POST /v1/sessions/{id}/retry` and `gatewayd sessions retry` did to one session.
public enum RetryOutcome: Sendable, Equatable {
    case queued
    case notFound
    /// Only FAILED and NOT_CONNECTED sessions are retried; this is the status it has.
    case notRetryable(String?)
}

/// A local revocation by the operator: the sealed tokens as they were (for a
/// best-effort revocation at the provider afterwards) and where the athlete's
/// sessions stand now.
public struct OperatorRevocation: Sendable {
    public var tokens: SealedTokens?
    /// The provider that is primary now, if another one stays connected.
    public var primaryNow: ProviderKind?
    /// The athlete's sessions by export status after the revocation.
    public var sessionsByStatus: [(status: String, count: Int)]
}

public enum OperatorStoreError: Error, CustomStringConvertible, Equatable {
    case missing(String)
    case notMigrated(path: String, version: Int64, expected: Int)
    case destinationExists(String)

    public var description: String {
        switch self {
        case .missing(let path): return "no database at \(path) (run `gatewayd migrate` or start the daemon)"
        case .notMigrated(let path, let version, let expected):
            return "\(path) has schema version \(version), this gatewayd expects \(expected): run `gatewayd migrate`"
        case .destinationExists(let path): return "\(path) already exists; choose a new file"
        }
    }
}

/// The SQL behind the operator CLI (`gatewayd sessions|connections|backup`).
///
/// The CLI runs beside the daemon on the same file: it opens its own connection
/// with a 5 s busy timeout, reads in autocommit (a WAL snapshot: the daemon's writer
/// is never blocked) and writes in short `BEGIN IMMEDIATE` transactions, which wait
/// for the daemon's group commit and hold the write lock for a few statements only.
/// The daemon's dispatcher reads due jobs from the table every 200 ms, so a job
/// queued here is pushed without a signal or a restart.
public enum OperatorStore {
    /// Opens an existing gateway database for the CLI. Never creates one, and refuses a
    /// schema older or newer than this binary's migrations.
    public static func open(path: String, readOnly: Bool) throws -> Database {
        guard FileManager.default.fileExists(atPath: path) else { throw OperatorStoreError.missing(path) }
        let db = try Database(path: path, readOnly: readOnly)
        if !readOnly {
            // As the daemon's connections: a commit is on disk when it returns, and
            // checkpoints stay the daemon's business.
            try db.execute("PRAGMA synchronous=FULL; PRAGMA wal_autocheckpoint=0;")
        }
        let expected = Schema.migrations.last?.version ?? 0
        let version =
            (try? db.scalarInt("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")).flatMap { $0 } ?? 0
        guard version == Int64(expected) else {
            throw OperatorStoreError.notMigrated(path: path, version: version, expected: expected)
        }
        return db
    }

    /// Runs `body` in one short `BEGIN IMMEDIATE` transaction.
    public static func write<T>(_ db: Database, _ body: () throws -> T) throws -> T {
        try db.transaction(immediate: true, body)
    }

    // MARK: Sessions

    static let sessionSelect = """
        SELECT * FROM (
            SELECT s.id, s.athlete_id, s.revision, s.session_type, s.date, s.start_time, s.deleted, s.export_status,
                COALESCE(
                    (SELECT c.provider FROM connections c WHERE c.athlete_id = s.athlete_id AND c.status = 'CONNECTED'
                        ORDER BY c.is_primary DESC, c.provider LIMIT 1),
                    s.export_provider, s.remote_provider) AS effective_provider,
                s.export_provider, s.exported_at_ms, s.external_workout_id, s.last_export_error, s.attempts,
                s.next_attempt_at_ms, s.remote_provider, s.remote_workout_id, s.remote_schedule_id, s.remote_plan_id,
                s.remote_date, s.created_at_ms, s.updated_at_ms, j.revision AS job_revision, j.due_at_ms,
                j.lease_until_ms, j.attempts AS job_attempts
            FROM sessions s LEFT JOIN jobs j ON j.kind = 'session.push' AND j.subject = s.id
        )
        """

    static func sessionRow(_ s: Statement) -> OperatorSession {
        var job: OperatorJob?
        if !s.isNull(22) {
            job = OperatorJob(
                revision: s.int(22), dueAtMillis: s.int(23), leaseUntilMillis: s.optionalInt(24), attempts: s.int(25))
        }
        return OperatorSession(
            sessionID: s.text(0) ?? "", athleteID: s.text(1) ?? "", revision: s.int(2), sessionType: s.text(3) ?? "",
            date: s.text(4) ?? "", startTime: s.text(5), deleted: s.int(6) != 0, exportStatus: s.text(7),
            provider: s.text(8), exportProvider: s.text(9), exportedAtMillis: s.optionalInt(10),
            externalWorkoutID: s.text(11), lastExportError: s.text(12), attempts: s.int(13),
            nextAttemptAtMillis: s.optionalInt(14), remoteProvider: s.text(15), remoteWorkoutID: s.text(16),
            remoteScheduleID: s.text(17), remotePlanID: s.text(18), remoteDate: s.text(19),
            createdAtMillis: s.int(20), updatedAtMillis: s.int(21), job: job)
    }

    /// Sessions matching `filter`, ordered by id; `more` says whether the limit cut the list.
    public static func sessions(_ db: Database, _ filter: OperatorSessionFilter) throws
        -> (rows: [OperatorSession], more: Bool)
    {
        var rows: [OperatorSession] = []
        let limit = filter.limit.map { Int64($0) + 1 } ?? -1
        try db.query(
            """
            \(sessionSelect)
            WHERE (?1 IS NULL OR athlete_id = ?1) AND (?2 IS NULL OR export_status = ?2)
                AND (?3 IS NULL OR effective_provider = ?3)
            ORDER BY id LIMIT ?4
            """,
            [
                SQLValue(filter.athleteID), SQLValue(filter.status?.rawValue), SQLValue(filter.provider?.rawValue),
                .int(limit),
            ]
        ) { rows.append(sessionRow($0)) }
        let more = filter.limit.map { rows.count > $0 } ?? false
        if more { rows.removeLast() }
        return (rows, more)
    }

    public static func session(_ db: Database, id: String) throws -> OperatorSession? {
        try db.queryFirst("\(sessionSelect) WHERE id = ?1", [.text(id)], sessionRow)
    }

    /// Re-queues a FAILED or NOT_CONNECTED session with a fresh count of attempts: its
    /// push job is due now (unleased), the session is PENDING. The caller runs it in a
    /// write transaction. The REST retry route and the CLI both come here.
    public static func retry(_ db: Database, sessionID: String, now: Int64) throws -> RetryOutcome {
        guard
            let (revision, status) = try db.queryFirst(
                "SELECT revision, export_status FROM sessions WHERE id = ?", [.text(sessionID)],
                { ($0.int(0), $0.text(1)) }
            )
        else { return .notFound }
        guard status == ExportStatus.failed.rawValue || status == ExportStatus.notConnected.rawValue else {
            return .notRetryable(status)
        }
        try db.statement(
            """
            INSERT INTO jobs(kind, subject, revision, due_at_ms, attempts, created_at_ms)
            VALUES('session.push', ?1, ?2, ?3, 0, ?3)
            ON CONFLICT(kind, subject) DO UPDATE SET due_at_ms = ?3, attempts = 0, lease_until_ms = NULL
            """
        ).run([.text(sessionID), .int(revision), .int(now)])
        try db.statement(
            """
            UPDATE sessions SET export_status = 'PENDING', attempts = 0, last_export_error = NULL,
                next_attempt_at_ms = NULL, updated_at_ms = ?2 WHERE id = ?1
            """
        ).run([.text(sessionID), .int(now)])
        return .queued
    }

    /// Ids of the sessions a bulk retry takes: `filter.status` must be FAILED or
    /// NOT_CONNECTED (anything else matches nothing).
    public static func retryCandidates(_ db: Database, _ filter: OperatorSessionFilter) throws -> [String] {
        guard filter.status == .failed || filter.status == .notConnected else { return [] }
        var unlimited = filter
        unlimited.limit = nil
        return try sessions(db, unlimited).rows.map(\.sessionID)
    }

    // MARK: Connections

    /// Connections matching the filters, ordered by athlete and provider.
    public static func connections(
        _ db: Database, athleteID: String?, provider: ProviderKind?, status: ConnectionStatus?
    ) throws -> [ConnectionRecord] {
        var out: [ConnectionRecord] = []
        try db.query(
            """
            SELECT \(ConnectionStore.connectionColumns) FROM connections
            WHERE (?1 IS NULL OR athlete_id = ?1) AND (?2 IS NULL OR provider = ?2) AND (?3 IS NULL OR status = ?3)
            ORDER BY athlete_id, provider
            """, [SQLValue(athleteID), SQLValue(provider?.rawValue), SQLValue(status?.rawValue)]
        ) { if let row = ConnectionStore.connectionRow($0) { out.append(row) } }
        return out
    }

    /// Revokes a connected connection locally, as a disconnect does (tokens deleted,
    /// REVOKED, the athlete's sessions moved to the remaining provider or to
    /// NOT_CONNECTED), and returns the tokens it held. Nil if it was not connected.
    /// The caller runs it in a write transaction.
    public static func revoke(
        _ db: Database, athleteID: String, provider: ProviderKind, reason: String, now: Int64
    ) throws -> OperatorRevocation? {
        guard let before = try ConnectionStore.connection(db, athleteID: athleteID, provider: provider),
            before.status == .connected,
            try ConnectionStore.revoke(db, athleteID: athleteID, provider: provider, reason: reason, now: now)
        else { return nil }
        let primary = try db.queryFirst(
            "SELECT provider FROM connections WHERE athlete_id = ? AND status = 'CONNECTED' AND is_primary = 1",
            [.text(athleteID)]
        ) { $0.text(0).flatMap { ProviderKind(rawValue: $0) } }
        var counts: [(status: String, count: Int)] = []
        try db.query(
            """
            SELECT export_status, COUNT(*) FROM sessions WHERE athlete_id = ? AND export_status IS NOT NULL
            GROUP BY export_status ORDER BY export_status
            """, [.text(athleteID)]
        ) { counts.append(($0.text(0) ?? "", Int($0.int(1)))) }
        return OperatorRevocation(tokens: before.tokens, primaryNow: primary ?? nil, sessionsByStatus: counts)
    }

    // MARK: Backup

    /// An online copy of the database into a new file (`VACUUM INTO`): one consistent
    /// snapshot, read in a single read transaction, so the daemon keeps committing
    /// meanwhile. `db` may be read-only. The destination must not exist.
    public static func backup(_ db: Database, to destination: String) throws {
        guard !FileManager.default.fileExists(atPath: destination) else {
            throw OperatorStoreError.destinationExists(destination)
        }
        try db.statement("VACUUM INTO ?").run([.text(destination)])
    }

    /// `PRAGMA integrity_check` of a database file: `["ok"]` when it is sound.
    public static func integrityCheck(path: String) throws -> [String] {
        let db = try Database(path: path, readOnly: true)
        var lines: [String] = []
        try db.query("PRAGMA integrity_check") { lines.append($0.text(0) ?? "") }
        return lines
    }

    /// Rows in `sessions` of a database file (to report what a backup holds).
    public static func sessionCount(path: String) throws -> Int64 {
        let db = try Database(path: path, readOnly: true)
        return try db.scalarInt("SELECT COUNT(*) FROM sessions") ?? 0
    }
}

extension ConnectionRecord {
    /// What the operator CLI shows: the plan app's view plus the athlete, the last
    /// change, the access token's expiry and the token key id. Never a token.
    public var operatorJSON: JSONValue {
        var fields: [(key: String, value: JSONValue)] = [("athleteId", .string(athleteID))]
        if case .object(let plain) = json { fields += plain.members }
        fields += [
            ("updatedAt", .string(ISODateTime.format(epochMillis: updatedAtMillis))),
            ("hasTokens", .bool(tokens != nil)),
            (
                "accessExpiresAt",
                tokens?.accessExpiresAtMillis.map { .string(ISODateTime.format(epochMillis: $0)) } ?? .null
            ),
            ("tokenKeyId", tokens.map { .string($0.keyID) } ?? .null),
        ]
        return .object(JSONObject(fields))
    }
}

import GatewayCore

/// One accepted webhook on its way to the database.
public struct IngestRecord: Sendable {
    public var webhookID: String
    public var receivedAtMillis: Int64
    public var event: PlanEvent
    public var body: [UInt8]

    public init(webhookID: String, receivedAtMillis: Int64, event: PlanEvent, body: [UInt8]) {
        self.webhookID = webhookID
        self.receivedAtMillis = receivedAtMillis
        self.event = event
        self.body = body
    }
}

public enum IngestOutcome: String, Sendable {
    /// Stored and applied to the session (or the athlete).
    case applied
    /// Stored; the session already had this revision or a newer one, so nothing changed.
    case stale
    /// Stored; an event type the gateway does not act on.
    case ignored
    /// This webhook-id was accepted before: nothing written.
    case duplicate
}

/// The ingest statements, prepared once and run by the writer inside its batch
/// transaction. Holding the statements (rather than looking them up by their SQL
/// text) keeps hashing out of the per-event path.
final class IngestStatements {
    let db: Database
    private let selectSession: Statement
    private let selectDeletedAthlete: Statement
    private let insertEventStatement: Statement
    private let upsertSession: Statement
    private let upsertTombstone: Statement
    private let upsertJobStatement: Statement
    private let deleteAthleteJobs: Statement
    private let deleteAthleteSessions: Statement
    private let insertDeletedAthlete: Statement
    private let selectConnected: Statement

    init(db: Database) throws {
        self.db = db
        selectSession = try db.statement(
            "SELECT revision, session_type, deleted, external_workout_id FROM sessions WHERE id = ?")
        selectDeletedAthlete = try db.statement("SELECT 1 FROM deleted_athletes WHERE athlete_id = ?")
        insertEventStatement = try db.statement(
            """
            INSERT OR IGNORE INTO webhook_events(webhook_id, received_at_ms, event_type, outcome, body)
            VALUES(?, ?, ?, ?, ?)
            """)
        upsertSession = try db.statement(
            """
            INSERT INTO sessions(id, athlete_id, revision, session_type, date, start_time, deleted, event_id,
                export_status, attempts, created_at_ms, updated_at_ms)
            VALUES(?1, ?2, ?3, ?4, ?5, ?6, 0, ?7, ?8, 0, ?9, ?9)
            ON CONFLICT(id) DO UPDATE SET athlete_id = ?2, revision = ?3, session_type = ?4, date = ?5,
                start_time = ?6, deleted = 0, event_id = ?7, export_status = ?8, attempts = 0,
                last_export_error = NULL, next_attempt_at_ms = NULL, updated_at_ms = ?9
            """)
        // A deletion of a session never seen is kept as a tombstone, so that an older
        // create arriving later stays stale.
        upsertTombstone = try db.statement(
            """
            INSERT INTO sessions(id, athlete_id, revision, session_type, date, deleted, event_id,
                export_status, attempts, created_at_ms, updated_at_ms)
            VALUES(?1, ?2, ?3, '', '', 1, ?4, ?5, 0, ?6, ?6)
            ON CONFLICT(id) DO UPDATE SET revision = ?3, deleted = 1, event_id = ?4, export_status = ?5,
                attempts = 0, last_export_error = NULL, next_attempt_at_ms = NULL, updated_at_ms = ?6
            """)
        upsertJobStatement = try db.statement(
            """
            INSERT INTO jobs(kind, subject, revision, due_at_ms, attempts, created_at_ms) VALUES(?1, ?2, ?3, ?4, 0, ?4)
            ON CONFLICT(kind, subject) DO UPDATE SET revision = MAX(revision, ?3), due_at_ms = ?4, attempts = 0
            """)
        deleteAthleteJobs = try db.statement(
            "DELETE FROM jobs WHERE kind = 'session.push' AND subject IN (SELECT id FROM sessions WHERE athlete_id = ?)"
        )
        deleteAthleteSessions = try db.statement("DELETE FROM sessions WHERE athlete_id = ?")
        insertDeletedAthlete = try db.statement(
            "INSERT OR REPLACE INTO deleted_athletes(athlete_id, deleted_at_ms) VALUES(?, ?)")
        selectConnected = try db.statement(
            "SELECT 1 FROM connections WHERE athlete_id = ? AND status = 'CONNECTED' LIMIT 1")
    }

    func apply(_ record: IngestRecord) throws -> IngestOutcome {
        let now = record.receivedAtMillis
        switch record.event {
        case .unknown:
            return try insertEvent(record, outcome: .ignored) ? .ignored : .duplicate
        case .athleteDeleted(let athleteID):
            forgetAthlete()
            guard try insertEvent(record, outcome: .applied) else { return .duplicate }
            // Sessions and their pending pushes go now; the job revokes the athlete's
            // provider connections. The tombstone keeps late session events out.
            try deleteAthleteJobs.run([.text(athleteID)])
            try deleteAthleteSessions.run([.text(athleteID)])
            try insertDeletedAthlete.run([.text(athleteID), .int(now)])
            try upsertJob(kind: "athlete.delete", subject: athleteID, revision: 0, now: now)
            return .applied
        case .sessionUpsert(let session):
            if try athleteDeleted(session.athleteID) {
                return try insertEvent(record, outcome: .stale) ? .stale : .duplicate
            }
            let decision = SessionTransition.decide(
                stored: try storedState(session.id), incomingRevision: session.revision,
                incomingIsEndurance: session.isEndurance, isDelete: false,
                hasConnection: try connected(session.athleteID))
            guard case .apply(let status, let needsPush) = decision else {
                return try insertEvent(record, outcome: .stale) ? .stale : .duplicate
            }
            guard try insertEvent(record, outcome: .applied) else { return .duplicate }
            try upsertSession.run([
                .text(session.id), .text(session.athleteID), .int(session.revision), .text(session.sessionType),
                .text(session.date), SQLValue(session.startTime), .text(record.webhookID),
                SQLValue(status?.rawValue), .int(now),
            ])
            if needsPush {
                try upsertJob(kind: "session.push", subject: session.id, revision: session.revision, now: now)
            }
            return .applied
        case .sessionDeleted(let ref):
            if try athleteDeleted(ref.athleteID) {
                return try insertEvent(record, outcome: .stale) ? .stale : .duplicate
            }
            let stored = try storedState(ref.id)
            let decision = SessionTransition.decide(
                stored: stored, incomingRevision: ref.revision, incomingIsEndurance: stored?.isEndurance ?? false,
                isDelete: true, hasConnection: try connected(ref.athleteID))
            guard case .apply(let status, let needsPush) = decision else {
                return try insertEvent(record, outcome: .stale) ? .stale : .duplicate
            }
            guard try insertEvent(record, outcome: .applied) else { return .duplicate }
            try upsertTombstone.run([
                .text(ref.id), .text(ref.athleteID), .int(ref.revision), .text(record.webhookID),
                SQLValue(status?.rawValue), .int(now),
            ])
            if needsPush { try upsertJob(kind: "session.push", subject: ref.id, revision: ref.revision, now: now) }
            return .applied
        }
    }

    /// Inserts the event row; false if the webhook-id is already stored (a duplicate).
    private func insertEvent(_ record: IngestRecord, outcome: IngestOutcome) throws -> Bool {
        let statement = insertEventStatement
        defer { statement.reset() }
        try statement.bind(.text(record.webhookID), at: 1)
        try statement.bind(.int(record.receivedAtMillis), at: 2)
        try statement.bind(.text(record.event.typeName), at: 3)
        try statement.bind(.text(outcome.rawValue), at: 4)
        try record.body.withUnsafeBytes { raw in try statement.bindBlob(raw, at: 5) }
        while try statement.step() {}
        return db.changes == 1
    }

    private func storedState(_ id: String) throws -> StoredSessionState? {
        let statement = selectSession
        defer { statement.reset() }
        try statement.bind(.text(id), at: 1)
        guard try statement.step() else { return nil }
        return StoredSessionState(
            revision: statement.int(0), isEndurance: statement.text(1) == "ENDURANCE", deleted: statement.int(2) != 0,
            hasExternalWorkout: !statement.isNull(3))
    }

    /// The last athlete looked up in this transaction and what was found: a burst of
    /// webhooks is usually one athlete's plan. Valid only inside one transaction, and
    /// only until something else is written in it (``forgetAthlete()``).
    private var athleteMemo: (id: String, deleted: Bool?, connected: Bool?)?

    /// Called at the start of every transaction and after any write other than an
    /// ingest of a session event (connections, athlete deletions, ...).
    func forgetAthlete() { athleteMemo = nil }

    private func connected(_ athleteID: String) throws -> Bool {
        if let memo = athleteMemo, memo.id == athleteID, let known = memo.connected { return known }
        let value = try lookUpConnected(athleteID)
        if athleteMemo?.id == athleteID {
            athleteMemo?.connected = value
        } else {
            athleteMemo = (athleteID, nil, value)
        }
        return value
    }

    private func athleteDeleted(_ athleteID: String) throws -> Bool {
        if let memo = athleteMemo, memo.id == athleteID, let known = memo.deleted { return known }
        let value = try lookUpAthleteDeleted(athleteID)
        if athleteMemo?.id == athleteID { athleteMemo?.deleted = value } else { athleteMemo = (athleteID, value, nil) }
        return value
    }

    private func lookUpConnected(_ athleteID: String) throws -> Bool {
        let statement = selectConnected
        defer { statement.reset() }
        try statement.bind(.text(athleteID), at: 1)
        return try statement.step()
    }

    private func lookUpAthleteDeleted(_ athleteID: String) throws -> Bool {
        let statement = selectDeletedAthlete
        defer { statement.reset() }
        try statement.bind(.text(athleteID), at: 1)
        return try statement.step()
    }

    private func upsertJob(kind: String, subject: String, revision: Int64, now: Int64) throws {
        try upsertJobStatement.run([.text(kind), .text(subject), .int(revision), .int(now)])
    }
}

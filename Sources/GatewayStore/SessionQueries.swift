import GatewayCore

/// A session's export status as the plan app reads it (SPEC §6).
public struct SessionStatusRow: Sendable, Equatable {
    public var sessionID: String
    public var athleteID: String
    public var revision: Int64
    public var deleted: Bool
    public var exportStatus: String?
    public var exportProvider: String?
    public var exportedAtMillis: Int64?
    public var externalWorkoutID: String?
    public var lastExportError: String?
    public var attempts: Int64
    public var nextAttemptAtMillis: Int64?

    public var json: JSONValue {
        .object(
            JSONObject([
                ("sessionId", .string(sessionID)),
                ("athleteId", .string(athleteID)),
                ("revision", .int(revision)),
                ("deleted", .bool(deleted)),
                ("exportStatus", exportStatus.map { .string($0) } ?? .null),
                ("exportProvider", exportProvider.map { .string($0) } ?? .null),
                ("exportedAt", exportedAtMillis.map { .string(ISODateTime.format(epochMillis: $0)) } ?? .null),
                ("externalWorkoutId", externalWorkoutID.map { .string($0) } ?? .null),
                ("lastExportError", lastExportError.map { .string($0) } ?? .null),
                ("attempts", .int(attempts)),
                ("nextAttemptAt", nextAttemptAtMillis.map { .string(ISODateTime.format(epochMillis: $0)) } ?? .null),
            ]))
    }
}

public struct SessionFilter: Sendable, Equatable {
    public var athleteID: String?
    public var status: ExportStatus?
    /// Keyset cursor: only sessions whose id sorts after this one.
    public var afterID: String?
    public var limit: Int

    public init(athleteID: String? = nil, status: ExportStatus? = nil, afterID: String? = nil, limit: Int = 50) {
        self.athleteID = athleteID
        self.status = status
        self.afterID = afterID
        self.limit = limit
    }
}

/// Read-only queries on a reader connection (WAL: they never wait for the writer).
public struct SessionQueries {
    let db: Database

    public init(db: Database) { self.db = db }

    static let columns = """
        id, athlete_id, revision, deleted, export_status, export_provider, exported_at_ms, external_workout_id,
        last_export_error, attempts, next_attempt_at_ms
        """

    /// Whether a webhook-id was accepted before (the duplicate check for bodies that
    /// do not parse: a retried id is a duplicate whatever its body).
    public func webhookSeen(_ webhookID: String) throws -> Bool {
        try db.scalarInt("SELECT 1 FROM webhook_events WHERE webhook_id = ?", [.text(webhookID)]) != nil
    }

    /// The session's latest accepted event body and whether it is deleted.
    public func latestEvent(sessionID: String) throws -> (deleted: Bool, sessionType: String, body: [UInt8])? {
        try db.queryFirst(
            """
            SELECT s.deleted, s.session_type, e.body FROM sessions s JOIN webhook_events e ON e.webhook_id = s.event_id
            WHERE s.id = ?
            """, [.text(sessionID)]
        ) { ($0.int(0) != 0, $0.text(1) ?? "", $0.blob(2)) }
    }

    public func status(id: String) throws -> SessionStatusRow? {
        try db.queryFirst("SELECT \(Self.columns) FROM sessions WHERE id = ?", [.text(id)], Self.row)
    }

    /// One page, ordered by id; `hasMore` says whether another page follows.
    public func list(_ filter: SessionFilter) throws -> (rows: [SessionStatusRow], hasMore: Bool) {
        var rows: [SessionStatusRow] = []
        try db.query(
            """
            SELECT \(Self.columns) FROM sessions
            WHERE (?1 IS NULL OR athlete_id = ?1) AND (?2 IS NULL OR export_status = ?2) AND (?3 IS NULL OR id > ?3)
            ORDER BY id LIMIT ?4
            """,
            [
                SQLValue(filter.athleteID), SQLValue(filter.status?.rawValue), SQLValue(filter.afterID),
                .int(Int64(filter.limit + 1)),
            ]
        ) { rows.append(Self.row($0)) }
        let hasMore = rows.count > filter.limit
        if hasMore { rows.removeLast() }
        return (rows, hasMore)
    }

    static func row(_ s: Statement) -> SessionStatusRow {
        SessionStatusRow(
            sessionID: s.text(0) ?? "", athleteID: s.text(1) ?? "", revision: s.int(2), deleted: s.int(3) != 0,
            exportStatus: s.text(4), exportProvider: s.text(5), exportedAtMillis: s.optionalInt(6),
            externalWorkoutID: s.text(7), lastExportError: s.text(8), attempts: s.int(9),
            nextAttemptAtMillis: s.optionalInt(10))
    }
}

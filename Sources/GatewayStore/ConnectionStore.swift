import GatewayCore

/// An OAuth authorization in progress (SPEC §6 authorize).
public struct OAuthStateRecord: Sendable, Equatable {
    public var state: String
    public var athleteID: String
    public var provider: ProviderKind
    public var codeVerifierSealed: String
    public var returnTo: String
    public var createdAtMillis: Int64
    public var expiresAtMillis: Int64
    public var usedAtMillis: Int64?

    public init(
        state: String, athleteID: String, provider: ProviderKind, codeVerifierSealed: String, returnTo: String,
        createdAtMillis: Int64, expiresAtMillis: Int64, usedAtMillis: Int64? = nil
    ) {
        self.state = state
        self.athleteID = athleteID
        self.provider = provider
        self.codeVerifierSealed = codeVerifierSealed
        self.returnTo = returnTo
        self.createdAtMillis = createdAtMillis
        self.expiresAtMillis = expiresAtMillis
        self.usedAtMillis = usedAtMillis
    }
}

/// Sealed tokens as stored (TokenBox output, never plaintext).
public struct SealedTokens: Sendable, Equatable {
    public var access: String
    public var refresh: String?
    public var accessExpiresAtMillis: Int64?
    public var keyID: String

    public init(access: String, refresh: String?, accessExpiresAtMillis: Int64?, keyID: String) {
        self.access = access
        self.refresh = refresh
        self.accessExpiresAtMillis = accessExpiresAtMillis
        self.keyID = keyID
    }
}

public struct ConnectionRecord: Sendable, Equatable {
    public var athleteID: String
    public var provider: ProviderKind
    public var providerUserID: String
    public var status: ConnectionStatus
    public var isPrimary: Bool
    public var scopes: String?
    public var tokens: SealedTokens?
    public var connectedAtMillis: Int64
    public var updatedAtMillis: Int64
    public var revokedAtMillis: Int64?
    public var revokedReason: String?

    /// What the plan app sees (SPEC §6): never a token.
    public var json: JSONValue {
        .object(
            JSONObject([
                ("provider", .string(provider.rawValue)),
                ("status", .string(status.rawValue)),
                ("primary", .bool(isPrimary)),
                ("connectedAt", .string(ISODateTime.format(epochMillis: connectedAtMillis))),
                ("scopes", .array((scopes ?? "").split(separator: " ").map { .string(String($0)) })),
                ("providerUserId", .string(providerUserID)),
                ("revokedAt", revokedAtMillis.map { .string(ISODateTime.format(epochMillis: $0)) } ?? .null),
                ("revokedReason", revokedReason.map { .string($0) } ?? .null),
            ]))
    }
}

/// Connection and OAuth-state statements. Writes run inside a writer transaction
/// (`StoreWriter.perform`); reads on any connection.
public enum ConnectionStore {
    public static let stateLifetimeMillis: Int64 = 10 * 60 * 1000

    public static func insertState(_ db: Database, _ record: OAuthStateRecord) throws {
        try db.statement(
            """
            INSERT INTO oauth_states(state, athlete_id, provider, code_verifier_sealed, return_to, created_at_ms,
                expires_at_ms)
            VALUES(?, ?, ?, ?, ?, ?, ?)
            """
        ).run([
            .text(record.state), .text(record.athleteID), .text(record.provider.rawValue),
            .text(record.codeVerifierSealed), .text(record.returnTo), .int(record.createdAtMillis),
            .int(record.expiresAtMillis),
        ])
        // Old states are of no use to anyone: keep the table small.
        try db.statement("DELETE FROM oauth_states WHERE expires_at_ms < ?").run([
            .int(record.createdAtMillis - stateLifetimeMillis)
        ])
    }

    /// Marks a state used and returns it as it was before (so the caller can tell a
    /// reused or expired one from a fresh one); nil if the state is unknown.
    public static func consumeState(_ db: Database, state: String, now: Int64) throws -> OAuthStateRecord? {
        let record = try db.queryFirst(
            """
            SELECT state, athlete_id, provider, code_verifier_sealed, return_to, created_at_ms, expires_at_ms,
                used_at_ms FROM oauth_states WHERE state = ?
            """, [.text(state)]
        ) { s -> OAuthStateRecord? in
            guard let provider = ProviderKind(rawValue: s.text(2) ?? "") else { return nil }
            return OAuthStateRecord(
                state: s.text(0) ?? "", athleteID: s.text(1) ?? "", provider: provider,
                codeVerifierSealed: s.text(3) ?? "", returnTo: s.text(4) ?? "", createdAtMillis: s.int(5),
                expiresAtMillis: s.int(6), usedAtMillis: s.optionalInt(7))
        }
        guard let record = record ?? nil else { return nil }
        if record.usedAtMillis == nil {
            try db.statement("UPDATE oauth_states SET used_at_ms = ? WHERE state = ?").run([.int(now), .text(state)])
        }
        return record
    }

    public static let connectionColumns = """
        athlete_id, provider, provider_user_id, status, is_primary, scopes, access_token_sealed,
        refresh_token_sealed, access_expires_at_ms, token_key_id, connected_at_ms, updated_at_ms, revoked_at_ms,
        revoked_reason
        """

    public static func connectionRow(_ s: Statement) -> ConnectionRecord? {
        guard let provider = ProviderKind(rawValue: s.text(1) ?? ""),
            let status = ConnectionStatus(rawValue: s.text(3) ?? "")
        else { return nil }
        var tokens: SealedTokens?
        if let access = s.text(6) {
            tokens = SealedTokens(
                access: access, refresh: s.text(7), accessExpiresAtMillis: s.optionalInt(8), keyID: s.text(9) ?? "")
        }
        return ConnectionRecord(
            athleteID: s.text(0) ?? "", provider: provider, providerUserID: s.text(2) ?? "", status: status,
            isPrimary: s.int(4) != 0, scopes: s.text(5), tokens: tokens, connectedAtMillis: s.int(10),
            updatedAtMillis: s.int(11), revokedAtMillis: s.optionalInt(12), revokedReason: s.text(13))
    }

    public static func connections(_ db: Database, athleteID: String) throws -> [ConnectionRecord] {
        var out: [ConnectionRecord] = []
        try db.query(
            "SELECT \(connectionColumns) FROM connections WHERE athlete_id = ? ORDER BY provider", [.text(athleteID)]
        ) { if let row = connectionRow($0) { out.append(row) } }
        return out
    }

    public static func connection(_ db: Database, athleteID: String, provider: ProviderKind) throws
        -> ConnectionRecord?
    {
        try db.queryFirst(
            "SELECT \(connectionColumns) FROM connections WHERE athlete_id = ? AND provider = ?",
            [.text(athleteID), .text(provider.rawValue)], connectionRow) ?? nil
    }

    /// Connected athletes of one provider user (Garmin notifications name the user).
    public static func connections(_ db: Database, provider: ProviderKind, providerUserID: String) throws
        -> [ConnectionRecord]
    {
        var out: [ConnectionRecord] = []
        try db.query(
            "SELECT \(connectionColumns) FROM connections WHERE provider = ? AND provider_user_id = ?",
            [.text(provider.rawValue), .text(providerUserID)]
        ) { if let row = connectionRow($0) { out.append(row) } }
        return out
    }

    /// Stores a new or renewed connection. The athlete's first connected provider
    /// becomes primary. Sessions waiting for a connection (NOT_CONNECTED) are queued.
    /// Returns whether this connection is primary and how many sessions were queued.
    @discardableResult
    public static func connect(
        _ db: Database, athleteID: String, provider: ProviderKind, providerUserID: String, scopes: String?,
        tokens: SealedTokens, now: Int64
    ) throws -> (isPrimary: Bool, queued: Int) {
        let hasPrimary =
            try db.scalarInt(
                """
                SELECT 1 FROM connections WHERE athlete_id = ? AND provider <> ? AND status = 'CONNECTED'
                    AND is_primary = 1
                """, [.text(athleteID), .text(provider.rawValue)]) != nil
        try db.statement(
            """
            INSERT INTO connections(athlete_id, provider, provider_user_id, status, is_primary, scopes,
                access_token_sealed, refresh_token_sealed, access_expires_at_ms, token_key_id, connected_at_ms,
                updated_at_ms)
            VALUES(?1, ?2, ?3, 'CONNECTED', ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)
            ON CONFLICT(athlete_id, provider) DO UPDATE SET provider_user_id = ?3, status = 'CONNECTED',
                is_primary = ?4, scopes = ?5, access_token_sealed = ?6, refresh_token_sealed = ?7,
                access_expires_at_ms = ?8, token_key_id = ?9, connected_at_ms = ?10, updated_at_ms = ?10,
                revoked_at_ms = NULL, revoked_reason = NULL
            """
        ).run([
            .text(athleteID), .text(provider.rawValue), .text(providerUserID), .int(hasPrimary ? 0 : 1),
            SQLValue(scopes), .text(tokens.access), SQLValue(tokens.refresh), SQLValue(tokens.accessExpiresAtMillis),
            .text(tokens.keyID), .int(now),
        ])
        let queued = try queueSessions(db, athleteID: athleteID, from: "NOT_CONNECTED", now: now)
        return (!hasPrimary, queued)
    }

    /// Moves the athlete's sessions in `status` to PENDING with a due push job.
    static func queueSessions(_ db: Database, athleteID: String, from status: String, now: Int64) throws -> Int {
        try db.statement(
            """
            INSERT INTO jobs(kind, subject, revision, due_at_ms, attempts, created_at_ms)
            SELECT 'session.push', id, revision, ?3, 0, ?3 FROM sessions
            WHERE athlete_id = ?1 AND export_status = ?2
            ON CONFLICT(kind, subject) DO UPDATE SET revision = MAX(revision, excluded.revision), due_at_ms = ?3,
                attempts = 0
            """
        ).run([.text(athleteID), .text(status), .int(now)])
        return try db.statement(
            """
            UPDATE sessions SET export_status = 'PENDING', attempts = 0, next_attempt_at_ms = NULL,
                updated_at_ms = ?3
            WHERE athlete_id = ?1 AND export_status = ?2
            """
        ).run([.text(athleteID), .text(status), .int(now)])
    }

    /// Replaces the tokens after a refresh. Returns false if the connection is gone or
    /// revoked meanwhile (the new tokens are then not stored).
    @discardableResult
    public static func updateTokens(
        _ db: Database, athleteID: String, provider: ProviderKind, tokens: SealedTokens, now: Int64
    ) throws -> Bool {
        try db.statement(
            """
            UPDATE connections SET access_token_sealed = ?3, refresh_token_sealed = COALESCE(?4, refresh_token_sealed),
                access_expires_at_ms = ?5, token_key_id = ?6, updated_at_ms = ?7
            WHERE athlete_id = ?1 AND provider = ?2 AND status = 'CONNECTED'
            """
        ).run([
            .text(athleteID), .text(provider.rawValue), .text(tokens.access), SQLValue(tokens.refresh),
            SQLValue(tokens.accessExpiresAtMillis), .text(tokens.keyID), .int(now),
        ]) == 1
    }

    /// Revokes a connection locally: tokens deleted, status REVOKED. If another
    /// provider stays connected it becomes primary and the sessions exported through
    /// the revoked one are queued for it; otherwise the athlete's sessions become
    /// NOT_CONNECTED. Returns false if there was no connected connection.
    @discardableResult
    public static func revoke(
        _ db: Database, athleteID: String, provider: ProviderKind, reason: String, now: Int64
    ) throws -> Bool {
        let changed = try db.statement(
            """
            UPDATE connections SET status = 'REVOKED', is_primary = 0, access_token_sealed = NULL,
                refresh_token_sealed = NULL, access_expires_at_ms = NULL, revoked_at_ms = ?3, revoked_reason = ?4,
                updated_at_ms = ?3
            WHERE athlete_id = ?1 AND provider = ?2 AND status = 'CONNECTED'
            """
        ).run([.text(athleteID), .text(provider.rawValue), .int(now), .text(reason)])
        guard changed == 1 else { return false }
        let remaining = try db.queryFirst(
            "SELECT provider FROM connections WHERE athlete_id = ? AND status = 'CONNECTED' ORDER BY provider LIMIT 1",
            [.text(athleteID)]
        ) { $0.text(0) }
        if let remaining = remaining ?? nil {
            try db.statement(
                """
                UPDATE connections SET is_primary = 1 WHERE athlete_id = ? AND provider = ?
                    AND NOT EXISTS (SELECT 1 FROM connections WHERE athlete_id = ? AND is_primary = 1)
                """
            ).run([.text(athleteID), .text(remaining), .text(athleteID)])
            try db.statement(
                """
                INSERT INTO jobs(kind, subject, revision, due_at_ms, attempts, created_at_ms)
                SELECT 'session.push', id, revision, ?3, 0, ?3 FROM sessions
                WHERE athlete_id = ?1 AND export_provider = ?2 AND export_status IS NOT NULL
                ON CONFLICT(kind, subject) DO UPDATE SET due_at_ms = ?3, attempts = 0
                """
            ).run([.text(athleteID), .text(provider.rawValue), .int(now)])
            try db.statement(
                """
                UPDATE sessions SET export_status = 'PENDING', attempts = 0, updated_at_ms = ?3
                WHERE athlete_id = ?1 AND export_provider = ?2 AND export_status IS NOT NULL
                """
            ).run([.text(athleteID), .text(provider.rawValue), .int(now)])
        } else {
            try db.statement(
                """
                UPDATE sessions SET export_status = 'NOT_CONNECTED', attempts = 0, next_attempt_at_ms = NULL,
                    updated_at_ms = ?2
                WHERE athlete_id = ?1 AND export_status IS NOT NULL AND export_status <> 'NOT_CONNECTED'
                """
            ).run([.text(athleteID), .int(now)])
        }
        return true
    }

    /// Makes a connected provider the athlete's primary. False if it is not connected.
    /// When the primary changes, the athlete's future sessions are queued: the push
    /// moves each one (removed at the old provider, created at the new one).
    public static func setPrimary(_ db: Database, athleteID: String, provider: ProviderKind, now: Int64) throws
        -> Bool
    {
        guard
            let wasPrimary = try db.queryFirst(
                "SELECT is_primary FROM connections WHERE athlete_id = ? AND provider = ? AND status = 'CONNECTED'",
                [.text(athleteID), .text(provider.rawValue)], { $0.int(0) != 0 })
        else { return false }
        try db.statement(
            "UPDATE connections SET is_primary = (provider = ?2), updated_at_ms = ?3 WHERE athlete_id = ?1"
        ).run([.text(athleteID), .text(provider.rawValue), .int(now)])
        if !wasPrimary {
            let today = String(ISODateTime.format(epochMillis: now).prefix(10))
            let future = """
                athlete_id = ?1 AND deleted = 0 AND session_type = 'ENDURANCE' AND date >= ?2
                    AND export_status IS NOT NULL
                """
            try db.statement(
                """
                INSERT INTO jobs(kind, subject, revision, due_at_ms, attempts, created_at_ms)
                SELECT 'session.push', id, revision, ?3, 0, ?3 FROM sessions WHERE \(future)
                ON CONFLICT(kind, subject) DO UPDATE SET due_at_ms = ?3, attempts = 0
                """
            ).run([.text(athleteID), .text(today), .int(now)])
            try db.statement(
                "UPDATE sessions SET export_status = 'PENDING', attempts = 0, updated_at_ms = ?3 WHERE \(future)"
            ).run([.text(athleteID), .text(today), .int(now)])
        }
        return true
    }
}

/// Numbered migrations, recorded in `schema_migrations`; each runs once, in order,
/// inside one transaction with its record.
public enum Schema {
    public static let migrations: [(version: Int, name: String, sql: String)] = [
        (
            1, "ingest",
            """
            -- A rowid table: bodies are appended in arrival order (one page filled after
            -- another), and only the small id index takes a random page per event.
            CREATE TABLE webhook_events(
                seq INTEGER PRIMARY KEY,
                webhook_id TEXT NOT NULL UNIQUE,
                received_at_ms INTEGER NOT NULL,
                event_type TEXT NOT NULL,
                outcome TEXT NOT NULL,          -- applied | stale | ignored
                body BLOB NOT NULL
            );
            CREATE TABLE sessions(
                id TEXT PRIMARY KEY,
                athlete_id TEXT NOT NULL,
                revision INTEGER NOT NULL,
                session_type TEXT NOT NULL,
                date TEXT NOT NULL,             -- YYYY-MM-DD ('' for a deletion of an unknown session)
                start_time TEXT,
                deleted INTEGER NOT NULL DEFAULT 0,
                event_id TEXT NOT NULL,         -- webhook_events row holding the latest body
                export_status TEXT,             -- NOT_CONNECTED | PENDING | SENT | FAILED | NULL
                export_provider TEXT,
                exported_at_ms INTEGER,
                external_workout_id TEXT,
                last_export_error TEXT,
                attempts INTEGER NOT NULL DEFAULT 0,
                next_attempt_at_ms INTEGER,
                created_at_ms INTEGER NOT NULL,
                updated_at_ms INTEGER NOT NULL
            ) WITHOUT ROWID;
            -- Listing by status scans in id order; an index on status would cost every
            -- ingest a random page write for a rare query.
            CREATE INDEX sessions_athlete ON sessions(athlete_id, id);
            -- The outbox: one row per subject, the newest revision wins.
            CREATE TABLE jobs(
                kind TEXT NOT NULL,             -- session.push | athlete.delete
                subject TEXT NOT NULL,          -- session id | athlete id
                revision INTEGER NOT NULL DEFAULT 0,
                due_at_ms INTEGER NOT NULL,
                lease_until_ms INTEGER,
                attempts INTEGER NOT NULL DEFAULT 0,
                created_at_ms INTEGER NOT NULL,
                PRIMARY KEY(kind, subject)
            ) WITHOUT ROWID;
            CREATE INDEX jobs_due ON jobs(due_at_ms);
            CREATE TABLE deleted_athletes(
                athlete_id TEXT PRIMARY KEY,
                deleted_at_ms INTEGER NOT NULL
            ) WITHOUT ROWID;
            CREATE TABLE probes(id INTEGER PRIMARY KEY CHECK (id = 1), at_ms INTEGER NOT NULL);
            """
        ),
        (
            2, "connections",
            """
            -- OAuth authorization in progress: single use, 10 minutes, bound to athlete,
            -- provider, PKCE verifier (sealed) and the plan app's returnTo.
            CREATE TABLE oauth_states(
                state TEXT PRIMARY KEY,
                athlete_id TEXT NOT NULL,
                provider TEXT NOT NULL,
                code_verifier_sealed TEXT NOT NULL,
                return_to TEXT NOT NULL,
                created_at_ms INTEGER NOT NULL,
                expires_at_ms INTEGER NOT NULL,
                used_at_ms INTEGER
            ) WITHOUT ROWID;
            CREATE TABLE connections(
                athlete_id TEXT NOT NULL,
                provider TEXT NOT NULL,                 -- GARMIN | WAHOO
                provider_user_id TEXT NOT NULL,
                status TEXT NOT NULL,                   -- CONNECTED | REVOKED
                is_primary INTEGER NOT NULL DEFAULT 0,
                scopes TEXT,
                access_token_sealed TEXT,               -- AES-256-GCM (TokenBox), NULL once revoked
                refresh_token_sealed TEXT,
                access_expires_at_ms INTEGER,
                token_key_id TEXT,
                connected_at_ms INTEGER NOT NULL,
                updated_at_ms INTEGER NOT NULL,
                revoked_at_ms INTEGER,
                revoked_reason TEXT,
                PRIMARY KEY(athlete_id, provider)
            ) WITHOUT ROWID;
            CREATE INDEX connections_provider_user ON connections(provider, provider_user_id);
            """
        ),
        (
            3, "push",
            """
            -- What the gateway created at the provider, checkpointed after every call.
            ALTER TABLE sessions ADD COLUMN remote_workout_id TEXT;
            ALTER TABLE sessions ADD COLUMN remote_schedule_id TEXT;
            ALTER TABLE sessions ADD COLUMN remote_plan_id TEXT;
            ALTER TABLE sessions ADD COLUMN remote_date TEXT;
            ALTER TABLE sessions ADD COLUMN remote_provider TEXT;
            -- Provider calls of the last minute: the rate limit holds across restarts.
            CREATE TABLE provider_calls(provider TEXT NOT NULL, at_ms INTEGER NOT NULL);
            CREATE INDEX provider_calls_at ON provider_calls(provider, at_ms);
            -- Status changes to send to plan_app.callback_url (an outbox too).
            CREATE TABLE status_callbacks(
                id INTEGER PRIMARY KEY,
                session_id TEXT NOT NULL,
                body BLOB NOT NULL,
                due_at_ms INTEGER NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0,
                created_at_ms INTEGER NOT NULL
            );
            CREATE INDEX status_callbacks_due ON status_callbacks(due_at_ms);
            """
        ),
    ]

    /// Brings the database to the latest version; returns the versions applied.
    @discardableResult
    public static func migrate(_ db: Database, now: Int64) throws -> [Int] {
        try db.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at_ms INTEGER NOT NULL)"
        )
        let current = try db.scalarInt("SELECT COALESCE(MAX(version), 0) FROM schema_migrations") ?? 0
        var applied: [Int] = []
        for migration in migrations where migration.version > current {
            try db.transaction {
                try db.execute(migration.sql)
                try db.statement("INSERT INTO schema_migrations(version, name, applied_at_ms) VALUES(?, ?, ?)")
                    .run([.int(Int64(migration.version)), .text(migration.name), .int(now)])
            }
            applied.append(migration.version)
        }
        return applied
    }
}

extension Database {
    /// Opens the database the way every gateway connection uses it: WAL, FULL sync
    /// (a 2xx means the fsync happened), no automatic checkpoints in the commit path.
    public static func openForWriting(path: String, coalescingWrites: Bool = false) throws -> Database {
        let db = try Database(path: path, coalescingWrites: coalescingWrites)
        // 1 KiB pages: most rows are small and keyed by random ids, so each event
        // dirties a few random B-tree pages; smaller pages mean fewer WAL bytes per
        // event (measured: 11.5 KiB vs 25.7 KiB at 4 KiB pages). Only takes effect
        // when the file is created.
        try db.execute(
            """
            PRAGMA page_size=1024;
            PRAGMA journal_mode=WAL;
            PRAGMA synchronous=FULL;
            PRAGMA wal_autocheckpoint=0;
            PRAGMA journal_size_limit=67108864;
            PRAGMA foreign_keys=ON;
            """)
        return db
    }

    public static func openForReading(path: String) throws -> Database {
        let db = try Database(path: path)
        try db.execute("PRAGMA query_only=ON;")
        return db
    }
}

import Foundation
import GatewayCore
import Testing

@testable import GatewayStore

/// A migrated database in its own temporary directory, removed afterwards.
private final class OperatorFixture {
    let directory: String
    var path: String { directory + "/gw.sqlite" }
    let db: Database

    init() throws {
        directory = NSTemporaryDirectory() + "gw-operator-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let setup = try Database.openForWriting(path: directory + "/gw.sqlite")
        try Schema.migrate(setup, now: 1)
        db = try OperatorStore.open(path: directory + "/gw.sqlite", readOnly: false)
    }

    deinit { try? FileManager.default.removeItem(atPath: directory) }

    func session(
        _ id: String, athlete: String, status: String?, exportProvider: String? = nil, attempts: Int64 = 1
    ) throws {
        try db.statement(
            """
            INSERT INTO sessions(id, athlete_id, revision, session_type, date, event_id, export_status, export_provider,
                last_export_error, attempts, created_at_ms, updated_at_ms)
            VALUES(?1, ?2, 3, 'ENDURANCE', '2030-01-01', 'evt', ?3, ?4, 'boom', ?5, 10, 10)
            """
        ).run([.text(id), .text(athlete), SQLValue(status), SQLValue(exportProvider), .int(attempts)])
    }

    func connect(_ athlete: String, _ provider: ProviderKind) throws {
        try ConnectionStore.connect(
            db, athleteID: athlete, provider: provider, providerUserID: "u-\(athlete)", scopes: nil,
            tokens: SealedTokens(access: "sealed-a", refresh: "sealed-r", accessExpiresAtMillis: 99, keyID: "k1"),
            now: 5)
    }

    func status(_ id: String) throws -> String? {
        try db.queryFirst("SELECT export_status FROM sessions WHERE id = ?", [.text(id)]) { $0.text(0) } ?? nil
    }
}

@Test func openRefusesAMissingOrUnmigratedFile() throws {
    let fixture = try OperatorFixture()
    let missing = fixture.directory + "/none.sqlite"
    #expect(throws: OperatorStoreError.missing(missing)) { try OperatorStore.open(path: missing, readOnly: true) }
    #expect(!FileManager.default.fileExists(atPath: missing))
    let empty = fixture.directory + "/empty.sqlite"
    try Database(path: empty).execute("CREATE TABLE t(x)")
    #expect(throws: OperatorStoreError.notMigrated(path: empty, version: 0, expected: Schema.migrations.last!.version))
    {
        try OperatorStore.open(path: empty, readOnly: true)
    }
}

@Test func retryRequeuesOnlyFailedAndNotConnected() throws {
    let f = try OperatorFixture()
    try f.session("failed", athlete: "a", status: "FAILED", attempts: 4)
    try f.session("waiting", athlete: "a", status: "NOT_CONNECTED")
    try f.session("sent", athlete: "a", status: "SENT")
    // A stale leased job for the failed session: the retry makes it due now and unleased.
    try f.db.execute(
        """
        INSERT INTO jobs(kind, subject, revision, due_at_ms, lease_until_ms, attempts, created_at_ms)
        VALUES('session.push', 'failed', 3, 9999999, 8888888, 2, 1)
        """)
    let outcomes = try OperatorStore.write(f.db) {
        try ["failed", "waiting", "sent", "nope"].map { try OperatorStore.retry(f.db, sessionID: $0, now: 500) }
    }
    #expect(outcomes == [.queued, .queued, .notRetryable("SENT"), .notFound])
    let failed = try #require(try OperatorStore.session(f.db, id: "failed"))
    #expect(failed.exportStatus == "PENDING" && failed.attempts == 0 && failed.lastExportError == nil)
    #expect(failed.updatedAtMillis == 500)
    #expect(failed.job == OperatorJob(revision: 3, dueAtMillis: 500, leaseUntilMillis: nil, attempts: 0))
    #expect(try OperatorStore.session(f.db, id: "waiting")?.job?.dueAtMillis == 500)
    #expect(try OperatorStore.session(f.db, id: "sent")?.job == nil)
    #expect(try f.status("sent") == "SENT")
}

@Test func providerFilterFollowsThePrimaryConnectionThenTheLastExport() throws {
    let f = try OperatorFixture()
    try f.connect("garmin-athlete", .garmin)
    try f.connect("both", .garmin)
    try f.connect("both", .wahoo)
    try f.session("s1", athlete: "garmin-athlete", status: "FAILED")
    try f.session("s2", athlete: "both", status: "FAILED", exportProvider: "WAHOO")
    try f.session("s3", athlete: "gone", status: "FAILED", exportProvider: "WAHOO")
    try f.session("s4", athlete: "gone", status: "SENT", exportProvider: "WAHOO")
    try f.session("s5", athlete: "nobody", status: "FAILED")
    func ids(_ filter: OperatorSessionFilter) throws -> [String] {
        try OperatorStore.sessions(f.db, filter).rows.map(\.sessionID)
    }
    // "both" has Garmin as primary (connected first): its sessions go to Garmin now.
    #expect(try ids(OperatorSessionFilter(status: .failed, provider: .garmin)) == ["s1", "s2"])
    #expect(try ids(OperatorSessionFilter(status: .failed, provider: .wahoo)) == ["s3"])
    #expect(try ids(OperatorSessionFilter(athleteID: "gone")) == ["s3", "s4"])
    #expect(try OperatorStore.session(f.db, id: "s5")?.provider == nil)
    let page = try OperatorStore.sessions(f.db, OperatorSessionFilter(status: .failed, limit: 2))
    #expect(page.rows.map(\.sessionID) == ["s1", "s2"] && page.more)
    #expect(try OperatorStore.retryCandidates(f.db, OperatorSessionFilter(status: .failed, limit: 1)).count == 4)
    #expect(try OperatorStore.retryCandidates(f.db, OperatorSessionFilter(status: .sent)).isEmpty)
}

@Test func revokeReturnsTheTokensAndMovesTheSessions() throws {
    let f = try OperatorFixture()
    try f.connect("a", .garmin)
    try f.session("s1", athlete: "a", status: "SENT", exportProvider: "GARMIN")
    let revoked = try OperatorStore.write(f.db) {
        try OperatorStore.revoke(f.db, athleteID: "a", provider: .garmin, reason: "revoked_by_operator", now: 70)
    }
    let result = try #require(revoked)
    #expect(result.tokens?.access == "sealed-a" && result.tokens?.refresh == "sealed-r")
    #expect(result.primaryNow == nil)
    #expect(result.sessionsByStatus.map(\.status) == ["NOT_CONNECTED"] && result.sessionsByStatus[0].count == 1)
    let record = try #require(
        try OperatorStore.connections(f.db, athleteID: "a", provider: nil, status: nil).first)
    #expect(record.status == .revoked && record.tokens == nil && record.revokedReason == "revoked_by_operator")
    #expect(!record.operatorJSON.serialized.contains("sealed"))
    #expect(try OperatorStore.revoke(f.db, athleteID: "a", provider: .garmin, reason: "x", now: 71) == nil)
}

@Test func backupCopiesASnapshotAndRefusesAnExistingFile() throws {
    let f = try OperatorFixture()
    for i in 0..<20 { try f.session("s\(i)", athlete: "a", status: "PENDING") }
    let reader = try OperatorStore.open(path: f.path, readOnly: true)
    let copy = f.directory + "/copy.sqlite"
    try OperatorStore.backup(reader, to: copy)
    #expect(try OperatorStore.integrityCheck(path: copy) == ["ok"])
    #expect(try OperatorStore.sessionCount(path: copy) == 20)
    #expect(throws: OperatorStoreError.destinationExists(copy)) { try OperatorStore.backup(reader, to: copy) }
}

import Foundation
import GatewayCore
import Logging
import Testing

@testable import GatewayStore

/// A fresh database file in a temporary directory, removed afterwards.
final class TempDatabase {
    let directory: String
    var path: String { directory + "/gw.sqlite" }

    init() {
        directory = NSTemporaryDirectory() + "gw-store-" + UUID().uuidString
        try! FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: directory) }
}

private func upsert(_ id: String, revision: Int64, type: String = "ENDURANCE", athlete: String = "ath_1") -> PlanEvent {
    .sessionUpsert(
        SessionUpsert(
            isCreate: false, id: id, athleteID: athlete, revision: revision, sessionType: type, date: "2026-12-01",
            startTime: nil))
}

/// Submits and waits for the commit, as the HTTP layer does before answering.
private func submit(_ writer: StoreWriter, _ id: String, _ event: PlanEvent) throws -> IngestOutcome {
    let done = DispatchSemaphore(value: 0)
    let box = ResultBox()
    writer.submit(
        .ingest(IngestRecord(webhookID: id, receivedAtMillis: 1000, event: event, body: Array("{}".utf8))) {
            box.set($0)
            done.signal()
        })
    done.wait()
    return try box.get()
}

private final class ResultBox: @unchecked Sendable {
    private let lock = NSLock()
    private var result: Result<IngestOutcome, any Error>?
    func set(_ r: Result<IngestOutcome, any Error>) { lock.withLock { result = r } }
    func get() throws -> IngestOutcome { try lock.withLock { result! }.get() }
}

private func row(_ db: Database, _ id: String) throws -> (revision: Int64, deleted: Bool, status: String?)? {
    let s = try db.statement("SELECT revision, deleted, export_status FROM sessions WHERE id = ?")
    try s.bind([.text(id)])
    guard try s.step() else { return nil }
    return (s.int(0), s.int(1) != 0, s.text(2))
}

@Test func revisionsApplyOnlyForward() throws {
    let temp = TempDatabase()
    let writer = try StoreWriter(path: temp.path, logger: Logger(label: "test"))
    #expect(try submit(writer, "w1", upsert("s1", revision: 3)) == .applied)
    #expect(try submit(writer, "w2", upsert("s1", revision: 2)) == .stale)
    #expect(try submit(writer, "w3", upsert("s1", revision: 3)) == .stale)
    #expect(try submit(writer, "w4", upsert("s1", revision: 4)) == .applied)
    #expect(try submit(writer, "w4", upsert("s1", revision: 9)) == .duplicate)
    writer.shutdown()

    let db = try Database.openForReading(path: temp.path)
    let stored = try #require(try row(db, "s1"))
    #expect(stored.revision == 4)
    #expect(stored.status == "NOT_CONNECTED")
    #expect(try db.scalarInt("SELECT COUNT(*) FROM webhook_events") == 4)
    #expect(try db.scalarInt("SELECT COUNT(*) FROM webhook_events WHERE outcome = 'stale'") == 2)
    #expect(try db.scalarInt("SELECT revision FROM jobs WHERE kind = 'session.push' AND subject = 's1'") == 4)
    #expect(try db.scalarInt("SELECT event_id = 'w4' FROM sessions WHERE id = 's1'") == 1)
}

@Test func deletionsKeepATombstoneThatOutranksOlderCreates() throws {
    let temp = TempDatabase()
    let writer = try StoreWriter(path: temp.path, logger: Logger(label: "test"))
    let delete = PlanEvent.sessionDeleted(SessionRef(id: "s2", athleteID: "ath_1", revision: 5))
    #expect(try submit(writer, "d1", delete) == .applied)
    #expect(try submit(writer, "c1", upsert("s2", revision: 4)) == .stale)
    #expect(try submit(writer, "c2", upsert("s3", revision: 1)) == .applied)
    #expect(
        try submit(writer, "d2", .sessionDeleted(SessionRef(id: "s3", athleteID: "ath_1", revision: 2))) == .applied)
    writer.shutdown()
    let db = try Database.openForReading(path: temp.path)
    #expect(try row(db, "s2")?.deleted == true)
    #expect(try row(db, "s2")?.revision == 5)
    #expect(try row(db, "s3")?.deleted == true)
    #expect(try db.scalarInt("SELECT revision FROM jobs WHERE subject = 's3'") == 2)
    // The deletion of a session never seen needs no provider call.
    #expect(try db.scalarInt("SELECT COUNT(*) FROM jobs WHERE subject = 's2'") == 0)
}

@Test func nonEnduranceSessionsAreStoredNotPushed() throws {
    let temp = TempDatabase()
    let writer = try StoreWriter(path: temp.path, logger: Logger(label: "test"))
    #expect(try submit(writer, "a", upsert("s4", revision: 1, type: "STRENGTH")) == .applied)
    #expect(try submit(writer, "b", upsert("s5", revision: 1)) == .applied)
    #expect(try submit(writer, "c", upsert("s5", revision: 2, type: "STRENGTH")) == .applied)
    #expect(try submit(writer, "d", .unknown(type: "coach.updated")) == .ignored)
    #expect(try submit(writer, "e", .athleteDeleted(athleteID: "ath_9")) == .applied)
    writer.shutdown()
    let db = try Database.openForReading(path: temp.path)
    #expect(try row(db, "s4")?.status == nil)
    #expect(try db.scalarInt("SELECT COUNT(*) FROM jobs WHERE subject = 's4'") == 0)
    // s5 stopped being ENDURANCE: its job stays, so the dispatcher removes it from the device.
    #expect(try db.scalarInt("SELECT revision FROM jobs WHERE subject = 's5'") == 2)
    #expect(try db.scalarInt("SELECT COUNT(*) FROM jobs WHERE kind = 'athlete.delete' AND subject = 'ath_9'") == 1)
    #expect(try db.scalarInt("SELECT outcome = 'ignored' FROM webhook_events WHERE webhook_id = 'd'") == 1)
}

@Test func concurrentSubmissionsAreGroupCommitted() throws {
    let temp = TempDatabase()
    let writer = try StoreWriter(path: temp.path, logger: Logger(label: "test"))
    let count = 2000
    let group = DispatchGroup()
    let failures = ResultCounter()
    for i in 0..<count {
        group.enter()
        let record = IngestRecord(
            webhookID: "w\(i)", receivedAtMillis: 1, event: upsert("s\(i % 500)", revision: Int64(i)),
            body: Array(repeating: 0x20, count: 2048))
        writer.submit(
            .ingest(record) { result in
                if case .failure = result { failures.increment() }
                group.leave()
            })
    }
    group.wait()
    let batches = writer.batchesCommitted
    writer.shutdown()
    #expect(failures.value == 0)
    #expect(batches < count)  // at least some batching happened
    let db = try Database.openForReading(path: temp.path)
    #expect(try db.scalarInt("SELECT COUNT(*) FROM webhook_events") == Int64(count))
    #expect(try db.scalarInt("SELECT COUNT(*) FROM sessions") == 500)
    #expect(try db.scalarInt("SELECT MIN(revision) FROM sessions") == 1500)
}

@Test func migrationsRunOnceAndAreRecorded() throws {
    let temp = TempDatabase()
    let db = try Database.openForWriting(path: temp.path)
    #expect(try Schema.migrate(db, now: 1) == Schema.migrations.map(\.version))
    #expect(try Schema.migrate(db, now: 2) == [])
    #expect(try db.scalarInt("SELECT COUNT(*) FROM schema_migrations") == Int64(Schema.migrations.count))
    #expect(try db.scalarInt("PRAGMA synchronous") == 2)  // FULL
}

@Test func sessionListPagesByID() throws {
    let temp = TempDatabase()
    let writer = try StoreWriter(path: temp.path, logger: Logger(label: "test"))
    for i in 0..<7 { _ = try submit(writer, "w\(i)", upsert("s\(i)", revision: 1, athlete: i < 5 ? "a" : "b")) }
    writer.shutdown()
    let queries = SessionQueries(db: try Database.openForReading(path: temp.path))
    var seen: [String] = []
    var filter = SessionFilter(athleteID: "a", limit: 2)
    while true {
        let page = try queries.list(filter)
        seen += page.rows.map(\.sessionID)
        guard page.hasMore else { break }
        filter.afterID = page.rows.last?.sessionID
    }
    #expect(seen == ["s0", "s1", "s2", "s3", "s4"])
    #expect(try queries.list(SessionFilter(status: .sent)).rows.isEmpty)
    #expect(try queries.list(SessionFilter(status: .notConnected, limit: 50)).rows.count == 7)
    #expect(try queries.status(id: "s6")?.athleteID == "b")
    #expect(try queries.status(id: "nope") == nil)
}

private final class ResultCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func increment() { lock.withLock { count += 1 } }
    var value: Int { lock.withLock { count } }
}

@Test func athleteDeletionRemovesSessionsAndKeepsThemOut() throws {
    let temp = TempDatabase()
    let writer = try StoreWriter(path: temp.path, logger: Logger(label: "test"))
    _ = try submit(writer, "a1", upsert("x1", revision: 1, athlete: "gone"))
    _ = try submit(writer, "a2", upsert("x2", revision: 1, athlete: "kept"))
    #expect(try submit(writer, "a3", .athleteDeleted(athleteID: "gone")) == .applied)
    #expect(try submit(writer, "a4", upsert("x1", revision: 2, athlete: "gone")) == .stale)
    writer.shutdown()
    let db = try Database.openForReading(path: temp.path)
    #expect(try row(db, "x1") == nil)
    #expect(try row(db, "x2") != nil)
    #expect(try db.scalarInt("SELECT COUNT(*) FROM jobs WHERE subject = 'x1'") == 0)
    #expect(try db.scalarInt("SELECT COUNT(*) FROM jobs WHERE kind = 'athlete.delete' AND subject = 'gone'") == 1)
}

@Test func readerSeesNewCommitsAfterEarlierReads() throws {
    let temp = TempDatabase()
    let writer = try StoreWriter(path: temp.path, logger: Logger(label: "test"))
    _ = try submit(writer, "r1", upsert("y1", revision: 1, athlete: "p"))
    let queries = SessionQueries(db: try Database.openForReading(path: temp.path))
    #expect(try queries.status(id: "y1") != nil)
    _ = try submit(writer, "r2", upsert("y2", revision: 1, athlete: "q"))
    // A statement left open after the first read would pin the old snapshot.
    #expect(try queries.list(SessionFilter(athleteID: "q")).rows.map(\.sessionID) == ["y2"])
    #expect(try queries.webhookSeen("r2"))
    #expect(try !queries.webhookSeen("r3"))
    writer.shutdown()
}

/// Counts flushes and can hold them, to see completions wait for the disk.
private final class FlushGate: @unchecked Sendable {
    private let lock = NSLock()
    private var held = false
    private var failing = false
    private(set) var calls = 0
    private let release = DispatchSemaphore(value: 0)

    func hold() { lock.withLock { held = true } }
    func fail() { lock.withLock { failing = true } }
    func open() {
        lock.withLock { held = false }
        release.signal()
    }
    var count: Int { lock.withLock { calls } }

    func flush(_ fd: Int32) -> Int32 {
        let (wait, fails) = lock.withLock { () -> (Bool, Bool) in
            calls += 1
            return (held, failing)
        }
        if wait { release.wait() }
        if fails {
            errno = EIO
            return -1
        }
        return fdatasync(fd)
    }
}

@Test func completionsWaitForTheWALFlush() throws {
    let temp = TempDatabase()
    let gate = FlushGate()
    let writer = try StoreWriter(path: temp.path, logger: Logger(label: "test"), flush: { gate.flush($0) })
    #expect(try submit(writer, "w0", upsert("s0", revision: 1)) == .applied)
    let flushesBefore = gate.count
    #expect(flushesBefore >= 1)

    gate.hold()
    let done = DispatchSemaphore(value: 0)
    writer.submit(
        .ingest(IngestRecord(webhookID: "w1", receivedAtMillis: 1, event: upsert("s1", revision: 1), body: [])) {
            _ in done.signal()
        })
    // Committed (a reader sees the row) but not confirmed while the flush is held.
    #expect(done.wait(timeout: .now() + 0.3) == .timedOut)
    let reader = try Database.openForReading(path: temp.path)
    #expect(try reader.scalarInt("SELECT COUNT(*) FROM sessions WHERE id = 's1'") == 1)
    gate.open()
    #expect(done.wait(timeout: .now() + 5) == .success)
    #expect(gate.count > flushesBefore)
    writer.shutdown()
}

@Test func aFailedFlushFailsThatBatchAndEveryLaterWrite() throws {
    let temp = TempDatabase()
    let gate = FlushGate()
    let writer = try StoreWriter(path: temp.path, logger: Logger(label: "test"), flush: { gate.flush($0) })
    #expect(try submit(writer, "w0", upsert("s0", revision: 1)) == .applied)
    gate.fail()
    #expect(throws: StoreError.self) { try submit(writer, "w1", upsert("s1", revision: 1)) }
    #expect(throws: StoreError.self) { try submit(writer, "w2", upsert("s2", revision: 1)) }
    #expect(throws: StoreError.self) { try writer.performAndWait { _ in 1 } }
    writer.shutdown()
}

import Foundation
import GatewayCore
import Logging
import Testing

@testable import GatewayStore

/// One transaction of 200 rows of 2 KiB: SQLite appends about 430 one-KiB WAL frames
/// (two writes each without the VFS); through it they reach the file in a few writes.
@Test func walFramesReachTheFileInFewWrites() throws {
    let temp = TempDatabase()
    let db = try Database.openForWriting(path: temp.path, coalescingWrites: true)
    try db.execute("PRAGMA synchronous=NORMAL; CREATE TABLE t(id INTEGER PRIMARY KEY, body BLOB NOT NULL);")
    let pages = WALPageCount()
    db.onWALCommit { pages.value = $0 }
    let before = CoalescingVFS.writesIssued(database: temp.path)
    let startPages = pages.value
    try db.transaction {
        let insert = try db.statement("INSERT INTO t(body) VALUES(?)")
        for i in 0..<200 { try insert.run([.blob(Array(repeating: UInt8(i & 0xFF), count: 2048))]) }
    }
    let writes = CoalescingVFS.writesIssued(database: temp.path) - before
    let frames = pages.value - startPages
    #expect(frames >= 400)
    // 430+ KiB in 64 KiB pieces (counted for this database only).
    #expect(writes > 0 && writes < frames / 10, "\(writes) writes for \(frames) frames")
    // What was written is what a connection on the default VFS reads back.
    let reader = try Database.openForReading(path: temp.path)
    #expect(try reader.scalarInt("SELECT COUNT(*) FROM t") == 200)
    #expect(try reader.scalarInt("SELECT SUM(length(body)) FROM t") == 200 * 2048)
    for id in [1, 6, 200] {
        let body = Array(repeating: UInt8((id - 1) & 0xFF), count: 2048)
        #expect(
            try reader.scalarInt("SELECT COUNT(*) FROM t WHERE id = ? AND body = ?", [.int(Int64(id)), .blob(body)])
                == 1)
    }
}

/// The writer (large group commits, tail checkpoints) and the checkpointer (bulk
/// checkpoints) write through the VFS while readers on the default VFS read all the
/// time: every reader sees whole rows, never fewer than before, and the file is intact
/// during the run and after shutdown.
@Test func coalescedCommitsAndCheckpointsStayConsistentForReaders() throws {
    let temp = TempDatabase()
    let writer = try StoreWriter(path: temp.path, logger: Logger(label: "test"))
    let count = 12_000
    let stop = StopFlag()
    let problems = ProblemLog()
    let readers = DispatchGroup()
    let path = temp.path
    for r in 0..<2 {
        readers.enter()
        Thread {
            defer { readers.leave() }
            do {
                let db = try Database.openForReading(path: path)
                var seen: Int64 = 0
                while !stop.isSet {
                    let rows = try db.scalarInt("SELECT COUNT(*) FROM webhook_events") ?? 0
                    if rows < seen { problems.add("reader \(r): \(rows) rows after \(seen)") }
                    seen = rows
                    // Every stored body is whole: 2 KiB of the byte its event number gives.
                    let bad =
                        try db.scalarInt(
                            "SELECT COUNT(*) FROM webhook_events WHERE body != ?",
                            [.blob(Array(repeating: 0x41, count: 2048))]
                        ) ?? -1
                    if bad != 0 { problems.add("reader \(r): \(bad) damaged bodies") }
                }
                if try db.scalarInt("SELECT COUNT(*) FROM pragma_quick_check WHERE quick_check != 'ok'") != 0 {
                    problems.add("reader \(r): quick_check failed")
                }
            } catch {
                problems.add("reader \(r): \(error)")
            }
        }.start()
    }
    let submitted = DispatchGroup()
    let failures = ProblemLog()
    for i in 0..<count {
        submitted.enter()
        let record = IngestRecord(
            webhookID: "w\(i)", receivedAtMillis: 1,
            event: .sessionUpsert(
                SessionUpsert(
                    isCreate: true, id: "s\(i)", athleteID: "a\(i % 50)", revision: 1, sessionType: "ENDURANCE",
                    date: "2026-12-01", startTime: nil)),
            body: Array(repeating: 0x41, count: 2048))
        writer.submit(
            .ingest(record) { result in
                if case .failure(let error) = result { failures.add("\(error)") }
                submitted.leave()
            })
        if i % 1000 == 999 { usleep(20_000) }  // several batches, several checkpoints
    }
    submitted.wait()
    stop.set()
    readers.wait()
    writer.shutdown()
    #expect(failures.all.isEmpty, "\(failures.all.prefix(3))")
    #expect(problems.all.isEmpty, "\(problems.all.prefix(5))")
    let db = try Database(path: temp.path)
    #expect(try db.scalarInt("SELECT COUNT(*) FROM pragma_integrity_check WHERE integrity_check != 'ok'") == 0)
    #expect(try db.scalarInt("SELECT COUNT(*) FROM webhook_events") == Int64(count))
    #expect(try db.scalarInt("SELECT COUNT(*) FROM sessions") == Int64(count))
}

private final class WALPageCount: @unchecked Sendable {
    var value = 0
}

private final class StopFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var flag = false
    var isSet: Bool { lock.withLock { flag } }
    func set() { lock.withLock { flag = true } }
}

private final class ProblemLog: @unchecked Sendable {
    private let lock = NSLock()
    private var entries: [String] = []
    func add(_ entry: String) { lock.withLock { entries.append(entry) } }
    var all: [String] { lock.withLock { entries } }
}

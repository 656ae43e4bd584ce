import Foundation
import GatewayCore
import Logging

/// The one thread that writes the database.
///
/// Callers hand it operations from any thread; it takes everything waiting and
/// runs it in one transaction (group commit). The commit writes the WAL frames
/// without waiting for the disk (`synchronous=NORMAL`); a `WALSyncer` thread then
/// calls `fdatasync` on the WAL file, and only after that returns are the
/// operations' completions called. A 2xx built on such a completion therefore
/// means "on disk", exactly as with `synchronous=FULL`, but the writer is already
/// running the next transaction while the disk flushes the previous one, and two
/// flushes may be in flight at once (see docs/DECISIONS.md, "Durable ingest").
/// WAL checkpoints run on a separate connection and thread, so they never sit in
/// the commit path.
public final class StoreWriter: @unchecked Sendable {
    public enum Operation: Sendable {
        case ingest(IngestRecord, @Sendable (Result<IngestOutcome, any Error>) -> Void)
        /// A real write that proves the database takes commits (readiness).
        case probe(@Sendable (Result<Void, any Error>) -> Void)
        /// Any other change, run inside the batch transaction. `body` returns what to
        /// run after the commit (its result delivery); `failed` gets the error if the
        /// change, or the commit, fails.
        case change(
            @Sendable (Database) throws -> @Sendable () -> Void, failed: @Sendable (any Error) -> Void)
    }

    /// Runs `body` in a committed transaction and hands its result to `completion`
    /// after the commit (on the writer thread).
    public func perform<T: Sendable>(
        _ body: @escaping @Sendable (Database) throws -> T,
        completion: @escaping @Sendable (Result<T, any Error>) -> Void
    ) {
        submit(
            .change(
                { db in
                    let value = try body(db)
                    return { completion(.success(value)) }
                }, failed: { completion(.failure($0)) }))
    }

    /// `perform`, waiting for the commit. Never call it on the event-loop thread.
    @discardableResult
    public func performAndWait<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) throws -> T {
        let done = DispatchSemaphore(value: 0)
        let box = ResultSlot<T>()
        perform(body) { result in
            box.set(result)
            done.signal()
        }
        done.wait()
        return try box.get()
    }

    private let path: String
    private let logger: Logger
    private let condition = NSCondition()
    // Guarded by `condition`.
    private var pending: [Operation] = []
    private var stopping = false
    private var stopped = false
    private let checkpointer: Checkpointer
    /// WAL size after the last commit; written and read on the writer thread only.
    private let walPages: WALPages
    /// Past this many WAL pages the writer copies the tail itself (see Checkpointer).
    static let tailCheckpointPages = 8192
    /// Written and read on the writer thread only.
    private var gatherer = CommitGatherer(windowNanos: 400_000)
    private let finished = DispatchSemaphore(value: 0)
    private let syncer: WALSyncer
    /// Commits made by this writer; written on the writer thread only.
    private var commitSequence: UInt64 = 0

    /// Pending operations and committed batches, for metrics and tests.
    public private(set) var batchesCommitted = 0

    public convenience init(path: String, logger: Logger) throws {
        try self.init(path: path, logger: logger, flush: { fdatasync($0) })
    }

    /// `flush` makes the WAL file durable (`fdatasync`); tests pass a slow or failing one.
    init(path: String, logger: Logger, flush: @escaping @Sendable (Int32) -> Int32) throws {
        self.path = path
        self.logger = logger
        let db = try Database.openForWriting(path: path, coalescingWrites: true)
        try Schema.migrate(db, now: WallClock.nowMillis())
        // Commits write the WAL without syncing; the syncer makes them durable before
        // any completion runs. A first write guarantees the WAL file exists to be opened.
        try db.execute("PRAGMA synchronous=NORMAL;")
        try db.execute("INSERT OR REPLACE INTO probes(id, at_ms) VALUES(1, \(WallClock.nowMillis()));")
        syncer = try WALSyncer(walPath: path + "-wal", logger: logger, flush: flush)
        checkpointer = try Checkpointer(path: path, logger: logger)
        let pagesBox = WALPages()
        db.onWALCommit { [checkpointer] pages in
            pagesBox.value = pages
            checkpointer.walGrew(pages: pages)
        }
        walPages = pagesBox
        let box = UncheckedBox((db, try IngestStatements(db: db)))
        let thread = Thread { [self] in
            setOSThreadName("gw-writer")
            self.run(box.value.0, box.value.1)
        }
        thread.name = "gatewayd-writer"
        thread.start()
    }

    public func submit(_ operation: Operation) {
        condition.lock()
        if stopped {
            condition.unlock()
            fail(operation, with: StoreError.shuttingDown)
            return
        }
        pending.append(operation)
        if pending.count == 1 { condition.signal() }
        condition.unlock()
    }

    public var queueDepth: Int {
        condition.lock()
        defer { condition.unlock() }
        return pending.count
    }

    /// Commits everything already submitted, then stops the thread. Blocks until done.
    public func shutdown() {
        condition.lock()
        stopping = true
        condition.signal()
        condition.unlock()
        finished.wait()
        syncer.shutdown()
        checkpointer.shutdown()
    }

    private func run(_ db: Database, _ statements: IngestStatements) {
        while true {
            condition.lock()
            while pending.isEmpty && !stopping { condition.wait() }
            if !stopping && gatherer.shouldGather(now: WallClock.monotonicNanos()) {
                // A relative sleep on the monotonic clock, not a timed wait on the
                // condition: those end at a wall-clock time, which a clock step could
                // push far away. Submissions meanwhile only append (see `submit`).
                condition.unlock()
                sleepNanos(gatherer.windowNanos)
                condition.lock()
            }
            if pending.isEmpty && stopping {
                stopped = true
                condition.unlock()
                break
            }
            let batch = pending
            pending.removeAll(keepingCapacity: true)
            condition.unlock()
            gatherer.took(batch.count, now: WallClock.monotonicNanos())
            commit(batch, db: db, statements: statements)
            gatherer.finished(now: WallClock.monotonicNanos())
            checkpointTail(db)
        }
        finished.signal()
    }

    // Writer-thread statistics, logged at debug level about once a second.
    private var statsBatches = 0
    private var statsOperations = 0
    private var statsCommitNanos: UInt64 = 0
    private var statsMaxCommitNanos: UInt64 = 0
    private var statsWindow = StatsWindow(now: WallClock.monotonicNanos())
    private var statsExecNanos: UInt64 = 0

    private func recordStats(operations: Int, nanos: UInt64) {
        statsBatches += 1
        statsOperations += operations
        statsCommitNanos += nanos
        statsMaxCommitNanos = max(statsMaxCommitNanos, nanos)
        guard statsWindow.roll(now: WallClock.monotonicNanos()) else { return }
        if logger.logLevel <= .debug {
            logger.debug(
                "writer stats",
                metadata: [
                    "batches": "\(statsBatches)", "operations": "\(statsOperations)",
                    "avg_batch": "\(statsOperations / max(statsBatches, 1))",
                    "avg_commit_ms": "\(Double(statsCommitNanos / UInt64(max(statsBatches, 1))) / 1e6)",
                    "max_commit_ms": "\(Double(statsMaxCommitNanos) / 1e6)",
                    "avg_exec_ms": "\(Double(statsExecNanos / UInt64(max(statsBatches, 1))) / 1e6)",
                ])
        }
        statsBatches = 0
        statsOperations = 0
        statsCommitNanos = 0
        statsMaxCommitNanos = 0
        statsExecNanos = 0
    }

    private func commit(_ batch: [Operation], db: Database, statements: IngestStatements) {
        let started = WallClock.monotonicNanos()
        defer { recordStats(operations: batch.count, nanos: WallClock.monotonicNanos() - started) }
        var results: [Result<IngestOutcome, any Error>] = []
        results.reserveCapacity(batch.count)
        var afterCommit: [@Sendable () -> Void] = []
        do {
            try db.transaction {
                statements.forgetAthlete()
                for operation in batch {
                    switch operation {
                    case .ingest(let record, _):
                        results.append(.success(try statements.apply(record)))
                    case .probe:
                        try db.statement("INSERT OR REPLACE INTO probes(id, at_ms) VALUES(1, ?)").run([
                            .int(WallClock.nowMillis())
                        ])
                        results.append(.success(.applied))
                    case .change(let body, _):
                        statements.forgetAthlete()
                        afterCommit.append(try body(db))
                        results.append(.success(.applied))
                    }
                }
                statsExecNanos += WallClock.monotonicNanos() - started
            }
            batchesCommitted += 1
        } catch {
            // One bad operation must not fail its neighbours: retry each on its own.
            if batch.count > 1 {
                for operation in batch { commit([operation], db: db, statements: statements) }
                return
            }
            logger.error("database commit failed", metadata: ["error": "\(error)"])
            results = [.failure(error)]
        }
        let delivery = Delivery(batch: batch, results: results, afterCommit: afterCommit)
        if case .failure = results.first, results.count == 1 {
            // Nothing was committed: no flush to wait for.
            delivery.deliver(syncError: nil)
            return
        }
        commitSequence += 1
        syncer.committed(commitSequence, delivery)
    }

    /// Between commits, once the WAL is large and the bulk checkpoint is idle, copy
    /// what is left so the next commit restarts the WAL at its beginning. PASSIVE never
    /// waits for a lock: if the checkpointer has just started again, this is skipped.
    private func checkpointTail(_ db: Database) {
        guard walPages.value >= Self.tailCheckpointPages, checkpointer.isIdle else { return }
        try? db.execute("PRAGMA wal_checkpoint(PASSIVE);")
        walPages.value = 0
    }

    private func fail(_ operation: Operation, with error: any Error) {
        switch operation {
        case .ingest(_, let completion): completion(.failure(error))
        case .probe(let completion): completion(.failure(error))
        case .change(_, let failed): failed(error)
        }
    }
}

public enum StoreError: Error, CustomStringConvertible {
    case shuttingDown
    case syncFailed(errno: Int32)
    public var description: String {
        switch self {
        case .shuttingDown: return "the store is shutting down"
        case .syncFailed(let code): return "fdatasync of the WAL failed: \(String(cString: strerror(code)))"
        }
    }
}

/// The completions of one committed batch, run once its WAL frames are on disk.
struct Delivery: @unchecked Sendable {
    let batch: [StoreWriter.Operation]
    let results: [Result<IngestOutcome, any Error>]
    let afterCommit: [@Sendable () -> Void]

    /// `syncError` non-nil: the commit happened but may not be durable, so every
    /// operation fails (a webhook gets 503 and is retried by the plan app).
    func deliver(syncError: (any Error)?) {
        var next = afterCommit.makeIterator()
        for (operation, committed) in zip(batch, results) {
            let result = syncError.map { .failure($0) } ?? committed
            switch operation {
            case .ingest(_, let completion): completion(result)
            case .probe(let completion): completion(result.map { _ in () })
            case .change(_, let failed):
                switch result {
                case .success: next.next()?()
                case .failure(let error): failed(error)
                }
            }
        }
    }
}

/// Makes the writer's commits durable: `fdatasync` on the WAL file, then the
/// completions of every commit made before that flush started.
///
/// The writer commits with `synchronous=NORMAL`, so a commit returns once its
/// frames are written to the WAL (in the page cache). A flush that starts after a
/// commit returned covers it. While one flush is in flight, commits keep coming;
/// a second thread starts the next flush at once instead of waiting, since this
/// machine's disk completes concurrent flushes about as fast as single ones
/// (measured in docs/BENCHMARKS.md). Checkpoints stay safe: in WAL mode SQLite
/// syncs the WAL before copying it back and the database before reusing the WAL.
final class WALSyncer: @unchecked Sendable {
    static let flushers = 2
    private let fd: Int32
    private let flush: @Sendable (Int32) -> Int32
    private let logger: Logger
    private let condition = NSCondition()
    // Guarded by `condition`.
    private var committed: UInt64 = 0
    private var flushStarted: UInt64 = 0
    private var inFlight = 0
    private var waiting: [(sequence: UInt64, delivery: Delivery)] = []
    private var stopping = false
    // Flush statistics, logged at debug level about once a second (guarded by `condition`).
    private var statFlushes = 0
    private var statNanos: UInt64 = 0
    private var statConcurrent = 0
    private var statWindow = StatsWindow(now: 0)
    /// Set by the first failed flush. Linux may drop the dirty pages of a failed
    /// `fdatasync` and report success on the next one, so after a failure nothing
    /// is confirmed again until the daemon restarts (and SQLite recovers the WAL).
    private var failure: (any Error)?
    private let finished = DispatchSemaphore(value: 0)

    init(walPath: String, logger: Logger, flush: @escaping @Sendable (Int32) -> Int32) throws {
        let fd = open(walPath, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw StoreError.syncFailed(errno: errno) }
        self.fd = fd
        self.flush = flush
        self.logger = logger
        for index in 0..<Self.flushers {
            let thread = Thread { [self] in
                setOSThreadName("gw-sync-\(index)")
                self.run()
            }
            thread.name = "gatewayd-sync-\(index)"
            thread.start()
        }
    }

    deinit { close(fd) }

    /// Called by the writer after commit `sequence` returned.
    func committed(_ sequence: UInt64, _ delivery: Delivery) {
        condition.lock()
        committed = sequence
        waiting.append((sequence, delivery))
        condition.signal()
        condition.unlock()
    }

    /// Flushes and delivers everything committed so far, then stops the threads.
    func shutdown() {
        condition.lock()
        stopping = true
        condition.broadcast()
        condition.unlock()
        for _ in 0..<Self.flushers { finished.wait() }
    }

    private func recordStats(nanos: UInt64, concurrent: Int, now: UInt64) {
        statFlushes += 1
        statNanos += nanos
        statConcurrent += concurrent
        guard statWindow.roll(now: now) else { return }
        if logger.logLevel <= .debug {
            logger.debug(
                "flush stats",
                metadata: [
                    "flushes": "\(statFlushes)", "avg_flush_ms": "\(Double(statNanos / UInt64(statFlushes)) / 1e6)",
                    "avg_concurrent": "\(Double(statConcurrent) / Double(statFlushes))",
                ])
        }
        statFlushes = 0
        statNanos = 0
        statConcurrent = 0
    }

    private func run() {
        while true {
            condition.lock()
            while committed == flushStarted && !stopping { condition.wait() }
            if committed == flushStarted && stopping && inFlight == 0 {
                condition.unlock()
                break
            }
            if committed == flushStarted {
                // Stopping, another flush still running: wait for it to finish.
                condition.wait()
                condition.unlock()
                continue
            }
            let target = committed
            flushStarted = target
            inFlight += 1
            condition.unlock()

            let t0 = WallClock.monotonicNanos()
            let rc = flush(fd)
            let t1 = WallClock.monotonicNanos()
            let flushError: (any Error)? = rc == 0 ? nil : StoreError.syncFailed(errno: errno)
            if let flushError { logger.error("WAL flush failed", metadata: ["error": "\(flushError)"]) }

            condition.lock()
            inFlight -= 1
            recordStats(nanos: t1 - t0, concurrent: inFlight + 1, now: t1)
            if failure == nil { failure = flushError }
            let error = failure
            // Flushes may finish out of order: deliver in commit order, up to `target`.
            var ready: [Delivery] = []
            while let first = waiting.first, first.sequence <= target {
                ready.append(first.delivery)
                waiting.removeFirst()
            }
            condition.broadcast()
            condition.unlock()
            for delivery in ready { delivery.deliver(syncError: error) }
        }
        finished.signal()
    }
}

/// Sleeps for `nanos` on the monotonic clock (a relative `nanosleep`).
func sleepNanos(_ nanos: UInt64) {
    var request = timespec(tv_sec: Int(nanos / 1_000_000_000), tv_nsec: Int(nanos % 1_000_000_000))
    var remaining = timespec()
    while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
}

/// The once-a-second window of the writer's and the flushers' debug statistics.
struct StatsWindow {
    private(set) var since: UInt64

    init(now: UInt64) { since = now }

    /// True, and the window restarts at `now`, once a second has passed since it
    /// started. A flusher reads the clock before it takes the lock that guards its
    /// window, so another flusher may already have restarted the window at a later
    /// time: such a `now` counts as no time passed. (It was an unsigned subtraction
    /// that trapped and stopped the daemon, at any log level, when two flushes ended
    /// together at the turn of a second: seen once in `scripts/bench ingest`.)
    mutating func roll(now: UInt64) -> Bool {
        guard now > since, now - since >= 1_000_000_000 else { return false }
        since = now
        return true
    }
}

/// A result handed from the writer thread to a waiting thread.
final class ResultSlot<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var result: Result<T, any Error>?
    func set(_ r: Result<T, any Error>) { lock.withLock { result = r } }
    func get() throws -> T { try lock.withLock { result! }.get() }
}

final class WALPages: @unchecked Sendable {
    var value = 0
}

/// Moves a non-Sendable value into the one thread that will own it.
struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

/// Copies WAL pages into the database file on its own connection and thread, so
/// the writer never pays for a checkpoint inside a commit.
///
/// It runs PASSIVE checkpoints, which copy the bulk of the WAL without blocking the
/// writer. A WAL only wraps to its start once every frame is copied, which a
/// concurrent checkpoint never achieves while commits keep coming; so when it is
/// idle, the writer copies the short tail itself between two commits
/// (`StoreWriter.checkpointTail`). Commits then overwrite blocks the WAL already
/// has, and their fdatasync skips the file-size update an ever-growing WAL costs.
final class Checkpointer: @unchecked Sendable {
    private let condition = NSCondition()
    private var walPages = 0
    private var stopping = false
    private var busy = false
    private let finished = DispatchSemaphore(value: 0)
    private let logger: Logger
    /// Checkpoint at once past this many WAL pages; otherwise about once a second.
    static let eagerPages = 4096

    /// True while no bulk checkpoint is running.
    var isIdle: Bool {
        condition.lock()
        defer { condition.unlock() }
        return !busy
    }

    init(path: String, logger: Logger) throws {
        self.logger = logger
        let db = try Database(path: path, coalescingWrites: true)
        // Reading the journal mode opens the WAL for this connection.
        try db.execute("PRAGMA journal_mode=WAL;")
        let box = UncheckedBox(db)
        let thread = Thread { [self] in
            setOSThreadName("gw-checkpoint")
            self.run(box.value)
        }
        thread.name = "gatewayd-checkpoint"
        thread.start()
    }

    func walGrew(pages: Int) {
        condition.lock()
        let wasSmall = walPages < Self.eagerPages
        walPages = pages
        if wasSmall && pages >= Self.eagerPages { condition.signal() }
        condition.unlock()
    }

    func shutdown() {
        condition.lock()
        stopping = true
        condition.signal()
        condition.unlock()
        finished.wait()
    }

    private func run(_ db: Database) {
        while true {
            condition.lock()
            if !stopping && walPages < Self.eagerPages {
                _ = condition.wait(until: Date(timeIntervalSinceNow: 1))
            }
            let stop = stopping
            let pages = walPages
            walPages = 0
            busy = pages > 0 || stop
            condition.unlock()
            if pages > 0 || stop {
                do {
                    try db.execute(stop ? "PRAGMA wal_checkpoint(TRUNCATE);" : "PRAGMA wal_checkpoint(PASSIVE);")
                } catch {
                    logger.warning("WAL checkpoint failed", metadata: ["error": "\(error)"])
                }
                condition.lock()
                busy = false
                condition.unlock()
            }
            if stop { break }
        }
        finished.signal()
    }
}

/// Names the calling thread for `top -H`, `ps -L` and /proc (at most 15 bytes): Foundation's
/// `Thread.name` does not reach the OS thread on Linux.
public func setOSThreadName(_ name: String) {
    // pthread_setname_np is not in Swift's Glibc module; the kernel's own file is.
    let fd = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
    guard fd >= 0 else { return }
    let bytes = Array(name.utf8.prefix(15))
    _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    close(fd)
}

private import CSQLite

/// A failing SQLite call: result code, SQLite's message, and the SQL involved.
public struct SQLiteError: Error, CustomStringConvertible, Sendable {
    public let code: Int32
    public let message: String
    public let sql: String?

    public var description: String {
        "SQLite error \(code): \(message)" + (sql.map { " (in: \($0))" } ?? "")
    }

    /// Disk full or I/O failure: the database cannot take writes right now.
    public var isStorageFailure: Bool {
        let primary = code & 0xFF
        return primary == SQLITE_FULL || primary == SQLITE_IOERR || primary == SQLITE_READONLY
            || primary == SQLITE_CANTOPEN
    }
}

/// One SQLite connection. Not thread-safe: each thread owns its connection.
public final class Database {
    let handle: OpaquePointer
    public let path: String
    private var statements: [String: Statement] = [:]
    /// The callback registered with ``onWALCommit(_:)``: SQLite holds only a pointer to it.
    private var walHook: WALHookBox?

    /// `coalescingWrites`: open through ``CoalescingVFS`` (for the writer and the
    /// checkpointer, which run with `synchronous` NORMAL or FULL).
    public init(path: String, readOnly: Bool = false, coalescingWrites: Bool = false) throws(SQLiteError) {
        var db: OpaquePointer?
        let flags =
            (readOnly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) | SQLITE_OPEN_NOMUTEX
        let rc = sqlite3_open_v2(path, &db, flags, coalescingWrites ? CoalescingVFS.registeredName() : nil)
        guard rc == SQLITE_OK, let db else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            sqlite3_close_v2(db)
            throw SQLiteError(code: rc, message: message, sql: nil)
        }
        handle = db
        self.path = path
        sqlite3_extended_result_codes(db, 1)
        sqlite3_busy_timeout(db, 5000)
    }

    deinit {
        statements.removeAll()
        sqlite3_close_v2(handle)
    }

    public static var libraryVersion: String { String(cString: sqlite3_libversion()) }

    func error(_ rc: Int32, sql: String?) -> SQLiteError {
        SQLiteError(code: rc, message: String(cString: sqlite3_errmsg(handle)), sql: sql)
    }

    /// Runs one or more statements that return no rows.
    public func execute(_ sql: String) throws(SQLiteError) {
        var message: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(handle, sql, nil, nil, &message)
        if rc != SQLITE_OK {
            let text = message.map { String(cString: $0) } ?? "error"
            sqlite3_free(message)
            throw SQLiteError(code: rc, message: text, sql: sql)
        }
    }

    /// A prepared statement, cached by its SQL text for the life of the connection.
    public func statement(_ sql: String) throws(SQLiteError) -> Statement {
        if let cached = statements[sql] {
            cached.reset()
            return cached
        }
        let statement = try Statement(database: self, sql: sql)
        statements[sql] = statement
        return statement
    }

    /// Runs `body` in a transaction: commit on return, rollback on throw.
    public func transaction<T>(immediate: Bool = true, _ body: () throws -> T) throws -> T {
        // Prepared once per connection: the writer opens a transaction per batch, and
        // sqlite3_exec would parse the SQL text each time.
        try statement(immediate ? "BEGIN IMMEDIATE" : "BEGIN").run()
        do {
            let result = try body()
            try statement("COMMIT").run()
            return result
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }

    public var changes: Int { Int(sqlite3_changes(handle)) }
    public var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(handle) }

    /// Runs a query and hands each row to `row`; the statement is reset afterwards.
    public func query(_ sql: String, _ arguments: [SQLValue] = [], row: (Statement) throws -> Void) throws {
        let statement = try self.statement(sql)
        defer { statement.reset() }
        try statement.bind(arguments)
        while try statement.step() { try row(statement) }
    }

    /// The first row mapped by `transform`, or nil; the statement is reset afterwards.
    public func queryFirst<T>(_ sql: String, _ arguments: [SQLValue] = [], _ transform: (Statement) throws -> T)
        throws -> T?
    {
        let statement = try self.statement(sql)
        defer { statement.reset() }
        try statement.bind(arguments)
        return try statement.step() ? transform(statement) : nil
    }

    /// Scalar query helper.
    public func scalarInt(_ sql: String, _ arguments: [SQLValue] = []) throws -> Int64? {
        try queryFirst(sql, arguments) { $0.isNull(0) ? nil : $0.int(0) } ?? nil
    }

    /// Registers a callback run after each commit with the number of pages in the WAL.
    public func onWALCommit(_ callback: @escaping (Int) -> Void) {
        // Owned by this connection (released after the handle is closed in deinit), not
        // retained for SQLite: a retained box was never released, so every closed writer
        // leaked it and everything its callback captures.
        let box = WALHookBox(callback)
        walHook = box
        sqlite3_wal_hook(
            handle,
            { context, _, _, pages in
                Unmanaged<WALHookBox>.fromOpaque(context!).takeUnretainedValue().callback(Int(pages))
                return SQLITE_OK
            }, Unmanaged.passUnretained(box).toOpaque())
    }
}

private final class WALHookBox {
    let callback: (Int) -> Void
    init(_ callback: @escaping (Int) -> Void) { self.callback = callback }
}

public enum SQLValue: Sendable, Equatable {
    case null
    case int(Int64)
    case double(Double)
    case text(String)
    case blob([UInt8])
}

extension SQLValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByNilLiteral {
    public init(stringLiteral value: String) { self = .text(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(nilLiteral: ()) { self = .null }
    public init(_ text: String?) { self = text.map { .text($0) } ?? .null }
    public init(_ int: Int64?) { self = int.map { .int($0) } ?? .null }
}

/// A prepared statement; owned by its Database.
public final class Statement {
    let handle: OpaquePointer
    unowned let database: Database
    let sql: String

    init(database: Database, sql: String) throws(SQLiteError) {
        var stmt: OpaquePointer?
        let rc = sqlite3_prepare_v3(database.handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &stmt, nil)
        guard rc == SQLITE_OK, let stmt else { throw database.error(rc, sql: sql) }
        handle = stmt
        self.database = database
        self.sql = sql
    }

    deinit { sqlite3_finalize(handle) }

    /// Ends the statement's current run. A stepped statement that is not reset keeps
    /// its read transaction open, pinning the connection to an old snapshot.
    public func reset() {
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
    }

    public func bind(_ values: [SQLValue]) throws(SQLiteError) {
        for (i, value) in values.enumerated() { try bind(value, at: Int32(i + 1)) }
    }

    public func bind(_ value: SQLValue, at index: Int32) throws(SQLiteError) {
        let rc: Int32
        switch value {
        case .null: rc = sqlite3_bind_null(handle, index)
        case .int(let i): rc = sqlite3_bind_int64(handle, index, i)
        case .double(let d): rc = sqlite3_bind_double(handle, index, d)
        case .text(var s):
            rc = s.withUTF8 { utf8 in
                UnsafeRawBufferPointer(utf8).withMemoryRebound(to: CChar.self) {
                    gw_sqlite3_bind_text_transient(handle, index, $0.baseAddress ?? Statement.empty, Int32($0.count))
                }
            }
        case .blob(let bytes):
            rc = bytes.withUnsafeBytes { raw in
                gw_sqlite3_bind_blob_transient(handle, index, raw.baseAddress ?? Statement.emptyRaw, Int32(raw.count))
            }
        }
        guard rc == SQLITE_OK else { throw database.error(rc, sql: sql) }
    }

    // Zero-length values still need a non-NULL pointer, or SQLite binds NULL.
    nonisolated(unsafe) private static let emptyStorage: UnsafeMutablePointer<CChar> = {
        let p = UnsafeMutablePointer<CChar>.allocate(capacity: 1)
        p.initialize(to: 0)
        return p
    }()
    nonisolated(unsafe) static let empty = UnsafePointer(emptyStorage)
    nonisolated(unsafe) static let emptyRaw = UnsafeRawPointer(emptyStorage)

    /// Binds raw bytes as a blob without an intermediate array.
    public func bindBlob(_ raw: UnsafeRawBufferPointer, at index: Int32) throws(SQLiteError) {
        let rc = gw_sqlite3_bind_blob_transient(
            handle, index, raw.baseAddress ?? Statement.emptyRaw, Int32(raw.count))
        guard rc == SQLITE_OK else { throw database.error(rc, sql: sql) }
    }

    /// Steps once: true while a row is available, false when done.
    @discardableResult
    public func step() throws(SQLiteError) -> Bool {
        let rc = sqlite3_step(handle)
        switch rc {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default: throw database.error(rc, sql: sql)
        }
    }

    /// Binds, runs to completion, and returns the number of changed rows.
    @discardableResult
    public func run(_ values: [SQLValue] = []) throws(SQLiteError) -> Int {
        defer { reset() }
        try bind(values)
        while try step() {}
        return database.changes
    }

    public func isNull(_ column: Int32) -> Bool { sqlite3_column_type(handle, column) == SQLITE_NULL }
    public func int(_ column: Int32) -> Int64 { sqlite3_column_int64(handle, column) }
    public func double(_ column: Int32) -> Double { sqlite3_column_double(handle, column) }
    public func text(_ column: Int32) -> String? {
        guard let p = sqlite3_column_text(handle, column) else { return nil }
        let n = Int(sqlite3_column_bytes(handle, column))
        return String(decoding: UnsafeBufferPointer(start: p, count: n), as: UTF8.self)
    }
    public func blob(_ column: Int32) -> [UInt8] {
        let n = Int(sqlite3_column_bytes(handle, column))
        guard n > 0, let p = sqlite3_column_blob(handle, column) else { return [] }
        return Array(UnsafeRawBufferPointer(start: p, count: n))
    }
    public func optionalInt(_ column: Int32) -> Int64? { isNull(column) ? nil : int(column) }
}

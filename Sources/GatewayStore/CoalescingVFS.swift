private import CSQLite
import Foundation
import Synchronization

/// A SQLite VFS that wraps the default one and merges contiguous writes.
///
/// SQLite appends a WAL frame with two `pwrite`s, its 24-byte header and then its
/// page, so a commit of N pages costs 2N system calls; a checkpoint writes each page
/// of the database file with one more. On the writer these calls were the largest
/// single cost per webhook (docs/BENCHMARKS.md). Files opened through this VFS keep
/// a buffer of contiguous pending bytes instead and write it with one call:
///
/// - a WAL file is flushed as soon as the page of a commit frame (a frame header
///   whose "database size" field is non-zero) has been buffered, inside that
///   `xWrite`: the commit's frames are in the file before SQLite publishes the commit
///   in the WAL index, and a failed write fails the commit, as without the buffer;
/// - the main database file (written by checkpoints, pages in ascending order) is
///   flushed by `xSync`, which every checkpoint calls before it records its progress
///   (this VFS is only for connections with `synchronous` NORMAL or FULL);
/// - any other call on a file (read, size, truncate, sync, lock, close, ...) first
///   flushes that file, and any shared-memory lock or barrier on its database flushes
///   every file of the database (on every connection of this VFS), so nothing SQLite
///   or another connection can observe depends on bytes still in memory.
///
/// Everything else is the default VFS's: locking, shared memory and file formats are
/// unchanged, so connections on this VFS and on the default one share a database.
/// Other files (temporary files, rollback journals) pass through unbuffered.
enum CoalescingVFS {
    static let name = "gatewayd-coalescing"
    /// Bytes buffered per file before a write is forced.
    static let capacity = 1 << 20
    /// Largest single write handed to the default VFS.
    static let maxWrite = 64 * 1024
    /// Writes handed to the default VFS so far for the WAL and main file of the database
    /// at `path`, while one of its files is open through this VFS (for tests).
    static func writesIssued(database path: String) -> Int {
        FileGroup.existing(path)?.writes.load(ordering: .relaxed) ?? 0
    }

    /// Registers the VFS (once, not as the default) and returns its name.
    static func registeredName() -> String {
        _ = registration
        return name
    }

    nonisolated(unsafe) private static let registration: UnsafeMutablePointer<sqlite3_vfs> = {
        guard let base = sqlite3_vfs_find(nil) else { fatalError("SQLite has no default VFS") }
        let vfs = UnsafeMutablePointer<sqlite3_vfs>.allocate(capacity: 1)
        vfs.initialize(to: base.pointee)
        vfs.pointee.szOsFile = Int32(FileSlot.realOffset) + base.pointee.szOsFile
        vfs.pointee.zName = UnsafePointer(strdup(name))
        vfs.pointee.pNext = nil
        vfs.pointee.pAppData = UnsafeMutableRawPointer(base)
        vfs.pointee.xOpen = { vfs, name, file, flags, outFlags in
            CoalescingVFS.open(vfs!, name, file!, flags, outFlags)
        }
        let rc = sqlite3_vfs_register(vfs, 0)
        precondition(rc == SQLITE_OK, "sqlite3_vfs_register failed: \(rc)")
        return vfs
    }()

    private static func open(
        _ vfs: UnsafeMutablePointer<sqlite3_vfs>, _ name: UnsafePointer<CChar>?,
        _ file: UnsafeMutablePointer<sqlite3_file>,
        _ flags: Int32, _ outFlags: UnsafeMutablePointer<Int32>?
    ) -> Int32 {
        let base = vfs.pointee.pAppData.assumingMemoryBound(to: sqlite3_vfs.self)
        let real = FileSlot.real(file)
        file.pointee.pMethods = nil
        let rc = base.pointee.xOpen(base, name, real, flags, outFlags)
        guard rc == SQLITE_OK, let realMethods = real.pointee.pMethods else { return rc }
        let kind: CoalescedFile.Kind
        var groupPath: String?
        if flags & SQLITE_OPEN_WAL != 0, let name {
            kind = .wal
            let path = String(cString: name)
            groupPath = path.hasSuffix("-wal") ? String(path.dropLast(4)) : path
        } else if flags & SQLITE_OPEN_MAIN_DB != 0, let name {
            kind = .mainDB
            groupPath = String(cString: name)
        } else {
            kind = .passThrough
        }
        let state = CoalescedFile(real: real, kind: kind)
        if let groupPath { state.group = FileGroup.join(groupPath, state) }
        FileSlot.setState(file, state)
        file.pointee.pMethods = realMethods.pointee.iVersion >= 3 ? methodsV3 : methodsV2
        return SQLITE_OK
    }

    nonisolated(unsafe) private static let methodsV3: UnsafePointer<sqlite3_io_methods> = makeMethods(version: 3)
    nonisolated(unsafe) private static let methodsV2: UnsafePointer<sqlite3_io_methods> = makeMethods(version: 2)

    private static func makeMethods(version: Int32) -> UnsafePointer<sqlite3_io_methods> {
        var m = sqlite3_io_methods()
        m.iVersion = version
        m.xClose = { file in
            let slot = file!
            let state = FileSlot.state(slot)
            let rc = state.close()
            let closed = FileSlot.real(slot).pointee.pMethods.pointee.xClose(FileSlot.real(slot))
            state.group?.remove(state)
            FileSlot.release(slot)
            return rc != SQLITE_OK ? rc : closed
        }
        m.xRead = { file, buffer, amount, offset in
            FileSlot.passThrough(file!) { real in real.pointee.pMethods.pointee.xRead(real, buffer, amount, offset) }
        }
        m.xWrite = { file, data, amount, offset in
            FileSlot.state(file!).write(data!, Int(amount), offset)
        }
        m.xTruncate = { file, size in
            FileSlot.passThrough(file!) { real in real.pointee.pMethods.pointee.xTruncate(real, size) }
        }
        m.xSync = { file, flags in
            FileSlot.passThrough(file!) { real in real.pointee.pMethods.pointee.xSync(real, flags) }
        }
        m.xFileSize = { file, size in
            FileSlot.passThrough(file!) { real in real.pointee.pMethods.pointee.xFileSize(real, size) }
        }
        m.xLock = { file, level in
            FileSlot.passThrough(file!) { real in real.pointee.pMethods.pointee.xLock(real, level) }
        }
        m.xUnlock = { file, level in
            FileSlot.passThrough(file!) { real in real.pointee.pMethods.pointee.xUnlock(real, level) }
        }
        m.xCheckReservedLock = { file, out in
            FileSlot.passThrough(file!) { real in real.pointee.pMethods.pointee.xCheckReservedLock(real, out) }
        }
        m.xFileControl = { file, op, argument in
            FileSlot.passThrough(file!) { real in real.pointee.pMethods.pointee.xFileControl(real, op, argument) }
        }
        m.xSectorSize = { file in
            let real = FileSlot.real(file!)
            return real.pointee.pMethods.pointee.xSectorSize(real)
        }
        m.xDeviceCharacteristics = { file in
            let real = FileSlot.real(file!)
            return real.pointee.pMethods.pointee.xDeviceCharacteristics(real)
        }
        // Shared memory belongs to the database file; a lock or barrier there is where
        // other connections can start to look at the files' bytes.
        m.xShmMap = { file, region, size, extend, pointer in
            let real = FileSlot.real(file!)
            return real.pointee.pMethods.pointee.xShmMap(real, region, size, extend, pointer)
        }
        m.xShmLock = { file, offset, count, flags in
            let slot = file!
            FileSlot.state(slot).group?.flushAll(inBarrier: false)
            let real = FileSlot.real(slot)
            return real.pointee.pMethods.pointee.xShmLock!(real, offset, count, flags)
        }
        m.xShmBarrier = { file in
            let slot = file!
            FileSlot.state(slot).group?.flushAll(inBarrier: true)
            let real = FileSlot.real(slot)
            real.pointee.pMethods.pointee.xShmBarrier(real)
        }
        m.xShmUnmap = { file, delete in
            let real = FileSlot.real(file!)
            return real.pointee.pMethods.pointee.xShmUnmap(real, delete)
        }
        if version >= 3 {
            m.xFetch = { file, offset, amount, pointer in
                FileSlot.passThrough(file!) { real in
                    real.pointee.pMethods.pointee.xFetch(real, offset, amount, pointer)
                }
            }
            m.xUnfetch = { file, offset, pointer in
                let real = FileSlot.real(file!)
                return real.pointee.pMethods.pointee.xUnfetch(real, offset, pointer)
            }
        }
        let pointer = UnsafeMutablePointer<sqlite3_io_methods>.allocate(capacity: 1)
        pointer.initialize(to: m)
        return UnsafePointer(pointer)
    }
}

/// The memory SQLite allocates for one open file of this VFS: the `sqlite3_file`
/// header (our methods), a retained pointer to the file's state, then the default
/// VFS's own file object.
private enum FileSlot {
    static let stateOffset = MemoryLayout<sqlite3_file>.stride
    static let realOffset = (stateOffset + MemoryLayout<UnsafeRawPointer>.stride + 15) & ~15

    static func real(_ file: UnsafeMutablePointer<sqlite3_file>) -> UnsafeMutablePointer<sqlite3_file> {
        (UnsafeMutableRawPointer(file) + realOffset).assumingMemoryBound(to: sqlite3_file.self)
    }

    static func setState(_ file: UnsafeMutablePointer<sqlite3_file>, _ state: CoalescedFile) {
        (UnsafeMutableRawPointer(file) + stateOffset).storeBytes(
            of: Unmanaged.passRetained(state).toOpaque(), as: UnsafeMutableRawPointer.self)
    }

    static func state(_ file: UnsafeMutablePointer<sqlite3_file>) -> CoalescedFile {
        let raw = (UnsafeMutableRawPointer(file) + stateOffset).load(as: UnsafeMutableRawPointer.self)
        return Unmanaged<CoalescedFile>.fromOpaque(raw).takeUnretainedValue()
    }

    static func release(_ file: UnsafeMutablePointer<sqlite3_file>) {
        let raw = (UnsafeMutableRawPointer(file) + stateOffset).load(as: UnsafeMutableRawPointer.self)
        Unmanaged<CoalescedFile>.fromOpaque(raw).release()
    }

    /// Flushes the file's database group, then runs `call` on the default VFS's file.
    @inline(__always)
    static func passThrough(
        _ file: UnsafeMutablePointer<sqlite3_file>, _ call: (UnsafeMutablePointer<sqlite3_file>) -> Int32
    ) -> Int32 {
        let rc = state(file).prepareAccess()
        guard rc == SQLITE_OK else { return rc }
        return call(real(file))
    }
}

/// The files of one database (main file and WAL, on every connection of this VFS):
/// a shared-memory lock or barrier flushes them all.
private final class FileGroup: @unchecked Sendable {
    private static let registryLock = NSLock()
    nonisolated(unsafe) private static var registry: [String: FileGroup] = [:]

    private let lock = NSLock()
    private var files: [CoalescedFile] = []
    let path: String
    /// Writes handed to the default VFS for this database's files.
    let writes = Atomic<Int>(0)

    static func existing(_ path: String) -> FileGroup? { registryLock.withLock { registry[path] } }

    private init(path: String) { self.path = path }

    /// Adds `file` to the group of `path` (made if needed) and returns the group.
    static func join(_ path: String, _ file: CoalescedFile) -> FileGroup {
        registryLock.withLock {
            let group = registry[path] ?? FileGroup(path: path)
            registry[path] = group
            group.lock.withLock { group.files.append(file) }
            return group
        }
    }

    func remove(_ file: CoalescedFile) {
        Self.registryLock.withLock {
            let empty = lock.withLock {
                files.removeAll { $0 === file }
                return files.isEmpty
            }
            if empty, Self.registry[path] === self { Self.registry[path] = nil }
        }
    }

    /// Flushes every file of the group. A file whose flush fails gets the
    /// error at its own connection's next call (see ``CoalescedFile/pendingError``).
    ///
    /// `inBarrier`: SQLite is publishing a commit in the WAL index. The writer's WAL
    /// buffer is always empty here (it is flushed with the commit frame); if a WAL write
    /// still failed now, readers would be shown frames that are not in the file, so the
    /// process stops instead, before the commit is acknowledged. On restart SQLite
    /// rebuilds the index from the frames actually in the file.
    func flushAll(inBarrier: Bool) {
        let members = lock.withLock { files }
        for file in members {
            let rc = file.flushForOther()
            if rc != SQLITE_OK, inBarrier, file.kind == .wal {
                fatalError("SQLite WAL write failed (code \(rc)) while a commit was being published")
            }
        }
    }
}

/// One open file of the VFS and its pending bytes.
private final class CoalescedFile: @unchecked Sendable {
    enum Kind { case wal, mainDB, passThrough }

    let real: UnsafeMutablePointer<sqlite3_file>
    let kind: Kind
    /// Set once, at open, before SQLite can use the file.
    var group: FileGroup?
    private let lock = NSLock()
    // Guarded by `lock`.
    private var buffer: UnsafeMutableRawPointer?
    private var start: Int64 = 0
    private var count = 0
    /// The last write was the header of a commit frame: the next one (its page) ends the commit.
    private var commitFramePending = false
    /// A flush of this file's bytes that failed in a call on another file: the bytes are
    /// lost, so the next call on this file (by its own connection, inside the transaction
    /// or checkpoint that wrote them, which the error then abandons) fails with it.
    private var pendingError: Int32 = SQLITE_OK
    private var closed = false

    init(real: UnsafeMutablePointer<sqlite3_file>, kind: Kind) {
        self.real = real
        self.kind = kind
    }

    deinit { buffer?.deallocate() }

    func write(_ data: UnsafeRawPointer, _ amount: Int, _ offset: Int64) -> Int32 {
        guard kind != .passThrough else { return realWrite(data, amount, offset) }
        lock.lock()
        defer { lock.unlock() }
        if pendingError != SQLITE_OK { return takePendingError() }
        if count > 0, offset == start + Int64(count), count + amount <= CoalescingVFS.capacity {
            (buffer! + count).copyMemory(from: data, byteCount: amount)
            count += amount
        } else {
            let rc = flushLocked()
            guard rc == SQLITE_OK else { return rc }
            if amount >= CoalescingVFS.capacity {
                let written = realWrite(data, amount, offset)
                guard written == SQLITE_OK else { return written }
            } else {
                if buffer == nil {
                    buffer = UnsafeMutableRawPointer.allocate(byteCount: CoalescingVFS.capacity, alignment: 16)
                }
                buffer!.copyMemory(from: data, byteCount: amount)
                start = offset
                count = amount
            }
        }
        guard kind == .wal else { return SQLITE_OK }
        if commitFramePending {
            commitFramePending = false
            return flushLocked()
        }
        // A frame header: 24 bytes after the 32-byte WAL header; bytes 4..<8 are the
        // database size in pages for the last frame of a commit, zero otherwise.
        if amount == 24, offset >= 32 {
            let bytes = data.assumingMemoryBound(to: UInt8.self)
            commitFramePending = bytes[4] | bytes[5] | bytes[6] | bytes[7] != 0
        }
        return SQLITE_OK
    }

    /// Before any other call on this file: its own bytes are written (its error, or an
    /// earlier one, goes to the caller). The other files of the database keep theirs: what
    /// one connection reads from a file never depends on bytes pending for another file
    /// (a checkpoint reads WAL frames between the database pages it writes), and other
    /// connections only look after a shared-memory lock or barrier, which flush them all.
    func prepareAccess() -> Int32 {
        guard kind != .passThrough else { return SQLITE_OK }
        lock.lock()
        defer { lock.unlock() }
        if pendingError != SQLITE_OK { return takePendingError() }
        return flushLocked()
    }

    /// Flushes for the last time: after this the default VFS's file is closed and its
    /// memory freed, and a group flush already under way on another thread (which may
    /// still hold this object) must not touch it.
    func close() -> Int32 {
        guard kind != .passThrough else { return SQLITE_OK }
        lock.lock()
        defer { lock.unlock() }
        let rc = pendingError != SQLITE_OK ? takePendingError() : flushLocked()
        closed = true
        return rc
    }

    /// A flush on behalf of a call on another file.
    func flushForOther() -> Int32 {
        guard kind != .passThrough else { return SQLITE_OK }
        lock.lock()
        defer { lock.unlock() }
        guard !closed else { return SQLITE_OK }
        let rc = flushLocked()
        if rc != SQLITE_OK, pendingError == SQLITE_OK { pendingError = rc }
        return rc
    }

    private func takePendingError() -> Int32 {
        let rc = pendingError
        pendingError = SQLITE_OK
        return rc
    }

    /// Writes the buffered bytes. On failure they are dropped and the error returned.
    private func flushLocked() -> Int32 {
        guard count > 0, let buffer else { return SQLITE_OK }
        let rc = realWrite(buffer, count, start)
        count = 0
        commitFramePending = false
        return rc
    }

    private func realWrite(_ data: UnsafeRawPointer, _ amount: Int, _ offset: Int64) -> Int32 {
        if kind != .passThrough { group?.writes.add(1, ordering: .relaxed) }
        // The default VFS writes at most 128 KiB per call (it masks the length with
        // 0x1FFFF): longer runs go in pieces.
        var done = 0
        while done < amount {
            let piece = min(amount - done, CoalescingVFS.maxWrite)
            let rc = real.pointee.pMethods.pointee.xWrite(real, data + done, Int32(piece), offset + Int64(done))
            guard rc == SQLITE_OK else { return rc }
            done += piece
        }
        return SQLITE_OK
    }
}

import ArgumentParser
import Foundation
import GatewayCore
import GatewayStore

/// `gatewayd backup --to FILE`: an online, consistent copy of the SQLite file.
struct BackupCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Copy the database into a new file while the daemon runs (VACUUM INTO).",
        discussion: """
            The copy is one snapshot read on a read-only connection: the daemon keeps ingesting and pushing. \
            It is written next to FILE under a temporary name, synced, checked with PRAGMA integrity_check, and \
            only then linked to FILE, which must not exist (exit 2 if it does). Prints the path, size, session \
            count and duration. Exit 3 if the copy fails or does not pass the check.
            """)
    @OptionGroup var options: ConfigOption
    @Option(name: .long, help: "The new file to write (must not exist).") var to: String

    func run() throws {
        let config = try options.load()
        let destination = to
        let manager = FileManager.default
        guard !manager.fileExists(atPath: destination) else {
            throw OperatorCLI.fail("\(destination) already exists; choose a new file", OperatorCLI.usage)
        }
        let directory = (destination as NSString).deletingLastPathComponent
        var isDirectory: ObjCBool = false
        guard manager.fileExists(atPath: directory.isEmpty ? "." : directory, isDirectory: &isDirectory),
            isDirectory.boolValue
        else { throw OperatorCLI.fail("no directory \(directory) for \(destination)", OperatorCLI.usage) }
        let db = try OperatorCLI.open(config, readOnly: true)

        let started = WallClock.monotonicNanos()
        let temporary = "\(destination).partial-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { unlink(temporary) }
        try OperatorCLI.run("the copy") {
            try OperatorStore.backup(db, to: temporary)
            try Self.sync(temporary)
        }
        let check = try OperatorCLI.run("integrity_check of the copy") {
            try OperatorStore.integrityCheck(path: temporary)
        }
        guard check == ["ok"] else {
            throw OperatorCLI.fail(
                "the copy does not pass integrity_check: \(check.prefix(5).joined(separator: "; "))",
                OperatorCLI.failed)
        }
        let sessions = try OperatorCLI.run("counting the copy's sessions") {
            try OperatorStore.sessionCount(path: temporary)
        }
        // link() never replaces: a file that appeared at the destination meanwhile stays.
        if link(temporary, destination) != 0 {
            let code = errno
            if code == EEXIST {
                throw OperatorCLI.fail("\(destination) already exists; choose a new file", OperatorCLI.usage)
            }
            throw OperatorCLI.fail(
                "cannot create \(destination): \(String(cString: strerror(code)))", OperatorCLI.failed)
        }
        try? Self.sync(directory.isEmpty ? "." : directory)
        let seconds = Double(WallClock.monotonicNanos() - started) / 1e9
        let size = (try? manager.attributesOfItem(atPath: destination)[.size] as? Int) ?? 0
        print(
            "backup \(destination): \(size) bytes, \(sessions) sessions, "
                + "\(String(format: "%.3f", seconds)) s, integrity_check ok")
    }

    /// fsync of a file or a directory.
    static func sync(_ path: String) throws {
        let fd = Foundation.open(path, O_RDONLY)
        guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
    }
}

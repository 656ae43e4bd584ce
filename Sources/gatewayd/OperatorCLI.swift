import ArgumentParser
import Foundation
import GatewayConfig
import GatewayCore
import GatewayStore

/// Shared by the operator commands (`sessions`, `connections`, `backup`).
///
/// Exit codes: 0 done; 1 not found or nothing matched; 2 usage or config error (also
/// a missing or unmigrated database, an existing backup destination); 3 the operation
/// failed (the database stayed busy past the 5 s timeout, an I/O error, a backup
/// that does not pass `integrity_check`). Errors go to stderr, results to stdout.
enum OperatorCLI {
    static let notFound: Int32 = 1
    static let usage: Int32 = 2
    static let failed: Int32 = 3

    static func warn(_ message: String) {
        FileHandle.standardError.write(Data("gatewayd: \(message)\n".utf8))
    }

    /// Prints `message` on stderr and returns the exit code to throw.
    static func fail(_ message: String, _ code: Int32) -> ExitCode {
        warn(message)
        return ExitCode(code)
    }

    /// Opens the configured database for the CLI (never creates it).
    static func open(_ config: GatewayConfig, readOnly: Bool) throws -> Database {
        do {
            return try OperatorStore.open(path: config.storagePath, readOnly: readOnly)
        } catch let error as OperatorStoreError {
            throw fail("\(error)", usage)
        } catch {
            throw fail("cannot open \(config.storagePath): \(error)", failed)
        }
    }

    /// Runs a database step; a failure (busy past the timeout, I/O) exits 3.
    static func run<T>(_ what: String, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let exit as ExitCode {
            throw exit
        } catch {
            throw fail("\(what) failed: \(error)", failed)
        }
    }

    static func printJSON(_ value: JSONValue) {
        print(value.serialized)
    }

    static func time(_ millis: Int64?) -> String {
        millis.map { ISODateTime.format(epochMillis: $0) } ?? "-"
    }

    /// Left-aligned columns, two spaces apart.
    static func table(_ header: [String], _ rows: [[String]]) -> String {
        var widths = header.map(\.count)
        for row in rows {
            for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) }
        }
        func line(_ cells: [String]) -> String {
            var out = ""
            for (i, cell) in cells.enumerated() {
                if i == cells.count - 1 {
                    out += cell
                } else {
                    out += cell + String(repeating: " ", count: widths[i] - cell.count + 2)
                }
            }
            return out
        }
        return ([line(header)] + rows.map(line)).joined(separator: "\n")
    }

    static func parseStatus(_ text: String?) throws -> ExportStatus? {
        guard let text else { return nil }
        guard let status = ExportStatus(rawValue: text.uppercased()) else {
            throw ValidationError(
                "--status: expected one of \(ExportStatus.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return status
    }

    static func parseProvider(_ text: String?, option: String = "--provider") throws -> ProviderKind? {
        guard let text else { return nil }
        guard let provider = ProviderKind(slug: text) else {
            throw ValidationError("\(option): expected garmin or wahoo")
        }
        return provider
    }
}

import Foundation
import GatewayCore
import Logging

/// One line per event on stderr, as logfmt (`ts=… level=info msg="…" key=value`)
/// or JSON. Callers never put tokens, secrets, codes or signatures in messages or
/// metadata; this handler has no way to know them, so that rule lives at call sites.
public struct LineLogHandler: LogHandler {
    public enum Format: Sendable { case logfmt, json }

    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    let label: String
    let format: Format

    public init(label: String, format: Format, level: Logger.Level) {
        self.label = label
        self.format = format
        self.logLevel = level
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let level = event.level
        let message = event.message
        let explicit = event.metadata
        var fields: [(String, String)] = [
            ("ts", ISODateTime.format(epochMillis: WallClock.nowMillis())), ("level", level.rawValue),
            ("msg", message.description),
        ]
        let merged = metadata.merging(explicit ?? [:]) { $1 }
        for key in merged.keys.sorted() { fields.append((key, "\(merged[key]!)")) }
        var out: String
        switch format {
        case .logfmt:
            out = fields.map { key, value in "\(key)=\(Self.logfmtValue(value))" }.joined(separator: " ")
        case .json:
            out = JSONValue.object(JSONObject(fields.map { (key: $0.0, value: JSONValue.string($0.1)) })).serialized
        }
        out += "\n"
        FileHandle.standardError.write(Data(out.utf8))
    }

    static func logfmtValue(_ value: String) -> String {
        // Scalars, not Characters: "\r\n" is one Character and must not end the line unquoted.
        // Quoted values are JSON strings, with every control character escaped.
        let needsQuotes =
            value.isEmpty
            || value.unicodeScalars.contains { scalar in
                scalar.value <= 0x20 || scalar.value == 0x7F || scalar == "=" || scalar == "\""
                    || scalar.properties.isWhitespace || scalar.properties.generalCategory == .control
            }
        guard needsQuotes else { return value }
        var quoted = ""
        JSONValue.writeString(value, into: &quoted)
        return quoted
    }
}

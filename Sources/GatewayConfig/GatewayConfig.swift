import Foundation
import GatewayCore
import TOMLKit

/// A configuration problem: which key, and why. `check-config` and `serve` print it
/// and exit non-zero.
public struct ConfigError: Error, CustomStringConvertible, Equatable {
    public let key: String
    public let reason: String
    public var description: String { key.isEmpty ? reason : "\(key): \(reason)" }
}

public struct ProviderConfig: Sendable, Equatable {
    public var enabled: Bool
    public var clientID: String
    public var clientSecret: String
    public var authorizeURL: String
    public var tokenURL: String
    public var apiBaseURL: String
    public var rateLimitPerMinute: Int
    public var maxConcurrency: Int
    public var caFile: String
}

/// The effective configuration: file, then environment, then validation.
public struct GatewayConfig: Sendable, Equatable {
    public var values: [String: ConfigValue]

    public var listenHost: String
    public var listenPort: Int
    public var publicURL: String
    public var maxBodyBytes: Int
    public var maxHeaderBytes: Int
    public var ioTimeoutSeconds: Int
    public var requestTimeoutSeconds: Int
    public var maxConnections: Int
    public var storagePath: String
    public var webhookSecrets: [String]
    public var apiKeys: [String]
    public var callbackURL: String
    public var timestampToleranceSeconds: Int
    public var pushWorkers: Int
    public var maxAttempts: Int
    public var backoffBaseMillis: Int
    public var backoffMaxMillis: Int
    public var refreshSkewSeconds: Int
    public var requestTimeoutMillis: Int
    public var tokenKey: [UInt8]
    public var previousTokenKeys: [[UInt8]]
    public var logFormat: String
    public var logLevel: String
    public var garmin: ProviderConfig
    public var wahoo: ProviderConfig

    /// Loads `path` (nil: defaults only) and applies `environment` overrides.
    public static func load(path: String?, environment: [String: String]) throws(ConfigError) -> GatewayConfig {
        var text = ""
        if let path {
            do {
                text = try String(contentsOfFile: path, encoding: .utf8)
            } catch {
                throw ConfigError(key: "", reason: "cannot read config file \(path): \(error.localizedDescription)")
            }
        }
        return try parse(toml: text, environment: environment, baseDirectory: nil)
    }

    public static func parse(toml: String, environment: [String: String], baseDirectory: String?)
        throws(ConfigError) -> GatewayConfig
    {
        let table: TOMLTable
        do {
            table = try TOMLTable(string: toml)
        } catch let error as TOMLParseError {
            throw ConfigError(
                key: "", reason: "invalid TOML at line \(error.source.begin.line): \(error.description)")
        } catch {
            throw ConfigError(key: "", reason: "invalid TOML: \(error)")
        }
        var values: [String: ConfigValue] = [:]
        for key in ConfigKey.all { values[key.path] = key.defaultValue }
        try readTable(table, prefix: "", into: &values)
        for key in ConfigKey.all {
            if let raw = environment[key.environmentName] {
                values[key.path] = try parseEnvironment(raw, for: key)
            }
        }
        for key in ConfigKey.all where key.secret {
            values[key.path] = try resolveSecretFiles(values[key.path]!, key: key)
        }
        return try GatewayConfig(values: values)
    }

    private static func readTable(_ table: TOMLTable, prefix: String, into values: inout [String: ConfigValue])
        throws(ConfigError)
    {
        let byPath = Dictionary(uniqueKeysWithValues: ConfigKey.all.map { ($0.path, $0) })
        let sections = Set(ConfigKey.all.map(\.section))
        for name in table.keys {
            guard let value = table[name] else { continue }
            let path = prefix.isEmpty ? name : "\(prefix).\(name)"
            if value.type == .table, let sub = value.table {
                guard sections.contains(path) || sections.contains(where: { $0.hasPrefix(path + ".") }) else {
                    throw ConfigError(key: path, reason: "unknown section")
                }
                try readTable(sub, prefix: path, into: &values)
                continue
            }
            guard let key = byPath[path] else { throw ConfigError(key: path, reason: "unknown key") }
            values[path] = try convert(value, for: key)
        }
    }

    private static func convert(_ value: any TOMLValueConvertible, for key: ConfigKey) throws(ConfigError)
        -> ConfigValue
    {
        switch key.kind {
        case .string:
            guard let s = value.string else { throw ConfigError(key: key.path, reason: "expected a string") }
            return .string(s)
        case .int:
            guard let i = value.int else { throw ConfigError(key: key.path, reason: "expected an integer") }
            return .int(i)
        case .bool:
            guard let b = value.bool else { throw ConfigError(key: key.path, reason: "expected true or false") }
            return .bool(b)
        case .stringList:
            guard let array = value.array else {
                throw ConfigError(key: key.path, reason: "expected an array of strings")
            }
            var list: [String] = []
            for element in array {
                guard let s = element.string else {
                    throw ConfigError(key: key.path, reason: "expected an array of strings")
                }
                list.append(s)
            }
            return .stringList(list)
        }
    }

    private static func parseEnvironment(_ raw: String, for key: ConfigKey) throws(ConfigError) -> ConfigValue {
        let location = "\(key.path) (from \(key.environmentName))"
        switch key.kind {
        case .string: return .string(raw)
        case .int:
            guard let i = Int(raw.trimmingCharacters(in: .whitespaces)) else {
                throw ConfigError(key: location, reason: "expected an integer")
            }
            return .int(i)
        case .bool:
            switch raw.lowercased() {
            case "true", "1", "yes", "on": return .bool(true)
            case "false", "0", "no", "off": return .bool(false)
            default: throw ConfigError(key: location, reason: "expected true or false")
            }
        case .stringList:
            return .stringList(
                raw.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty })
        }
    }

    /// A secret written as `file:/path` is read from that file (trailing newline removed).
    private static func resolveSecretFiles(_ value: ConfigValue, key: ConfigKey) throws(ConfigError) -> ConfigValue {
        func resolve(_ s: String) throws(ConfigError) -> String {
            guard s.hasPrefix("file:") else { return s }
            let path = String(s.dropFirst(5))
            do {
                return try String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            } catch {
                throw ConfigError(key: key.path, reason: "cannot read secret file \(path)")
            }
        }
        switch value {
        case .string(let s): return .string(try resolve(s))
        case .stringList(let list):
            var out: [String] = []
            for s in list { out.append(try resolve(s)) }
            return .stringList(out)
        default: return value
        }
    }

    init(values: [String: ConfigValue]) throws(ConfigError) {
        self.values = values
        func string(_ path: String) -> String {
            if case .string(let s) = values[path] { return s }
            return ""
        }
        func int(_ path: String, min: Int, max: Int = Int.max) throws(ConfigError) -> Int {
            guard case .int(let i) = values[path] else { return 0 }
            guard i >= min, i <= max else {
                throw ConfigError(key: path, reason: max == Int.max ? "must be >= \(min)" : "must be \(min)...\(max)")
            }
            return i
        }
        func bool(_ path: String) -> Bool {
            if case .bool(let b) = values[path] { return b }
            return false
        }
        func list(_ path: String) -> [String] {
            if case .stringList(let l) = values[path] { return l }
            return []
        }
        func url(_ path: String, optional: Bool = false) throws(ConfigError) -> String {
            let s = string(path)
            if optional && s.isEmpty { return s }
            guard let u = URL(string: s), let scheme = u.scheme, scheme == "http" || scheme == "https", u.host != nil
            else { throw ConfigError(key: path, reason: "expected an http(s) URL") }
            return s.hasSuffix("/") ? String(s.dropLast()) : s
        }

        let listen = string("server.listen")
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]),
            (0...65535).contains(port), colon > listen.startIndex
        else { throw ConfigError(key: "server.listen", reason: "expected host:port") }
        var host = String(listen[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        listenHost = host
        listenPort = port
        publicURL = try url("server.public_url")
        maxBodyBytes = try int("server.max_body_bytes", min: 1024, max: 256 * 1024 * 1024)
        maxHeaderBytes = try int("server.max_header_bytes", min: 1024, max: 1024 * 1024)
        ioTimeoutSeconds = try int("server.io_timeout_s", min: 1, max: 3600)
        requestTimeoutSeconds = try int("server.request_timeout_s", min: 1, max: 3600)
        maxConnections = try int("server.max_connections", min: 1, max: 1_000_000)
        storagePath = string("storage.path")
        guard !storagePath.isEmpty else { throw ConfigError(key: "storage.path", reason: "must not be empty") }
        webhookSecrets = list("plan_app.webhook_secrets")
        for (i, secret) in webhookSecrets.enumerated() {
            let body = secret.hasPrefix("whsec_") ? secret.dropFirst(6) : Substring(secret)
            guard secret.hasPrefix("whsec_"), let key = Base64.decode(body), key.count >= 16 else {
                throw ConfigError(
                    key: "plan_app.webhook_secrets[\(i)]", reason: "expected whsec_<base64 of at least 16 bytes>")
            }
        }
        apiKeys = list("plan_app.api_keys")
        for (i, key) in apiKeys.enumerated() where key.utf8.count < 16 {
            throw ConfigError(key: "plan_app.api_keys[\(i)]", reason: "must be at least 16 characters")
        }
        callbackURL = try url("plan_app.callback_url", optional: true)
        timestampToleranceSeconds = try int("plan_app.timestamp_tolerance_s", min: 1)
        pushWorkers = try int("push.workers", min: 1, max: 1024)
        maxAttempts = try int("push.max_attempts", min: 1, max: 1000)
        backoffBaseMillis = try int("push.backoff_base_ms", min: 1)
        backoffMaxMillis = try int("push.backoff_max_ms", min: 1)
        guard backoffMaxMillis >= backoffBaseMillis else {
            throw ConfigError(key: "push.backoff_max_ms", reason: "must be >= push.backoff_base_ms")
        }
        refreshSkewSeconds = try int("push.refresh_skew_s", min: 0)
        requestTimeoutMillis = try int("push.request_timeout_ms", min: 100)
        let tokenKeyText = string("security.token_key")
        if tokenKeyText.isEmpty {
            tokenKey = []
        } else {
            guard tokenKeyText.hasPrefix("base64:"), let key = Base64.decode(tokenKeyText.dropFirst(7)), key.count == 32
            else { throw ConfigError(key: "security.token_key", reason: "expected base64:<32 bytes>") }
            tokenKey = key
        }
        previousTokenKeys = []
        for (i, text) in list("security.previous_token_keys").enumerated() {
            guard text.hasPrefix("base64:"), let key = Base64.decode(text.dropFirst(7)), key.count == 32 else {
                throw ConfigError(key: "security.previous_token_keys[\(i)]", reason: "expected base64:<32 bytes>")
            }
            previousTokenKeys.append(key)
        }
        logFormat = string("log.format")
        guard ["logfmt", "json"].contains(logFormat) else {
            throw ConfigError(key: "log.format", reason: "expected logfmt or json")
        }
        logLevel = string("log.level")
        guard ["trace", "debug", "info", "notice", "warning", "error", "critical"].contains(logLevel) else {
            throw ConfigError(key: "log.level", reason: "expected trace, debug, info, notice, warning or error")
        }
        func provider(_ name: String) throws(ConfigError) -> ProviderConfig {
            let s = "providers.\(name)"
            let enabled = bool("\(s).enabled")
            return ProviderConfig(
                enabled: enabled, clientID: string("\(s).client_id"), clientSecret: string("\(s).client_secret"),
                authorizeURL: try url("\(s).authorize_url"), tokenURL: try url("\(s).token_url"),
                apiBaseURL: try url("\(s).api_base_url"),
                rateLimitPerMinute: try int("\(s).rate_limit_per_minute", min: 1),
                maxConcurrency: try int("\(s).max_concurrency", min: 1, max: 1024), caFile: string("\(s).ca_file"))
        }
        garmin = try provider("garmin")
        wahoo = try provider("wahoo")
    }

    /// The effective configuration as TOML, secrets redacted (for `check-config`).
    public func redactedDump() -> String {
        var out = ""
        var section = ""
        for key in ConfigKey.all {
            if key.section != section {
                section = key.section
                out += (out.isEmpty ? "" : "\n") + "[\(section)]\n"
            }
            let value = values[key.path] ?? key.defaultValue
            out += "\(key.name) = \(Self.render(value, secret: key.secret))\n"
        }
        return out
    }

    static func render(_ value: ConfigValue, secret: Bool) -> String {
        func quote(_ s: String) -> String {
            var out = ""
            JSONValue.writeString(s, into: &out)
            return out
        }
        switch value {
        case .string(let s): return secret && !s.isEmpty ? "\"<redacted>\"" : quote(s)
        case .int(let i): return String(i)
        case .bool(let b): return b ? "true" : "false"
        case .stringList(let list):
            return "[" + list.map { secret ? "\"<redacted>\"" : quote($0) }.joined(separator: ", ") + "]"
        }
    }
}

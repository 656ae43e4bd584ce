/// Every configuration key, its type, default and documentation, in one table
/// (pgbouncer's habit): the table drives parsing, environment overrides,
/// `check-config` and the test that keeps `etc/gatewayd.toml` complete.
public struct ConfigKey: Sendable {
    public enum Kind: Sendable, Equatable {
        case string, int, bool, stringList
    }

    /// `server`, `plan_app`, `providers.garmin`...
    public let section: String
    public let name: String
    public let kind: Kind
    public let defaultValue: ConfigValue
    /// Secrets are redacted in `check-config` and logs, and may be given as `file:/path`.
    public let secret: Bool
    /// Reloaded on SIGHUP; other keys need a restart.
    public let reloadable: Bool
    public let doc: String

    public var path: String { "\(section).\(name)" }

    /// `GATEWAYD_<SECTION>_<KEY>`, dots as underscores, upper case.
    public var environmentName: String {
        "GATEWAYD_" + "\(section)_\(name)".replacingOccurrences(of: ".", with: "_").uppercased()
    }
}

public enum ConfigValue: Sendable, Equatable {
    case string(String)
    case int(Int)
    case bool(Bool)
    case stringList([String])
}

extension ConfigKey {
    static func key(
        _ section: String, _ name: String, _ kind: Kind, _ defaultValue: ConfigValue, secret: Bool = false,
        reloadable: Bool = false, _ doc: String
    ) -> ConfigKey {
        ConfigKey(
            section: section, name: name, kind: kind, defaultValue: defaultValue, secret: secret,
            reloadable: reloadable, doc: doc)
    }

    static func providerKeys(_ provider: String, authorize: String, token: String, api: String) -> [ConfigKey] {
        let s = "providers.\(provider)"
        return [
            key(s, "enabled", .bool, .bool(true), "push to this provider and offer its connection"),
            key(s, "client_id", .string, .string(""), "OAuth client id"),
            key(s, "client_secret", .string, .string(""), secret: true, "OAuth client secret"),
            key(s, "authorize_url", .string, .string(authorize), "OAuth authorize endpoint"),
            key(s, "token_url", .string, .string(token), "OAuth token endpoint"),
            key(s, "api_base_url", .string, .string(api), "API base URL"),
            key(s, "rate_limit_per_minute", .int, .int(3000), "provider calls (token calls included) in any 60 s"),
            key(s, "max_concurrency", .int, .int(8), "provider calls in flight at once"),
            key(s, "ca_file", .string, .string(""), "extra trusted CA file (PEM), for self-signed test servers"),
        ]
    }

    public static let all: [ConfigKey] =
        [
            key("server", "listen", .string, .string("127.0.0.1:8080"), "address:port to listen on"),
            key(
                "server", "public_url", .string, .string("http://127.0.0.1:8080"),
                "external base URL; redirect_uri = {public_url}/v1/oauth/{provider}/callback"),
            key("server", "max_body_bytes", .int, .int(1_048_576), "largest accepted request body (413 above)"),
            key("server", "max_header_bytes", .int, .int(16384), "largest request head (request line + headers)"),
            key("server", "io_timeout_s", .int, .int(10), "seconds a connection may stay silent"),
            key(
                "server", "request_timeout_s", .int, .int(60),
                "seconds a connection has for each whole request (slow trickling clients are cut off)"),
            key("server", "max_connections", .int, .int(4096), "open connections at most; accept pauses above"),
            key("storage", "path", .string, .string("var/gatewayd.sqlite"), "SQLite database file"),
            key(
                "plan_app", "webhook_secrets", .stringList, .stringList([]), secret: true, reloadable: true,
                "whsec_ secrets; any verifies, the first signs status callbacks"),
            key(
                "plan_app", "api_keys", .stringList, .stringList([]), secret: true, reloadable: true, "REST bearer keys"
            ),
            key("plan_app", "callback_url", .string, .string(""), "where status changes are POSTed (optional)"),
            key(
                "plan_app", "timestamp_tolerance_s", .int, .int(300), reloadable: true,
                "allowed webhook-timestamp skew, both ways"),
            key("push", "workers", .int, .int(16), "push attempts in flight at once"),
            key("push", "max_attempts", .int, .int(10), "provider attempts per revision, in total"),
            key("push", "backoff_base_ms", .int, .int(1000), "first retry delay (exponential, full jitter)"),
            key("push", "backoff_max_ms", .int, .int(3_600_000), "longest retry delay"),
            key("push", "refresh_skew_s", .int, .int(600), "refresh tokens this long before they expire"),
            key("push", "request_timeout_ms", .int, .int(15000), "total time for one provider call"),
            key(
                "security", "token_key", .string, .string(""), secret: true, reloadable: true,
                "base64:<32 bytes>, AES-256-GCM key for tokens at rest"),
            key(
                "security", "previous_token_keys", .stringList, .stringList([]), secret: true, reloadable: true,
                "older token keys still read; tokens are re-encrypted with token_key on start and SIGHUP"),
            key("log", "format", .string, .string("logfmt"), "logfmt or json"),
            key("log", "level", .string, .string("info"), "trace, debug, info, notice, warning, error"),
        ]
        + providerKeys(
            "garmin", authorize: "https://connect.garmin.com/oauth2Confirm",
            token: "https://diauth.garmin.com/di-oauth2-service/oauth/token", api: "https://apis.garmin.com")
        + providerKeys(
            "wahoo", authorize: "https://api.wahooligan.com/oauth/authorize",
            token: "https://api.wahooligan.com/oauth/token", api: "https://api.wahooligan.com")
}

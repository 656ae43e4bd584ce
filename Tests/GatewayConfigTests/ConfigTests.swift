import Foundation
import Testing

@testable import GatewayConfig

private let secret = "whsec_" + Data((0..<32).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()

@Test func defaultsMatchTheSpec() throws {
    let config = try GatewayConfig.parse(toml: "", environment: [:], baseDirectory: nil)
    #expect(config.listenHost == "127.0.0.1")
    #expect(config.listenPort == 8080)
    #expect(config.maxBodyBytes == 1_048_576)
    #expect(config.timestampToleranceSeconds == 300)
    #expect(config.pushWorkers == 16)
    #expect(config.maxAttempts == 10)
    #expect(config.backoffBaseMillis == 1000)
    #expect(config.backoffMaxMillis == 3_600_000)
    #expect(config.refreshSkewSeconds == 600)
    #expect(config.requestTimeoutMillis == 15000)
    #expect(config.storagePath == "var/gatewayd.sqlite")
    #expect(config.garmin.rateLimitPerMinute == 3000)
    #expect(config.garmin.maxConcurrency == 8)
    #expect(config.garmin.apiBaseURL == "https://apis.garmin.com")
}

@Test func environmentOverridesTheFile() throws {
    let toml = """
        [server]
        listen = "127.0.0.1:9000"
        [plan_app]
        api_keys = ["file-key-0123456789abcdef"]
        """
    let config = try GatewayConfig.parse(
        toml: toml,
        environment: [
            "GATEWAYD_SERVER_LISTEN": "0.0.0.0:9100",
            "GATEWAYD_PLAN_APP_API_KEYS": "k1-0123456789abcdef, k2-0123456789abcdef",
            "GATEWAYD_PROVIDERS_GARMIN_CLIENT_SECRET": "s3cr3t", "GATEWAYD_PLAN_APP_WEBHOOK_SECRETS": secret,
            "GATEWAYD_PUSH_WORKERS": "4", "GATEWAYD_PROVIDERS_WAHOO_ENABLED": "false",
        ], baseDirectory: nil)
    #expect(config.listenHost == "0.0.0.0")
    #expect(config.listenPort == 9100)
    #expect(config.apiKeys == ["k1-0123456789abcdef", "k2-0123456789abcdef"])
    #expect(config.garmin.clientSecret == "s3cr3t")
    #expect(config.webhookSecrets == [secret])
    #expect(config.pushWorkers == 4)
    #expect(config.wahoo.enabled == false)
}

@Test(arguments: [
    ("[server]\nmax_body_bytes = \"abc\"", "server.max_body_bytes: expected an integer"),
    ("[server]\nlisten = \"nowhere\"", "server.listen: expected host:port"),
    ("[server]\nbogus = 1", "server.bogus: unknown key"),
    ("[nope]\na = 1", "nope: unknown section"),
    (
        "[plan_app]\nwebhook_secrets = [\"abc\"]",
        "plan_app.webhook_secrets[0]: expected whsec_<base64 of at least 16 bytes>"
    ),
    ("[plan_app]\napi_keys = \"k\"", "plan_app.api_keys: expected an array of strings"),
    ("[security]\ntoken_key = \"base64:AAAA\"", "security.token_key: expected base64:<32 bytes>"),
    ("[push]\nmax_attempts = 0", "push.max_attempts: must be 1...1000"),
    ("[providers.garmin]\ntoken_url = \"ftp://x\"", "providers.garmin.token_url: expected an http(s) URL"),
    ("[providers.garmin]\nenabled = \"yes\"", "providers.garmin.enabled: expected true or false"),
])
func errorsNameTheKey(toml: String, expected: String) {
    #expect(throws: ConfigError.self) { try GatewayConfig.parse(toml: toml, environment: [:], baseDirectory: nil) }
    do {
        _ = try GatewayConfig.parse(toml: toml, environment: [:], baseDirectory: nil)
    } catch {
        #expect(error.description == expected)
    }
}

@Test func environmentErrorsNameTheVariable() {
    do {
        _ = try GatewayConfig.parse(toml: "", environment: ["GATEWAYD_PUSH_WORKERS": "many"], baseDirectory: nil)
        Issue.record("expected an error")
    } catch {
        #expect(error.description == "push.workers (from GATEWAYD_PUSH_WORKERS): expected an integer")
    }
}

@Test func brokenTOMLIsReported() {
    do {
        _ = try GatewayConfig.parse(toml: "[server\nlisten=", environment: [:], baseDirectory: nil)
        Issue.record("expected an error")
    } catch {
        #expect(error.description.hasPrefix("invalid TOML at line"))
    }
}

@Test func secretsComeFromFiles() throws {
    let path = NSTemporaryDirectory() + "gw-secret-" + UUID().uuidString
    try (secret + "\n").write(toFile: path, atomically: true, encoding: .utf8)
    defer { try? FileManager.default.removeItem(atPath: path) }
    let config = try GatewayConfig.parse(
        toml: "[plan_app]\nwebhook_secrets = [\"file:\(path)\"]", environment: [:], baseDirectory: nil)
    #expect(config.webhookSecrets == [secret])
}

@Test func dumpRedactsSecrets() throws {
    let config = try GatewayConfig.parse(
        toml: "[plan_app]\nwebhook_secrets = [\"\(secret)\"]\napi_keys = [\"api-key-0123456789abc\"]\n"
            + "[providers.garmin]\nclient_secret = \"garmin-secret\"",
        environment: [:], baseDirectory: nil)
    let dump = config.redactedDump()
    #expect(!dump.contains(secret))
    #expect(!dump.contains("api-key-0123456789abc"))
    #expect(!dump.contains("garmin-secret"))
    #expect(dump.contains("max_body_bytes = 1048576"))
    // The dump is itself a valid config that loads to the same non-secret values.
    #expect(dump.contains("[providers.wahoo]"))
}

/// etc/gatewayd.toml documents every key with its default.
@Test func sampleFileDocumentsEveryKey() throws {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    let sample = try String(contentsOf: root.appendingPathComponent("etc/gatewayd.toml"), encoding: .utf8)
    var section = ""
    var found: [String: String] = [:]
    for line in sample.split(separator: "\n") {
        let text = line.trimmingCharacters(in: .whitespaces)
        if text.hasPrefix("[") {
            section = String(text.dropFirst().prefix { $0 != "]" })
        } else if !text.hasPrefix("#"), let eq = text.firstIndex(of: "=") {
            let key = text[..<eq].trimmingCharacters(in: .whitespaces)
            var value = text[text.index(after: eq)...].trimmingCharacters(in: .whitespaces)
            if let hash = value.range(of: "  #") {
                value = value[..<hash.lowerBound].trimmingCharacters(in: .whitespaces)
            }
            found["\(section).\(key)"] = value
        }
    }
    for key in ConfigKey.all {
        let value = try #require(found[key.path], "etc/gatewayd.toml lacks \(key.path)")
        if !key.secret {
            #expect(value == GatewayConfig.render(key.defaultValue, secret: false), "\(key.path)")
        }
    }
}

import ArgumentParser
import Foundation
import GatewayAPI
import GatewayConfig
import GatewayCore
import GatewayCrypto
import GatewayHTTP
import GatewayProviders
import GatewayPush
import GatewayStore
import Logging

/// `gatewayd connections list|revoke`: athletes' provider connections, never their tokens.
struct ConnectionsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "connections", abstract: "List and revoke athletes' provider connections (never prints tokens).",
        subcommands: [ConnectionsList.self, ConnectionsRevoke.self])
}

struct ConnectionsList: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "Connections ordered by athlete and provider; exit 1 when none match.")
    @OptionGroup var options: ConfigOption
    @Option(name: .long, help: "Only this athlete's connections.") var athlete: String?
    @Option(name: .long, help: "garmin or wahoo.") var provider: String?
    @Option(name: .long, help: "CONNECTED or REVOKED.") var status: String?
    @Flag(name: .long, help: "One JSON object: {\"connections\": [...]}.") var json = false

    func parsedStatus() throws -> ConnectionStatus? {
        guard let status else { return nil }
        guard let parsed = ConnectionStatus(rawValue: status.uppercased()) else {
            throw ValidationError("--status: expected CONNECTED or REVOKED")
        }
        return parsed
    }

    func validate() throws {
        _ = try OperatorCLI.parseProvider(provider)
        _ = try parsedStatus()
    }

    func run() throws {
        let config = try options.load()
        let db = try OperatorCLI.open(config, readOnly: true)
        let provider = try OperatorCLI.parseProvider(provider)
        let status = try parsedStatus()
        let records = try OperatorCLI.run("reading connections") {
            try OperatorStore.connections(db, athleteID: athlete, provider: provider, status: status)
        }
        if json {
            OperatorCLI.printJSON(.object(JSONObject([("connections", .array(records.map(\.operatorJSON)))])))
        } else if !records.isEmpty {
            let rows = records.map { c -> [String] in
                [
                    c.athleteID, c.provider.rawValue, c.status.rawValue, c.isPrimary ? "yes" : "no", c.providerUserID,
                    OperatorCLI.time(c.connectedAtMillis), OperatorCLI.time(c.revokedAtMillis), c.revokedReason ?? "-",
                ]
            }
            print(
                OperatorCLI.table(
                    ["ATHLETE", "PROVIDER", "STATUS", "PRIMARY", "PROVIDER USER", "CONNECTED", "REVOKED", "REASON"],
                    rows))
        }
        if records.isEmpty {
            if !json { OperatorCLI.warn("no connection matches") }
            throw ExitCode(OperatorCLI.notFound)
        }
    }
}

struct ConnectionsRevoke: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "revoke",
        abstract: "Revoke an athlete's connection, as the plan app's disconnect does.",
        discussion: """
            In one transaction: the connection becomes REVOKED, its tokens are deleted, and the athlete's sessions \
            move to the other connected provider (which becomes primary) or become NOT_CONNECTED. The running \
            daemon stops using the tokens at once. Then, unless --local-only, the revocation is sent to the \
            provider with the tokens read in that transaction (best effort: a failure is reported, the local \
            revocation stands). Exit 1 if the athlete has no connected such provider.
            """)
    @OptionGroup var options: ConfigOption
    @Argument(help: "The athlete id.") var athlete: String
    @Argument(help: "garmin or wahoo.") var provider: String
    @Flag(name: .long, help: "Do not call the provider; only revoke here.") var localOnly = false
    @Option(name: .long, help: "Stored as the connection's revokedReason.") var reason = "revoked_by_operator"

    func validate() throws {
        _ = try OperatorCLI.parseProvider(provider, option: "PROVIDER")
        guard !reason.isEmpty, reason.utf8.count <= 100 else { throw ValidationError("--reason: 1 to 100 bytes") }
    }

    func run() throws {
        let config = try options.load()
        guard let kind = try OperatorCLI.parseProvider(provider, option: "PROVIDER") else { return }
        let db = try OperatorCLI.open(config, readOnly: false)
        let revoked = try OperatorCLI.run("revoking") {
            try OperatorStore.write(db) {
                try OperatorStore.revoke(
                    db, athleteID: athlete, provider: kind, reason: reason, now: WallClock.nowMillis())
            }
        }
        guard let revoked else {
            throw OperatorCLI.fail("athlete \(athlete) has no connected \(kind.slug)", OperatorCLI.notFound)
        }
        let sessions = revoked.sessionsByStatus.map { "\($0.status) \($0.count)" }.joined(separator: ", ")
        print("revoked \(kind.rawValue) for \(athlete): tokens deleted")
        print("primary now: \(revoked.primaryNow?.rawValue ?? "none")")
        print("sessions: \(sessions.isEmpty ? "none" : sessions)")
        print("at the provider: \(atProvider(config: config, kind: kind, tokens: revoked.tokens))")
    }

    /// The best-effort call at the provider; a failure is a warning, not an error.
    func atProvider(config: GatewayConfig, kind: ProviderKind, tokens: SealedTokens?) -> String {
        if localOnly { return "skipped (--local-only)" }
        let settings = kind == .garmin ? config.garmin : config.wahoo
        guard settings.enabled else { return "skipped (\(kind.slug) is not enabled in the config)" }
        guard let tokens else { return "skipped (no tokens were stored)" }
        guard !config.tokenKey.isEmpty,
            let box = try? TokenBox(current: config.tokenKey, previous: config.previousTokenKeys)
        else { return "skipped (security.token_key is not set)" }
        let logger = Logger(label: "gatewayd.cli") { LineLogHandler(label: $0, format: .logfmt, level: .warning) }
        let http: HTTPClient
        do {
            http = try HTTPClient(
                configuration: HTTPClientConfiguration(
                    caFile: settings.caFile.isEmpty ? nil : settings.caFile,
                    totalTimeoutMillis: config.requestTimeoutMillis),
                logger: logger)
        } catch {
            OperatorCLI.warn("cannot make an HTTPS client (\(error)); revoked here only")
            return "failed"
        }
        defer { http.shutdown() }
        let oauth = ProviderOAuth(
            endpoints: ProviderEndpoints(
                kind: kind, clientID: settings.clientID, clientSecret: settings.clientSecret,
                authorizeURL: settings.authorizeURL, tokenURL: settings.tokenURL, apiBaseURL: settings.apiBaseURL),
            http: http)
        let outcome = ProviderRevocation.revoke(
            athleteID: athlete, provider: kind, tokens: tokens, box: box, oauth: oauth)
        if case .failed(let why) = outcome {
            OperatorCLI.warn("revocation at \(kind.slug) failed (\(why)); the connection is revoked here only")
            return "failed"
        }
        return outcome.description
    }
}

import Foundation
import GatewayCore
import GatewayCrypto
import GatewayProviders
import GatewayStore
import Logging

/// How the OAuth callback ends for the athlete's browser (SPEC §6).
public enum CallbackOutcome: Sendable, Equatable {
    /// 302 to this URL (`returnTo?connected=garmin` or `returnTo?error=<code>`).
    case redirect(String)
    /// No returnTo is known: a plain HTML error page with 400.
    case errorPage(String)
}

public enum ConnectionServiceError: Error, Sendable, Equatable, CustomStringConvertible {
    case providerDisabled(ProviderKind)
    case invalidReturnTo
    case notConnected
    case storage(String)

    public var description: String {
        switch self {
        case .providerDisabled(let p): return "\(p.slug) is not enabled on this gateway"
        case .invalidReturnTo: return "returnTo must be an absolute http(s) URL"
        case .notConnected: return "the athlete has no such connected provider"
        case .storage(let why): return "storage failed: \(why)"
        }
    }
}

/// Athletes' provider connections: the OAuth dance, disconnection, provider
/// notifications and athlete deletion. Blocking: runs on worker threads.
public final class ConnectionService: @unchecked Sendable {
    let writer: StoreWriter
    let tokens: TokenManager
    let providers: [ProviderKind: ProviderOAuth]
    let publicURL: String
    let logger: Logger
    private let readLock = NSLock()
    private let reader: Database

    public init(
        databasePath: String, writer: StoreWriter, tokens: TokenManager, providers: [ProviderKind: ProviderOAuth],
        publicURL: String, logger: Logger
    ) throws {
        self.writer = writer
        self.tokens = tokens
        self.providers = providers
        self.publicURL = publicURL
        self.logger = logger
        reader = try Database.openForReading(path: databasePath)
    }

    public func redirectURI(_ provider: ProviderKind) -> String {
        "\(publicURL)/v1/oauth/\(provider.slug)/callback"
    }

    static func isHTTPURL(_ text: String) -> Bool {
        guard let url = URL(string: text), let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https",
            url.host != nil
        else { return false }
        return true
    }

    /// Starts an authorization: a single-use state (256-bit, 10 minutes) bound to the
    /// athlete, the provider, a PKCE verifier and returnTo. Returns the authorize URL.
    public func authorize(athleteID: String, provider: ProviderKind, returnTo: String) throws(ConnectionServiceError)
        -> String
    {
        guard let oauth = providers[provider] else { throw .providerDisabled(provider) }
        guard Self.isHTTPURL(returnTo) else { throw .invalidReturnTo }
        let state = PKCE.makeState()
        let verifier = PKCE.makeVerifier()
        let now = WallClock.nowMillis()
        let record = OAuthStateRecord(
            state: state, athleteID: athleteID, provider: provider,
            codeVerifierSealed: tokens.box.seal(verifier, context: "oauth-state/\(state)"), returnTo: returnTo,
            createdAtMillis: now, expiresAtMillis: now + ConnectionStore.stateLifetimeMillis)
        do {
            try writer.performAndWait { db in try ConnectionStore.insertState(db, record) }
        } catch {
            throw .storage("\(error)")
        }
        return oauth.authorizeURL(
            state: state, codeChallenge: PKCE.challenge(for: verifier), redirectURI: redirectURI(provider))
    }

    static func appending(_ url: String, _ key: String, _ value: String) -> String {
        url + (url.contains("?") ? "&" : "?") + FormEncoding.encode([(key, value)])
    }

    /// The provider's redirect back: state check, code exchange, user id, one commit.
    /// Nothing is stored unless everything succeeded. `requestID` goes into the log lines.
    public func callback(provider: ProviderKind, parameters: [String: String], requestID: String? = nil)
        -> CallbackOutcome
    {
        let request: Logger.Metadata = requestID.map { ["request_id": .string($0)] } ?? [:]
        guard let state = parameters["state"], !state.isEmpty else {
            return .errorPage("The authorization response has no state.")
        }
        let now = WallClock.nowMillis()
        let record: OAuthStateRecord?
        do {
            record = try writer.performAndWait { db in try ConnectionStore.consumeState(db, state: state, now: now) }
        } catch {
            logger.error("cannot consume OAuth state", metadata: request.merging(["error": "\(error)"]) { $1 })
            return .errorPage("The connection could not be completed. Please try again.")
        }
        guard let record else { return .errorPage("This authorization link is not valid.") }
        func fail(_ code: String) -> CallbackOutcome { .redirect(Self.appending(record.returnTo, "error", code)) }
        guard record.provider == provider else { return fail("invalid_state") }
        guard record.usedAtMillis == nil else { return fail("state_reused") }
        guard record.expiresAtMillis > now else { return fail("state_expired") }
        if let error = parameters["error"], !error.isEmpty {
            let known = ["access_denied", "invalid_scope", "server_error", "temporarily_unavailable"]
            return fail(known.contains(error) ? error : "authorization_failed")
        }
        guard let code = parameters["code"], !code.isEmpty else { return fail("missing_code") }
        guard let oauth = providers[provider] else { return fail("provider_disabled") }
        let log = Logger.MetadataValue.string
        guard let verifier = try? tokens.box.open(record.codeVerifierSealed, context: "oauth-state/\(state)") else {
            return fail("invalid_state")
        }
        let granted: OAuthTokens
        do {
            granted = try oauth.exchange(code: code, codeVerifier: verifier, redirectURI: redirectURI(provider))
        } catch {
            logger.warning(
                "code exchange failed",
                metadata: request.merging([
                    "athlete_id": log(record.athleteID), "provider": log(provider.rawValue), "error": "\(error)",
                ]) { $1 })
            return fail("token_exchange_failed")
        }
        let userID: String
        do {
            userID = try oauth.userID(accessToken: granted.accessToken)
        } catch {
            logger.warning(
                "user id lookup failed",
                metadata: request.merging([
                    "athlete_id": log(record.athleteID), "provider": log(provider.rawValue), "error": "\(error)",
                ]) { $1 })
            return fail("user_lookup_failed")
        }
        let sealed = tokens.seal(granted, athleteID: record.athleteID, provider: provider, now: WallClock.nowMillis())
        let scopes = granted.scope ?? (provider == .wahoo ? ProviderOAuth.wahooScopes : nil)
        do {
            let result = try writer.performAndWait { db in
                try ConnectionStore.connect(
                    db, athleteID: record.athleteID, provider: provider, providerUserID: userID, scopes: scopes,
                    tokens: sealed, now: WallClock.nowMillis())
            }
            logger.info(
                "athlete connected",
                metadata: request.merging([
                    "athlete_id": log(record.athleteID), "provider": log(provider.rawValue),
                    "primary": "\(result.isPrimary)", "sessions_queued": "\(result.queued)",
                ]) { $1 })
        } catch {
            logger.error(
                "cannot store the connection",
                metadata: request.merging(["athlete_id": log(record.athleteID), "error": "\(error)"]) { $1 })
            return fail("storage_failed")
        }
        return .redirect(Self.appending(record.returnTo, "connected", provider.slug))
    }

    public func connections(athleteID: String) throws -> [ConnectionRecord] {
        try readLock.withLock { try ConnectionStore.connections(reader, athleteID: athleteID) }
    }

    public func setPrimary(athleteID: String, provider: ProviderKind) throws(ConnectionServiceError) {
        let changed: Bool
        do {
            changed = try writer.performAndWait { db in
                try ConnectionStore.setPrimary(db, athleteID: athleteID, provider: provider, now: WallClock.nowMillis())
            }
        } catch {
            throw .storage("\(error)")
        }
        guard changed else { throw .notConnected }
    }

    /// Revokes at the provider (best effort: the athlete asked to disconnect, so the
    /// local revocation happens whatever the provider says), then deletes the tokens.
    public func disconnect(athleteID: String, provider: ProviderKind, reason: String, requestID: String? = nil)
        throws(ConnectionServiceError)
    {
        var metadata: Logger.Metadata = ["athlete_id": "\(athleteID)", "provider": "\(provider.rawValue)"]
        if let requestID { metadata["request_id"] = "\(requestID)" }
        if let oauth = providers[provider] {
            do {
                try tokens.withToken(athleteID: athleteID, provider: provider) {
                    (token) throws(ProviderCallError) in try oauth.revoke(accessToken: token)
                }
            } catch .notConnected {
                throw .notConnected
            } catch {
                logger.warning(
                    "revocation at the provider failed; revoking locally",
                    metadata: metadata.merging(["error": "\(error)"]) { $1 })
            }
        }
        let changed: Bool
        do {
            changed = try writer.performAndWait { db in
                try ConnectionStore.revoke(
                    db, athleteID: athleteID, provider: provider, reason: reason, now: WallClock.nowMillis())
            }
        } catch {
            throw .storage("\(error)")
        }
        guard changed else { throw .notConnected }
        logger.info("connection revoked", metadata: metadata.merging(["reason": "\(reason)"]) { $1 })
    }

    /// The provider says these users are gone (Garmin deregistration, lost
    /// WORKOUT_IMPORT permission): revoke locally, nothing to call.
    @discardableResult
    public func providerRevoked(provider: ProviderKind, providerUserIDs: [String], reason: String) throws -> Int {
        let athletes = try writer.performAndWait { db in
            var athletes: [String] = []
            let now = WallClock.nowMillis()
            for userID in providerUserIDs {
                for record in try ConnectionStore.connections(db, provider: provider, providerUserID: userID)
                where record.status == .connected {
                    if try ConnectionStore.revoke(
                        db, athleteID: record.athleteID, provider: provider, reason: reason, now: now)
                    {
                        athletes.append(record.athleteID)
                    }
                }
            }
            return athletes
        }
        for athlete in athletes {
            logger.info(
                "connection revoked",
                metadata: ["athlete_id": "\(athlete)", "provider": "\(provider.rawValue)", "reason": "\(reason)"])
        }
        return athletes.count
    }

    /// `athlete.deleted`: revoke every connection at its provider, delete the tokens.
    /// (Sessions were deleted at ingest.)
    public func deleteAthlete(_ athleteID: String) throws {
        for record in try connections(athleteID: athleteID) where record.status == .connected {
            try? disconnect(athleteID: athleteID, provider: record.provider, reason: "athlete_deleted")
        }
        try writer.performAndWait { db in
            try db.statement("DELETE FROM connections WHERE athlete_id = ?").run([.text(athleteID)])
            try db.statement("DELETE FROM jobs WHERE kind = 'athlete.delete' AND subject = ?").run([.text(athleteID)])
        }
    }
}

/// Runs `athlete.delete` jobs from the outbox (the push dispatcher takes over the
/// other kinds). Polls once a second on its own queue.
public final class AthleteDeletionWorker: @unchecked Sendable {
    let service: ConnectionService
    let reader: Database
    let logger: Logger
    let queue = DispatchQueue(label: "gatewayd.athlete-deletion")
    private var timer: (any DispatchSourceTimer)?

    public init(databasePath: String, service: ConnectionService, logger: Logger) throws {
        self.service = service
        self.logger = logger
        reader = try Database.openForReading(path: databasePath)
    }

    public func start() {
        let timer = DispatchSource.makeTimerSource(queue: queue)
        timer.schedule(deadline: .now() + 0.2, repeating: 1.0)
        timer.setEventHandler { [self] in runDue() }
        timer.resume()
        self.timer = timer
    }

    public func stop() {
        queue.sync { timer?.cancel() }
    }

    func runDue() {
        var athletes: [String] = []
        do {
            try reader.query(
                "SELECT subject FROM jobs WHERE kind = 'athlete.delete' AND due_at_ms <= ? LIMIT 50",
                [.int(WallClock.nowMillis())]
            ) { athletes.append($0.text(0) ?? "") }
        } catch {
            logger.error("cannot read athlete deletion jobs", metadata: ["error": "\(error)"])
            return
        }
        for athlete in athletes {
            do {
                try service.deleteAthlete(athlete)
                logger.info("athlete deleted: connections revoked", metadata: ["athlete_id": "\(athlete)"])
            } catch {
                logger.error("athlete deletion failed", metadata: ["athlete_id": "\(athlete)", "error": "\(error)"])
            }
        }
    }
}

import CoreMetrics
import Foundation
import GatewayCore
import GatewayCrypto
import GatewayProviders
import GatewayStore
import Logging

/// Why no access token could be had.
public enum TokenError: Error, Sendable, Equatable, CustomStringConvertible {
    /// No connected connection for this athlete and provider.
    case notConnected
    /// The provider refused the refresh (invalid_grant): the connection is now REVOKED.
    case revoked(String)
    /// The provider could not be reached or failed; try again later.
    case provider(ProviderCallError)
    /// A stored token could not be opened (wrong or missing token key).
    case sealed(String)

    public var description: String {
        switch self {
        case .notConnected: return "not connected"
        case .revoked(let why): return "connection revoked: \(why)"
        case .provider(let error): return "token refresh failed: \(error)"
        case .sealed(let why): return "stored token unreadable: \(why)"
        }
    }
}

/// Hands a valid access token to provider calls (SPEC §5 token rules).
///
/// - Refresh when the token is expired or within `refresh_skew_s` of it, and only
///   then: a Wahoo token is refreshed right before the call that needs it.
/// - One refresh at a time per connection: concurrent callers wait for it and reuse
///   its result (both providers rotate refresh tokens; a second refresh with the old
///   one would fail, and Wahoo caps live tokens at 10).
/// - The new tokens are committed to SQLite before the new access token is used.
/// - A 401 from an API call → one forced refresh and one retry.
/// - `invalid_grant` → the connection is revoked and its sessions NOT_CONNECTED.
public final class TokenManager: @unchecked Sendable {
    let writer: StoreWriter
    private let boxLock = NSLock()
    private var currentBox: TokenBox
    /// The token key in force; replaced on SIGHUP (`rotate`).
    public var box: TokenBox { boxLock.withLock { currentBox } }
    let providers: [ProviderKind: ProviderOAuth]
    let skewMillis: Int64
    let logger: Logger
    private let readLock = NSLock()
    private let reader: Database
    private let flightsLock = NSLock()
    private var flights: [String: Flight] = [:]
    /// Refresh calls made (for metrics and tests).
    public private(set) var refreshCount = 0

    public init(
        databasePath: String, writer: StoreWriter, box: TokenBox, providers: [ProviderKind: ProviderOAuth],
        refreshSkewSeconds: Int, logger: Logger
    ) throws {
        self.writer = writer
        currentBox = box
        self.providers = providers
        skewMillis = Int64(refreshSkewSeconds) * 1000
        self.logger = logger
        reader = try Database.openForReading(path: databasePath)
    }

    static func context(_ athleteID: String, _ provider: ProviderKind, _ field: String) -> String {
        "\(athleteID)/\(provider.rawValue)/\(field)"
    }

    func connection(_ athleteID: String, _ provider: ProviderKind) throws(TokenError) -> ConnectionRecord {
        let record: ConnectionRecord?
        do {
            record = try readLock.withLock {
                try ConnectionStore.connection(reader, athleteID: athleteID, provider: provider)
            }
        } catch {
            throw .sealed("cannot read the connection: \(error)")
        }
        guard let record, record.status == .connected, record.tokens != nil else { throw .notConnected }
        return record
    }

    func open(_ sealed: String, _ athleteID: String, _ provider: ProviderKind, _ field: String) throws(TokenError)
        -> String
    {
        do {
            return try box.open(sealed, context: Self.context(athleteID, provider, field))
        } catch {
            throw .sealed("\(error)")
        }
    }

    /// A valid access token. `rejected` is a token the provider just refused with 401:
    /// a refresh is forced unless someone already replaced it.
    public func accessToken(athleteID: String, provider: ProviderKind, rejected: String? = nil) throws(TokenError)
        -> String
    {
        let record = try connection(athleteID, provider)
        let tokens = record.tokens!
        let current = try open(tokens.access, athleteID, provider, "access")
        let now = WallClock.nowMillis()
        let fresh = tokens.accessExpiresAtMillis.map { $0 - skewMillis > now } ?? true
        if fresh && current != rejected { return current }
        return try refreshSingleFlight(athleteID: athleteID, provider: provider, rejected: rejected ?? current)
    }

    /// Calls `body` with a token; on 401, refreshes once and calls it again.
    public func withToken<T>(
        athleteID: String, provider: ProviderKind, _ body: (String) throws(ProviderCallError) -> T
    ) throws(TokenError) -> T {
        let token = try accessToken(athleteID: athleteID, provider: provider)
        do {
            return try body(token)
        } catch .unauthorized {
            let renewed = try accessToken(athleteID: athleteID, provider: provider, rejected: token)
            do {
                return try body(renewed)
            } catch {
                throw .provider(error)
            }
        } catch {
            throw .provider(error)
        }
    }

    private func refreshSingleFlight(athleteID: String, provider: ProviderKind, rejected: String) throws(TokenError)
        -> String
    {
        let key = "\(athleteID)\u{0}\(provider.rawValue)"
        flightsLock.lock()
        if let flight = flights[key] {
            flightsLock.unlock()
            return try flight.wait()
        }
        let flight = Flight()
        flights[key] = flight
        flightsLock.unlock()

        let result: Result<String, TokenError>
        do {
            result = .success(try refresh(athleteID: athleteID, provider: provider, rejected: rejected))
        } catch {
            result = .failure(error)
        }
        flightsLock.lock()
        flights[key] = nil
        flightsLock.unlock()
        flight.finish(result)
        return try result.get()
    }

    private func refresh(athleteID: String, provider: ProviderKind, rejected: String) throws(TokenError) -> String {
        // Another refresh may have finished between our read and taking the flight.
        let record = try connection(athleteID, provider)
        let tokens = record.tokens!
        let current = try open(tokens.access, athleteID, provider, "access")
        let now = WallClock.nowMillis()
        if current != rejected, tokens.accessExpiresAtMillis.map({ $0 - skewMillis > now }) ?? true {
            return current
        }
        guard let sealedRefresh = tokens.refresh, let oauth = providers[provider] else {
            throw .revoked("no refresh token")
        }
        let refreshToken = try open(sealedRefresh, athleteID, provider, "refresh")
        let renewed: OAuthTokens
        do {
            flightsLock.withLock { refreshCount += 1 }
            renewed = try oauth.refresh(refreshToken: refreshToken)
        } catch .invalidGrant(let why) {
            Counter(
                label: "gatewayd_token_refreshes_total",
                dimensions: [("provider", provider.rawValue), ("outcome", "invalid_grant")]
            ).increment()
            logger.warning(
                "refresh refused, revoking the connection",
                metadata: ["athlete_id": "\(athleteID)", "provider": "\(provider.rawValue)"])
            _ = try? writer.performAndWait { db in
                try ConnectionStore.revoke(
                    db, athleteID: athleteID, provider: provider, reason: "invalid_grant", now: WallClock.nowMillis())
            }
            throw .revoked("invalid_grant: \(why)")
        } catch {
            Counter(
                label: "gatewayd_token_refreshes_total",
                dimensions: [("provider", provider.rawValue), ("outcome", "error")]
            ).increment()
            throw .provider(error)
        }
        Counter(
            label: "gatewayd_token_refreshes_total", dimensions: [("provider", provider.rawValue), ("outcome", "ok")]
        )
        .increment()
        let sealed = seal(renewed, athleteID: athleteID, provider: provider, now: WallClock.nowMillis())
        // Committed before the new access token is handed out: a crash now keeps the
        // rotated refresh token, never the dead one.
        let stored: Bool
        do {
            stored = try writer.performAndWait { db in
                try ConnectionStore.updateTokens(
                    db, athleteID: athleteID, provider: provider, tokens: sealed, now: WallClock.nowMillis())
            }
        } catch {
            throw .sealed("cannot store the refreshed tokens: \(error)")
        }
        guard stored else { throw .notConnected }
        return renewed.accessToken
    }

    /// Re-encrypts every stored token sealed with another key than `newBox`'s current
    /// one, then makes `newBox` the key in force. The new box must open the old tokens
    /// (list the old key in `previous`); if it cannot, nothing changes and the error
    /// says so. Returns how many connections were re-encrypted.
    @discardableResult
    public func rotate(to newBox: TokenBox) throws -> Int {
        let count = try writer.performAndWait { db in
            var records: [ConnectionRecord] = []
            try db.query(
                "SELECT \(ConnectionStore.connectionColumns) FROM connections WHERE access_token_sealed IS NOT NULL AND token_key_id <> ?",
                [.text(newBox.currentKeyID)]
            ) { if let row = ConnectionStore.connectionRow($0) { records.append(row) } }
            for record in records {
                guard let tokens = record.tokens else { continue }
                func reseal(_ sealed: String, _ field: String) throws -> String {
                    let context = Self.context(record.athleteID, record.provider, field)
                    return newBox.seal(try newBox.open(sealed, context: context), context: context)
                }
                let resealed = SealedTokens(
                    access: try reseal(tokens.access, "access"),
                    refresh: try tokens.refresh.map { try reseal($0, "refresh") },
                    accessExpiresAtMillis: tokens.accessExpiresAtMillis, keyID: newBox.currentKeyID)
                try ConnectionStore.updateTokens(
                    db, athleteID: record.athleteID, provider: record.provider, tokens: resealed,
                    now: WallClock.nowMillis())
            }
            return records.count
        }
        boxLock.withLock { currentBox = newBox }
        return count
    }

    /// Seals fresh tokens for storage.
    public func seal(_ tokens: OAuthTokens, athleteID: String, provider: ProviderKind, now: Int64) -> SealedTokens {
        SealedTokens(
            access: box.seal(tokens.accessToken, context: Self.context(athleteID, provider, "access")),
            refresh: tokens.refreshToken.map { box.seal($0, context: Self.context(athleteID, provider, "refresh")) },
            accessExpiresAtMillis: tokens.expiresInSeconds.map { now + $0 * 1000 }, keyID: box.currentKeyID)
    }
}

/// One refresh in progress; later callers wait for its result.
private final class Flight: @unchecked Sendable {
    private let condition = NSCondition()
    private var result: Result<String, TokenError>?

    func wait() throws(TokenError) -> String {
        condition.lock()
        while result == nil { condition.wait() }
        let r = result!
        condition.unlock()
        return try r.get()
    }

    func finish(_ r: Result<String, TokenError>) {
        condition.lock()
        result = r
        condition.broadcast()
        condition.unlock()
    }
}

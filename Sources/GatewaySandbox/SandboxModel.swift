import Foundation
import GatewayCore

/// The two fake providers.
public enum SandboxProvider: String, CaseIterable, Sendable {
    case garmin, wahoo
}

/// Client credentials the fake providers accept.
public struct SandboxClient: Sendable {
    public var id: String
    public var secret: String

    public init(id: String, secret: String) {
        self.id = id
        self.secret = secret
    }
}

/// How the sandbox is started.
public struct SandboxOptions: Sendable {
    public var garmin = SandboxClient(id: "sandbox-garmin-client", secret: "sandbox-garmin-secret")
    public var wahoo = SandboxClient(id: "sandbox-wahoo-client", secret: "sandbox-wahoo-secret")
    /// Per provider: more calls than this in any 60 s window are answered 429. Nil: no limit.
    public var rateLimitPerMinute: Int?

    public init() {}

    func client(_ provider: SandboxProvider) -> SandboxClient {
        provider == .garmin ? garmin : wahoo
    }
}

/// Fixed provider facts (SPEC §4).
enum ProviderFacts {
    static let garminAccessLifetime: Double = 86_400
    static let garminRefreshLifetime: Double = 7_776_000
    static let garminScope = "WORKOUT_IMPORT ACTIVITY_EXPORT"
    static let wahooAccessLifetime: Double = 7_200
    /// Wahoo: at most this many unrevoked token pairs per user and app.
    static let wahooTokenCap = 10
    static let codeLifetime: Double = 600
    static let garminMaxSteps = 100
}

/// A single-use authorization code.
struct AuthorizationCode {
    let provider: SandboxProvider
    let clientID: String
    let redirectURI: String
    let codeChallenge: String?
    let userID: String
    let scope: String
    let expiresAt: Double
}

/// One access/refresh token pair issued to a user.
final class TokenPair {
    let provider: SandboxProvider
    let userID: String
    let clientID: String
    let accessToken: String
    let refreshToken: String
    let scope: String
    let issuedAt: Double
    var accessExpiresAt: Double
    let refreshExpiresAt: Double?
    /// The access token no longer works (Wahoo refresh, revocation, deregistration).
    var accessRevoked = false
    /// The refresh token no longer works (it was used, or the pair was revoked).
    var refreshRevoked = false

    init(
        provider: SandboxProvider, userID: String, clientID: String, scope: String, now: Double,
        accessLifetime: Double, refreshLifetime: Double?
    ) {
        self.provider = provider
        self.userID = userID
        self.clientID = clientID
        self.scope = scope
        accessToken = Base64URL.random()
        refreshToken = Base64URL.random()
        issuedAt = now
        accessExpiresAt = now + accessLifetime
        refreshExpiresAt = refreshLifetime.map { now + $0 }
    }

    /// Unrevoked: the pair still grants something (Wahoo's 10-token cap counts these).
    var unrevoked: Bool { !accessRevoked || !refreshRevoked }

    func accessValid(now: Double) -> Bool { !accessRevoked && now < accessExpiresAt }

    func refreshValid(now: Double) -> Bool {
        !refreshRevoked && (refreshExpiresAt.map { now < $0 } ?? true)
    }

    func revoke() {
        accessRevoked = true
        refreshRevoked = true
    }

    func json(now: Double) -> JSONValue {
        [
            "accessToken": .string(accessToken), "refreshToken": .string(refreshToken),
            "issuedAt": .string(isoTime(issuedAt)), "accessExpiresAt": .string(isoTime(accessExpiresAt)),
            "accessValid": .bool(accessValid(now: now)), "refreshValid": .bool(refreshValid(now: now)),
        ]
    }
}

struct GarminSchedule {
    var workoutID: Int64
    var date: String
}

struct WahooPlan {
    var externalID: String
    var filename: String
    var providerUpdatedAt: String
    var plan: JSONValue
    let createdAt: Double
    var updatedAt: Double
}

struct WahooWorkout {
    var name: String
    var workoutToken: String
    var workoutTypeID: Int64
    var starts: String
    var minutes: Int64
    var planID: Int64?
    let createdAt: Double
    var updatedAt: Double
}

/// One fake provider account.
final class SandboxUser {
    let provider: SandboxProvider
    let id: String
    var tokens: [TokenPair] = []
    /// Garmin: false after `DELETE .../user/registration` (until authorized again).
    var registered = true
    /// The next refresh answers `invalid_grant` (admin switch).
    var failNextRefresh = false
    var permissions: [String] = ["WORKOUT_IMPORT", "ACTIVITY_EXPORT"]
    // Garmin
    var garminWorkouts: [Int64: JSONValue] = [:]
    var garminSchedules: [Int64: GarminSchedule] = [:]
    // Wahoo
    var wahooPlans: [Int64: WahooPlan] = [:]
    var wahooWorkouts: [Int64: WahooWorkout] = [:]

    init(provider: SandboxProvider, id: String) {
        self.provider = provider
        self.id = id
    }

    var liveTokens: [TokenPair] { tokens.filter { $0.unrevoked } }

    func revokeAllTokens() {
        for token in tokens { token.revoke() }
    }
}

func isoTime(_ seconds: Double) -> String {
    ISODateTime.format(epochMillis: Int64((seconds * 1000).rounded()))
}

func nowSeconds() -> Double {
    Date().timeIntervalSince1970
}

import Foundation
import GatewayCore
import GatewayCrypto
import GatewayHTTP
import GatewayProviders
import GatewaySandbox
import GatewayStore
import Logging
import Testing

@testable import GatewayPush

/// The sandbox in this process, on its own event-loop thread, over real HTTP.
final class InProcessSandbox: @unchecked Sendable {
    let loop = EventLoop()
    let server: HTTPServer
    let sandbox: Sandbox
    /// Signalled when the loop thread has returned from `run`.
    private let loopExited = DispatchSemaphore(value: 0)
    private let stopLock = NSLock()
    // Guarded by `stopLock`.
    private var running = false
    var base: String { "http://127.0.0.1:\(server.port)" }

    init() throws {
        let logger = Logger(label: "sandbox")
        let sandbox = Sandbox(loop: loop, options: SandboxOptions(), logger: logger)
        self.sandbox = sandbox
        server = HTTPServer(loop: loop, limits: HTTPServerLimits(), logger: logger) { sandbox.handle($0) }
        try server.bind(host: "127.0.0.1", port: 0)
        let (loop, loopExited) = (self.loop, self.loopExited)
        let thread = Thread {
            loop.run()
            loopExited.signal()
        }
        thread.start()
        running = true
    }

    /// Stops the loop and waits for its thread to leave `run`. The server's libevent
    /// objects are freed by whichever thread releases the last reference (the test's):
    /// that must not happen while the loop thread still serves their connections.
    func stop() {
        stopLock.lock()
        defer { stopLock.unlock() }
        guard running else { return }
        running = false
        loop.stop()
        loopExited.wait()
    }

    deinit { stop() }

    func endpoints(_ kind: ProviderKind) -> ProviderEndpoints {
        switch kind {
        case .garmin:
            return ProviderEndpoints(
                kind: .garmin, clientID: "sandbox-garmin-client", clientSecret: "sandbox-garmin-secret",
                authorizeURL: "\(base)/garmin/oauth2Confirm", tokenURL: "\(base)/garmin/di-oauth2-service/oauth/token",
                apiBaseURL: "\(base)/garmin")
        case .wahoo:
            return ProviderEndpoints(
                kind: .wahoo, clientID: "sandbox-wahoo-client", clientSecret: "sandbox-wahoo-secret",
                authorizeURL: "\(base)/wahoo/oauth/authorize", tokenURL: "\(base)/wahoo/oauth/token",
                apiBaseURL: "\(base)/wahoo")
        }
    }

    func admin(_ http: HTTPClient, _ method: HTTPMethod, _ path: String, _ body: JSONValue? = nil) throws -> JSONValue {
        let response = try http.send(
            HTTPClientRequest(
                method: method, url: base + "/_sandbox" + path, headers: [("Content-Type", "application/json")],
                body: body?.serializedBytes ?? []))
        #expect(response.status < 300, "sandbox admin \(path): \(response.status)")
        return (try? JSONParser.parse(response.body)) ?? .null
    }

    func calls(_ http: HTTPClient, _ key: String) throws -> Int64 {
        let json = try admin(http, .get, "/calls")
        return (json["calls"]?[key] ?? json[key])?.intValue ?? 0
    }
}

/// A fresh database, the writer, and an athlete connected through the real code flow.
struct Fixture {
    let directory: String
    let writer: StoreWriter
    let sandbox: InProcessSandbox
    let http: HTTPClient
    let oauth: ProviderOAuth
    let manager: TokenManager
    let athlete = "ath_" + UUID().uuidString
    let user: String

    init(_ kind: ProviderKind) throws {
        // Wahoo's user ids are numbers.
        user = kind == .wahoo ? String(Int.random(in: 100_000...999_999_999)) : "user_" + UUID().uuidString
        directory = NSTemporaryDirectory() + "gw-push-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let logger = Logger(label: "test")
        writer = try StoreWriter(path: directory + "/gw.sqlite", logger: logger)
        sandbox = try InProcessSandbox()
        http = try HTTPClient(configuration: HTTPClientConfiguration(), logger: logger)
        oauth = ProviderOAuth(endpoints: sandbox.endpoints(kind), http: http)
        manager = try TokenManager(
            databasePath: directory + "/gw.sqlite", writer: writer,
            box: try TokenBox(current: SecureRandom.bytes(32)), providers: [kind: oauth], refreshSkewSeconds: 600,
            logger: logger)
        // The browser's part of the dance: authorize, take the code from the redirect.
        let verifier = PKCE.makeVerifier()
        let redirect = "http://127.0.0.1:1/callback"
        let url =
            oauth.authorizeURL(state: "s1", codeChallenge: PKCE.challenge(for: verifier), redirectURI: redirect)
            + "&sandbox_user=" + user
        let approval = try http.send(HTTPClientRequest(method: .get, url: url))
        #expect(approval.status == 302)
        let location = approval.header("Location") ?? ""
        let code = FormEncoding.decode(String(location.split(separator: "?").last ?? "")).first { $0.0 == "code" }?.1
        let granted = try oauth.exchange(code: code ?? "", codeVerifier: verifier, redirectURI: redirect)
        let sealed = manager.seal(granted, athleteID: athlete, provider: kind, now: WallClock.nowMillis())
        let (athlete, user) = (self.athlete, self.user)
        try writer.performAndWait { db in
            _ = try ConnectionStore.connect(
                db, athleteID: athlete, provider: kind, providerUserID: user, scopes: nil, tokens: sealed,
                now: WallClock.nowMillis())
        }
    }

    func expireLocally() throws {
        let athlete = self.athlete
        try writer.performAndWait { db in
            try db.statement("UPDATE connections SET access_expires_at_ms = 1 WHERE athlete_id = ?").run([
                .text(athlete)
            ])
        }
    }

    func storedRefresh() throws -> String? {
        let db = try Database.openForReading(path: directory + "/gw.sqlite")
        let record = try ConnectionStore.connection(db, athleteID: athlete, provider: oauth.endpoints.kind)
        return record?.tokens?.refresh
    }

    func tearDown() {
        writer.shutdown()
        sandbox.stop()
        http.shutdown()
        try? FileManager.default.removeItem(atPath: directory)
    }
}

@Test func twentyConcurrentCallersShareOneRefresh() throws {
    let f = try Fixture(.garmin)
    defer { f.tearDown() }
    let refreshKey = "POST /garmin/di-oauth2-service/oauth/token#refresh_token"
    let before = try f.sandbox.calls(f.http, refreshKey)
    let sealedRefreshBefore = try f.storedRefresh()
    try f.expireLocally()

    let results = TokenResults()
    DispatchQueue.concurrentPerform(iterations: 20) { _ in
        results.add(
            Result { () throws(TokenError) in try f.manager.accessToken(athleteID: f.athlete, provider: .garmin) })
    }
    let tokens = try results.all().map { try $0.get() }
    #expect(tokens.count == 20)
    #expect(Set(tokens).count == 1, "every caller gets the one refreshed token")
    #expect(try f.sandbox.calls(f.http, refreshKey) == before + 1)
    #expect(f.manager.refreshCount == 1)
    // The rotated refresh token was stored before the access token was handed out.
    #expect(try f.storedRefresh() != sealedRefreshBefore)
    // And the new access token works at the provider.
    #expect(try f.oauth.userID(accessToken: tokens[0]) == f.user)
}

@Test func unauthorizedCallRefreshesOnceAndRetries() throws {
    let f = try Fixture(.wahoo)
    defer { f.tearDown() }
    // The provider expires the token early; the gateway still thinks it is valid.
    _ = try f.sandbox.admin(f.http, .post, "/tokens/expire", ["provider": "wahoo", "userId": .string(f.user)])
    var attempts = 0
    let user = try f.manager.withToken(athleteID: f.athlete, provider: .wahoo) { (token) throws(ProviderCallError) in
        attempts += 1
        return try f.oauth.userID(accessToken: token)
    }
    #expect(user == f.user)
    #expect(attempts == 2)
    #expect(f.manager.refreshCount == 1)
}

@Test func invalidGrantRevokesTheConnection() throws {
    let f = try Fixture(.garmin)
    defer { f.tearDown() }
    let sid = "ses_" + UUID().uuidString
    let athlete = f.athlete
    try f.writer.performAndWait { db in
        try db.statement(
            """
            INSERT INTO sessions(id, athlete_id, revision, session_type, date, event_id, export_status, attempts,
                created_at_ms, updated_at_ms) VALUES(?, ?, 1, 'ENDURANCE', '2026-12-01', 'e', 'PENDING', 0, 1, 1)
            """
        ).run([.text(sid), .text(athlete)])
    }
    _ = try f.sandbox.admin(f.http, .post, "/tokens/invalid-grant", ["provider": "garmin", "userId": .string(f.user)])
    try f.expireLocally()
    #expect(throws: TokenError.self) { try f.manager.accessToken(athleteID: f.athlete, provider: .garmin) }
    let db = try Database.openForReading(path: f.directory + "/gw.sqlite")
    let record = try ConnectionStore.connection(db, athleteID: f.athlete, provider: .garmin)
    #expect(record?.status == .revoked)
    #expect(record?.tokens == nil)
    #expect(try SessionQueries(db: db).status(id: sid)?.exportStatus == "NOT_CONNECTED")
    // Once revoked, no further refresh is attempted.
    #expect(throws: TokenError.notConnected) { try f.manager.accessToken(athleteID: f.athlete, provider: .garmin) }
}

final class TokenResults: @unchecked Sendable {
    private let lock = NSLock()
    private var results: [Result<String, TokenError>] = []
    func add(_ r: Result<String, TokenError>) { lock.withLock { results.append(r) } }
    func all() -> [Result<String, TokenError>] { lock.withLock { results } }
}

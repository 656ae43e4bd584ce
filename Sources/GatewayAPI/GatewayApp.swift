import Dispatch
import GatewayConfig
import GatewayCore
import GatewayCrypto
import GatewayHTTP
import GatewayProviders
import GatewayPush
import GatewayStore
import Logging

/// The gateway's HTTP application. Confined to the event-loop thread: every
/// method runs there, and results from the writer and the readers come back
/// through `loop.execute`.
public final class GatewayApp: @unchecked Sendable {
    let loop: EventLoop
    let writer: StoreWriter
    let metrics: GatewayMetrics
    let logger: Logger
    private(set) var config: GatewayConfig
    private var verifier: WebhookVerifier
    private var apiKeys: [[UInt8]]
    private let reads: ReadExecutor
    public private(set) var shuttingDown = false
    /// Provider connections; nil when no provider is enabled or no token key is set.
    public var connections: ConnectionService?
    /// Holds the token key; replaced on SIGHUP.
    public var tokenManager: TokenManager?
    /// The push dispatcher; woken after commits that may have made work due.
    public var dispatcher: Dispatcher?

    public init(
        loop: EventLoop, config: GatewayConfig, writer: StoreWriter, metrics: GatewayMetrics, logger: Logger
    ) throws {
        self.loop = loop
        self.config = config
        self.writer = writer
        self.metrics = metrics
        self.logger = logger
        verifier = try Self.makeVerifier(config)
        apiKeys = config.apiKeys.map { Array($0.utf8) }
        reads = try ReadExecutor(path: config.storagePath)
    }

    static func makeVerifier(_ config: GatewayConfig) throws -> WebhookVerifier {
        try WebhookVerifier(
            secrets: config.webhookSecrets.map { try WebhookSecret($0) },
            toleranceSeconds: Int64(config.timestampToleranceSeconds))
    }

    /// Applies the reloadable keys of a new configuration (SIGHUP). Throws, changing
    /// nothing, if the new secrets cannot be used.
    public func reload(_ newConfig: GatewayConfig) throws {
        let newVerifier = try Self.makeVerifier(newConfig)
        if let tokenManager, !newConfig.tokenKey.isEmpty,
            newConfig.tokenKey != config.tokenKey
                || newConfig.previousTokenKeys != config.previousTokenKeys
        {
            let box = try TokenBox(current: newConfig.tokenKey, previous: newConfig.previousTokenKeys)
            // Off the loop: re-encryption is a database transaction.
            let logger = self.logger
            DispatchQueue.global().async {
                do {
                    let count = try tokenManager.rotate(to: box)
                    logger.info("token key rotated", metadata: ["reencrypted": "\(count)"])
                } catch {
                    logger.error("token key rotation failed", metadata: ["error": "\(error)"])
                }
            }
        }
        verifier = newVerifier
        apiKeys = newConfig.apiKeys.map { Array($0.utf8) }
        config = newConfig
    }

    /// Readiness turns 503 from here on; in-flight work still completes.
    public func beginShutdown() {
        shuttingDown = true
    }

    // MARK: Dispatch

    public func handle(_ request: HTTPRequest) {
        let route = Route.match(method: request.method, path: request.path)
        switch route {
        case .healthz:
            respond(request, route, 200, #"{"status":"ok"}"#)
        case .readyz:
            readiness(request, route)
        case .metrics:
            respond(request, route, 200, metrics.render(), contentType: "text/plain; version=0.0.4; charset=utf-8")
        case .webhook:
            ingest(request, route)
        case .sessions:
            guard authorized(request, route) else { return }
            listSessions(request, route)
        case .session(let id):
            guard authorized(request, route) else { return }
            readSession(request, route, id: id)
        case .workoutFIT(let id):
            guard authorized(request, route) else { return }
            workoutFIT(request, route, id: id)
        case .retry(let id):
            guard authorized(request, route) else { return }
            retry(request, route, id: id)
        case .authorize, .connections, .connection, .primaryProvider, .oauthCallback, .garminDeregistrations,
            .garminPermissions:
            handleConnections(request, route)
        case .wrongMethod(_, let allowed):
            respondError(
                request, route, 405, "method_not_allowed",
                "\(request.method.rawValue) is not allowed here; use \(allowed.joined(separator: ", "))",
                extraHeaders: [("Allow", allowed.joined(separator: ", "))])
        case .notFound:
            respondError(request, route, 404, "not_found", "no route for \(request.path)")
        }
    }

    // MARK: Responses

    func respond(
        _ request: HTTPRequest, _ route: Route, _ status: Int, _ body: String,
        contentType: String = "application/json", extraHeaders: [(String, String)] = []
    ) {
        var body = body
        body.withUTF8 { utf8 in
            respond(
                request, route, status, UnsafeRawBufferPointer(utf8), contentType: contentType,
                extraHeaders: extraHeaders)
        }
    }

    func respond(
        _ request: HTTPRequest, _ route: Route, _ status: Int, _ body: [UInt8],
        contentType: String = "application/json", extraHeaders: [(String, String)] = []
    ) {
        body.withUnsafeBytes { raw in
            respond(request, route, status, raw, contentType: contentType, extraHeaders: extraHeaders)
        }
    }

    func respond(
        _ request: HTTPRequest, _ route: Route, _ status: Int, _ body: UnsafeRawBufferPointer,
        contentType: String, extraHeaders: [(String, String)]
    ) {
        guard !request.hasResponded else { return }
        request.respond(
            status: status, contentType: contentType, withRequestID: true, headers: extraHeaders, body: body)
        let elapsed = DispatchTime.now().uptimeNanoseconds &- request.startNanos
        metrics.request(method: request.method.rawValue, route: route.template, status: status, nanoseconds: elapsed)
    }

    func respondError(
        _ request: HTTPRequest, _ route: Route, _ status: Int, _ code: String, _ message: String,
        extraHeaders: [(String, String)] = []
    ) {
        respond(request, route, status, Reply.errorBody(code: code, message: message), extraHeaders: extraHeaders)
    }

    // MARK: Webhooks (SPEC §2)

    private func ingest(_ request: HTTPRequest, _ route: Route) {
        func reject(_ status: Int, _ code: String, _ message: String) {
            metrics.webhook(outcome: code)
            respondError(request, route, status, code, message)
        }
        let length = request.bodyLength
        guard length <= config.maxBodyBytes else {
            return reject(413, "body_too_large", "body is \(length) bytes; the limit is \(config.maxBodyBytes)")
        }
        let headers = request.headers(["content-type", "webhook-id", "webhook-timestamp", "webhook-signature"])
        guard Self.isJSON(headers[0]) else {
            return reject(415, "unsupported_media_type", "Content-Type must be application/json")
        }
        let id = headers[1]
        let timestamp = headers[2]
        let signature = headers[3]
        let now = WallClock.nowSeconds()
        // The bytes the writer stores: copied out of libevent once, then verified and read in place.
        let body = request.bodyBytes()
        let decoded: Result<PlanEvent, PlanEventError>? = body.withUnsafeBufferPointer {
            bytes -> Result<PlanEvent, PlanEventError>? in
            if let failure = verifier.verify(
                id: id, timestamp: timestamp, signature: signature, body: UnsafeRawBufferPointer(bytes), now: now)
            {
                reject(401, failure.code, failure.message)
                return nil
            }
            do {
                return .success(try PlanEvent.decode(bytes))
            } catch let error as PlanEventError {
                return .failure(error)
            } catch {
                return .failure(.malformedJSON("\(error)"))
            }
        }
        guard let decoded else { return }
        let event: PlanEvent
        let webhookID = id ?? ""
        switch decoded {
        case .failure(let error):
            // A retried webhook-id is a duplicate whatever its body: look before refusing.
            return reads.run(
                loop: loop, { db in try SessionQueries(db: db).webhookSeen(webhookID) },
                then: { [self] seen in
                    if case .success(true) = seen {
                        metrics.webhook(outcome: "duplicate")
                        respond(request, route, 200, #"{"duplicate":true}"#)
                    } else {
                        reject(400, error.code, error.message)
                    }
                })
        case .success(let value): event = value
        }
        let record = IngestRecord(
            webhookID: webhookID, receivedAtMillis: WallClock.nowMillis(), event: event, body: body)
        writer.submit(
            .ingest(record) { [self] result in
                loop.execute { self.ingestCommitted(request, route, result, event: event, webhookID: webhookID) }
            })
    }

    private func ingestCommitted(
        _ request: HTTPRequest, _ route: Route, _ result: Result<IngestOutcome, any Error>, event: PlanEvent,
        webhookID: String
    ) {
        switch result {
        case .success(.duplicate):
            metrics.webhook(outcome: "duplicate")
            respond(request, route, 200, #"{"duplicate":true}"#)
        case .success(let outcome):
            if outcome == .ignored {
                metrics.webhook(outcome: "ignored")
                logger.info(
                    "ignored webhook of unknown type",
                    metadata: [
                        "request_id": "\(request.id)", "webhook_id": "\(webhookID)", "type": "\(event.typeName)",
                    ])
            } else {
                metrics.webhook(outcome: "accepted")
                if outcome == .applied { dispatcher?.wake() }
            }
            respond(request, route, 202, #"{"accepted":true}"#)
        case .failure(let error):
            metrics.webhook(outcome: "storage_unavailable")
            var metadata: Logger.Metadata = [
                "request_id": "\(request.id)", "webhook_id": "\(webhookID)", "type": "\(event.typeName)",
                "error": "\(error)",
            ]
            switch event {
            case .sessionUpsert(let session):
                metadata["session_id"] = "\(session.id)"
                metadata["athlete_id"] = "\(session.athleteID)"
            case .sessionDeleted(let ref):
                metadata["session_id"] = "\(ref.id)"
                metadata["athlete_id"] = "\(ref.athleteID)"
            case .athleteDeleted(let athleteID): metadata["athlete_id"] = "\(athleteID)"
            case .unknown: break
            }
            logger.error("webhook not stored", metadata: metadata)
            respondError(request, route, 503, "storage_unavailable", "the event could not be stored; retry later")
        }
    }

    /// `application/json`, any case, optionally followed by parameters (`; charset=utf-8`).
    static func isJSON(_ contentType: String?) -> Bool {
        guard var contentType else { return false }
        return contentType.withUTF8 { bytes in
            var start = 0
            while start < bytes.count, bytes[start] == 0x20 || bytes[start] == 0x09 { start += 1 }
            let expected = Array("application/json".utf8)
            guard bytes.count - start >= expected.count else { return false }
            for (k, e) in expected.enumerated() {
                let b = bytes[start + k]
                let lower = b >= 0x41 && b <= 0x5A ? b | 0x20 : b
                if lower != e { return false }
            }
            var rest = start + expected.count
            while rest < bytes.count, bytes[rest] == 0x20 || bytes[rest] == 0x09 { rest += 1 }
            return rest == bytes.count || bytes[rest] == UInt8(ascii: ";")
        }
    }

    // MARK: REST (SPEC §6)

    func authorized(_ request: HTTPRequest, _ route: Route) -> Bool {
        var ok = false
        if let header = request.header("Authorization"), header.hasPrefix("Bearer ") {
            let presented = Array(header.utf8.dropFirst(7))
            // Compare against every key, so timing does not tell which one matched.
            for key in apiKeys where ConstantTime.equals(key, presented) { ok = true }
        }
        if !ok {
            respondError(
                request, route, 401, "unauthorized", "a valid Authorization: Bearer <api key> header is required",
                extraHeaders: [("WWW-Authenticate", "Bearer")])
        }
        return ok
    }

    private func readSession(_ request: HTTPRequest, _ route: Route, id: String) {
        reads.run(
            loop: loop, { db in try SessionQueries(db: db).status(id: id) },
            then: { [self] result in
                switch result {
                case .success(let row?): respond(request, route, 200, row.json.serialized)
                case .success(nil): respondError(request, route, 404, "not_found", "no session \(id)")
                case .failure(let error): readFailed(request, route, error)
                }
            })
    }

    private func listSessions(_ request: HTTPRequest, _ route: Route) {
        let parameters = request.queryParameters
        var filter = SessionFilter()
        if let athlete = parameters["athleteId"], !athlete.isEmpty { filter.athleteID = athlete }
        if let status = parameters["status"], !status.isEmpty {
            guard let parsed = ExportStatus(rawValue: status) else {
                return respondError(
                    request, route, 400, "invalid_parameter",
                    "status: expected one of \(ExportStatus.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            filter.status = parsed
        }
        if let limit = parameters["limit"] {
            guard let value = Int(limit), (1...500).contains(value) else {
                return respondError(request, route, 400, "invalid_parameter", "limit: expected an integer 1...500")
            }
            filter.limit = value
        }
        if let cursor = parameters["cursor"], !cursor.isEmpty {
            guard let bytes = Base64.decode(cursor), let after = String(validating: bytes, as: UTF8.self) else {
                return respondError(request, route, 400, "invalid_parameter", "cursor: not a cursor from this API")
            }
            filter.afterID = after
        }
        reads.run(
            loop: loop, { db in try SessionQueries(db: db).list(filter) },
            then: { [self] result in
                switch result {
                case .success(let page):
                    let next: JSONValue =
                        page.hasMore ? .string(Base64.encode(Array((page.rows.last?.sessionID ?? "").utf8))) : .null
                    let body = JSONValue.object(
                        JSONObject([("sessions", .array(page.rows.map(\.json))), ("nextCursor", next)]))
                    respond(request, route, 200, body.serialized)
                case .failure(let error): readFailed(request, route, error)
                }
            })
    }

    /// Re-queues a FAILED or NOT_CONNECTED session (SPEC §6): a fresh set of attempts
    /// (the same change as `gatewayd sessions retry`).
    private func retry(_ request: HTTPRequest, _ route: Route, id: String) {
        let now = WallClock.nowMillis()
        writer.perform(
            { db in try OperatorStore.retry(db, sessionID: id, now: now) },
            completion: { [self] result in
                loop.execute {
                    switch result {
                    case .success(.queued):
                        self.logger.info(
                            "session re-queued", metadata: ["request_id": "\(request.id)", "session_id": "\(id)"])
                        self.dispatcher?.wake()
                        self.respond(request, route, 202, #"{"queued":true}"#)
                    case .success(.notFound):
                        self.respondError(request, route, 404, "not_found", "no session \(id)")
                    case .success(.notRetryable(let status)):
                        self.respondError(
                            request, route, 409, "not_retryable",
                            "only FAILED or NOT_CONNECTED sessions are retried; this one is \(status ?? "not exported")"
                        )
                    case .failure(let error):
                        self.logger.error(
                            "retry not stored",
                            metadata: ["request_id": "\(request.id)", "session_id": "\(id)", "error": "\(error)"])
                        self.respondError(request, route, 503, "storage_unavailable", "\(error)")
                    }
                }
            })
    }

    /// The session as a FIT workout file, for devices without a push API (SPEC §4).
    /// Decoding and encoding run on the reader queue, off the loop.
    private func workoutFIT(_ request: HTTPRequest, _ route: Route, id: String) {
        reads.run(
            loop: loop,
            { db -> FITOutcome in
                guard let event = try SessionQueries(db: db).latestEvent(sessionID: id) else { return .notFound }
                if event.deleted { return .deleted }
                guard event.sessionType == "ENDURANCE" else { return .invalid("not an ENDURANCE session") }
                guard let root = try? JSONParser.parse(event.body), let session = root["data"]?["session"] else {
                    return .invalid("the stored event has no session")
                }
                do throws(ValidationFailure) {
                    return .file(try FITWorkoutEncoder.encode(try ExportSession.decode(from: session)))
                } catch {
                    return .invalid(error.message)
                }
            },
            then: { [self] result in
                switch result {
                case .success(.file(let bytes)):
                    let name = Self.fileName(id)
                    respond(
                        request, route, 200, bytes, contentType: "application/vnd.ant.fit",
                        extraHeaders: [("Content-Disposition", "attachment; filename=\"\(name).fit\"")])
                case .success(.notFound): respondError(request, route, 404, "not_found", "no session \(id)")
                case .success(.deleted): respondError(request, route, 404, "not_found", "session \(id) was deleted")
                case .success(.invalid(let message)):
                    respondError(request, route, 422, "validation_failed", message)
                case .failure(let error): readFailed(request, route, error)
                }
            })
    }

    /// A session id reduced to characters safe in a Content-Disposition filename.
    static func fileName(_ id: String) -> String {
        let safe = id.unicodeScalars.map { scalar -> Character in
            let ok =
                scalar.isASCII
                && (scalar.properties.isAlphabetic || ("0"..."9").contains(scalar)
                    || "_-.".unicodeScalars.contains(scalar))
            return ok ? Character(scalar) : "_"
        }
        return String(safe.prefix(100))
    }

    private func readFailed(_ request: HTTPRequest, _ route: Route, _ error: any Error) {
        logger.error("read failed", metadata: ["request_id": "\(request.id)", "error": "\(error)"])
        respondError(request, route, 503, "storage_unavailable", "the database could not be read; retry later")
    }

    // MARK: Monitors (SPEC §7)

    private func readiness(_ request: HTTPRequest, _ route: Route) {
        guard !shuttingDown else {
            return respondError(request, route, 503, "not_ready", "shutting down")
        }
        // The probe is a real commit through the writer: it proves the writer thread is
        // alive and the disk takes writes. A writer that hangs answers 503 after 2 s.
        let timer = loop.schedule(after: 2) { [self] in
            respondError(request, route, 503, "not_ready", "the database did not confirm a write within 2 s")
        }
        let timerBox = UncheckedSendable(timer)
        writer.submit(
            .probe { [self] result in
                loop.execute {
                    timerBox.value.cancel()
                    switch result {
                    case .success where self.dispatcher.map({ !$0.isAlive }) ?? false:
                        self.respondError(request, route, 503, "not_ready", "the push dispatcher is not running")
                    case .success: self.respond(request, route, 200, #"{"ready":true}"#)
                    case .failure(let error):
                        self.respondError(request, route, 503, "not_ready", "database write failed: \(error)")
                    }
                }
            })
    }
}

enum FITOutcome {
    case file([UInt8])
    case notFound
    case deleted
    case invalid(String)
}

/// Runs read-only queries off the loop thread, on one reader connection with its
/// own serial queue, and hands results back to the loop.
final class ReadExecutor: @unchecked Sendable {
    private let queue = DispatchQueue(label: "gatewayd.reads")
    private let db: Database

    init(path: String) throws {
        db = try Database.openForReading(path: path)
    }

    func run<T>(
        loop: EventLoop, _ work: @escaping (Database) throws -> T, then: @escaping (Result<T, any Error>) -> Void
    ) {
        let job = ReadJob(work: work, then: then)
        queue.async { [self] in
            job.result = Result { try job.work(db) }
            loop.execute { job.then(job.result!) }
        }
    }
}

/// One read and its continuation. Built and finished on the loop thread, run on the
/// reader queue in between: never used by two threads at once.
private final class ReadJob<T>: @unchecked Sendable {
    let work: (Database) throws -> T
    let then: (Result<T, any Error>) -> Void
    var result: Result<T, any Error>?

    init(work: @escaping (Database) throws -> T, then: @escaping (Result<T, any Error>) -> Void) {
        self.work = work
        self.then = then
    }
}

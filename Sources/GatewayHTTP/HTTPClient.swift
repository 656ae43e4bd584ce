private import CLibEvent
import Foundation
import Logging

/// One outbound HTTP(S) request.
public struct HTTPClientRequest: Sendable {
    public var method: HTTPMethod
    /// Absolute URL: `http://` or `https://`, host, optional port, path and query.
    public var url: String
    public var headers: [(String, String)]
    public var body: [UInt8]

    public init(method: HTTPMethod, url: String, headers: [(String, String)] = [], body: [UInt8] = []) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
    }
}

public struct HTTPClientResponse: Sendable {
    public var status: Int
    public var headers: [(String, String)]
    public var body: [UInt8]

    public init(status: Int, headers: [(String, String)], body: [UInt8]) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// First header with this name, case-insensitive.
    public func header(_ name: String) -> String? {
        headers.first { $0.0.caseInsensitiveCompare(name) == .orderedSame }?.1
    }
}

/// Why a call produced no HTTP response. `outcomeUnknown` tells whether the request
/// may have reached the server (SPEC §5: such calls are reconciled before a retry).
public enum HTTPClientError: Error, Sendable, Equatable, CustomStringConvertible {
    case invalidURL(String)
    /// TCP connect failed or was refused: the request never left.
    case connectFailed(String)
    /// TLS handshake or certificate/host-name verification failed: never left.
    case tlsFailed(String)
    /// No complete response within the timeout.
    case timedOut
    /// The connection broke after the request was (maybe) sent.
    case connectionLost(String)

    public var outcomeUnknown: Bool {
        switch self {
        case .timedOut, .connectionLost: return true
        case .invalidURL, .connectFailed, .tlsFailed: return false
        }
    }

    public var description: String {
        switch self {
        case .invalidURL(let u): return "invalid URL \(u)"
        case .connectFailed(let why): return "connect failed: \(why)"
        case .tlsFailed(let why): return "TLS failed: \(why)"
        case .timedOut: return "timed out"
        case .connectionLost(let why): return "connection lost: \(why)"
        }
    }
}

public struct HTTPClientConfiguration: Sendable {
    /// Extra trusted CA certificates (PEM file), added to the system's.
    public var caFile: String?
    public var connectTimeoutMillis: Int = 5000
    /// Whole call: connect, send, receive.
    public var totalTimeoutMillis: Int = 15000
    /// Idle keep-alive connections kept per host:port.
    public var maxIdlePerHost: Int = 8
    /// Connections open at once per host:port (busy and idle); further calls wait for one.
    public var maxConnectionsPerHost: Int = 64

    public init(caFile: String? = nil, connectTimeoutMillis: Int = 5000, totalTimeoutMillis: Int = 15000) {
        self.caFile = caFile
        self.connectTimeoutMillis = connectTimeoutMillis
        self.totalTimeoutMillis = totalTimeoutMillis
    }
}

/// Outbound HTTP/1.1 client on libevent's evhttp, over `bufferevent_openssl` for
/// https: certificate chain and host-name verification (SNI, `SSL_set1_host`), the
/// system trust store plus an optional extra CA file, connect and total timeouts,
/// keep-alive reuse per host. It runs its own event loop thread; `send` blocks the
/// calling thread (a push worker), never the inbound loop.
///
/// Failures are classified by how far the connection got: a call whose connection
/// never reached "established" (TCP connected and, for https, the handshake done)
/// fails with `connectFailed` or `tlsFailed` (the request never left); once
/// established, a broken connection is `connectionLost` and the total timeout is
/// `timedOut` (outcome unknown).
public final class HTTPClient: @unchecked Sendable {
    public let configuration: HTTPClientConfiguration
    private let loop: EventLoop
    private let engine: ClientEngine
    private let loopExited = DispatchSemaphore(value: 0)
    private let stateLock = NSLock()
    // Guarded by `stateLock`.
    private var stopped = false

    public init(configuration: HTTPClientConfiguration, logger: Logger) throws {
        self.configuration = configuration
        let tls = try TLSClientContext(caFile: configuration.caFile)
        loop = EventLoop()
        engine = ClientEngine(loop: loop, tls: tls, configuration: configuration, logger: logger)
        let thread = Thread { [loop, loopExited] in
            loop.run()
            loopExited.signal()
        }
        thread.name = "http-client"
        thread.start()
    }

    deinit { shutdown() }

    /// Sends one request and waits for the whole response.
    public func send(_ request: HTTPClientRequest) throws(HTTPClientError) -> HTTPClientResponse {
        let target = try RequestTarget(request)
        let call = ClientCall(target: target, request: request)
        stateLock.lock()
        if stopped {
            stateLock.unlock()
            throw HTTPClientError.connectionLost("client shut down")
        }
        // Posted under the lock so `shutdown`'s task always runs after it (the mailbox is FIFO).
        let engine = self.engine
        loop.execute { engine.start(call) }
        stateLock.unlock()
        // The loop's timers end every call; this bound only guards against a wedged loop.
        let backstop = DispatchTime.now() + .milliseconds(configuration.totalTimeoutMillis + 5000)
        if call.done.wait(timeout: backstop) == .timedOut {
            call.complete(.failure(.timedOut))
            loop.execute { engine.abandon(call) }
        }
        return try call.result()
    }

    /// Stops the client's loop thread; pending calls fail with `connectionLost`.
    public func shutdown() {
        stateLock.lock()
        if stopped {
            stateLock.unlock()
            return
        }
        stopped = true
        let engine = self.engine
        let loop = self.loop
        loop.execute {
            engine.stopAll()
            loop.stop()
        }
        stateLock.unlock()
        loopExited.wait()
    }
}

// MARK: - Request target

/// The parts of an absolute URL the client needs, parsed on the caller's thread.
struct RequestTarget: Sendable {
    let https: Bool
    /// Host to connect to and verify (IPv6 literals without brackets).
    let host: String
    let port: UInt16
    /// Value of the Host header.
    let hostHeader: String
    /// Path and query.
    let uri: String
    let command: UInt32

    var poolKey: String { "\(https ? "https" : "http")://\(host):\(port)" }

    init(_ request: HTTPClientRequest) throws(HTTPClientError) {
        let url = request.url
        guard let uri = evhttp_uri_parse_with_flags(url, 0) else { throw .invalidURL(url) }
        defer { evhttp_uri_free(uri) }
        guard let schemePointer = evhttp_uri_get_scheme(uri) else { throw .invalidURL(url) }
        switch String(cString: schemePointer).lowercased() {
        case "https": https = true
        case "http": https = false
        default: throw .invalidURL(url)
        }
        guard let hostPointer = evhttp_uri_get_host(uri) else { throw .invalidURL(url) }
        let rawHost = String(cString: hostPointer)
        var host = rawHost
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw .invalidURL(url) }
        self.host = host
        let defaultPort: Int32 = https ? 443 : 80
        let explicitPort = evhttp_uri_get_port(uri)
        if explicitPort == -1 {
            port = UInt16(defaultPort)
        } else {
            guard explicitPort > 0 && explicitPort <= 65535 else { throw .invalidURL(url) }
            port = UInt16(explicitPort)
        }
        let bracketed = host.contains(":") ? "[\(host)]" : host
        hostHeader = explicitPort == -1 || explicitPort == defaultPort ? bracketed : "\(bracketed):\(explicitPort)"
        var path = evhttp_uri_get_path(uri).map { String(cString: $0) } ?? ""
        if path.isEmpty { path = "/" }
        guard path.hasPrefix("/") else { throw .invalidURL(url) }
        if let query = evhttp_uri_get_query(uri) { path += "?" + String(cString: query) }
        self.uri = path
        switch request.method {
        case .get: command = EVHTTP_REQ_GET.rawValue
        case .post: command = EVHTTP_REQ_POST.rawValue
        case .put: command = EVHTTP_REQ_PUT.rawValue
        case .delete: command = EVHTTP_REQ_DELETE.rawValue
        case .head: command = EVHTTP_REQ_HEAD.rawValue
        case .options: command = EVHTTP_REQ_OPTIONS.rawValue
        case .patch: command = EVHTTP_REQ_PATCH.rawValue
        case .trace, .other: throw .invalidURL("unsupported method for \(url)")
        }
        for (name, value) in request.headers {
            let bad = name.isEmpty || name.utf8.contains { $0 <= 32 || $0 == UInt8(ascii: ":") || $0 >= 127 }
            if bad || value.utf8.contains(where: { $0 == 13 || $0 == 10 || $0 == 0 }) {
                throw .invalidURL("invalid header \(name) for \(url)")
            }
        }
    }
}

// MARK: - One call

/// One `send`: the caller waits on `done`; everything but the outcome is loop-confined.
final class ClientCall: @unchecked Sendable {
    let target: RequestTarget
    let request: HTTPClientRequest
    let done = DispatchSemaphore(value: 0)
    private let lock = NSLock()
    private var outcome: Result<HTTPClientResponse, HTTPClientError>?

    // Loop thread only.
    var engine: ClientEngine?
    var connection: ClientConnection?
    var rawRequest: OpaquePointer?
    var totalTimer: LoopTimer?
    var connectTimer: LoopTimer?
    var abortReason: AbortReason?
    /// evhttp_request_error raw value from the error callback.
    var errorCode: UInt32?
    var errorErrno: Int32 = 0
    var finished = false

    enum AbortReason { case connectTimeout, totalTimeout, shutdown }

    init(target: RequestTarget, request: HTTPClientRequest) {
        self.target = target
        self.request = request
    }

    /// Sets the outcome once and wakes the caller; false if it was already set.
    @discardableResult
    func complete(_ result: Result<HTTPClientResponse, HTTPClientError>) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard outcome == nil else { return false }
        outcome = result
        done.signal()
        return true
    }

    func result() throws(HTTPClientError) -> HTTPClientResponse {
        lock.lock()
        let outcome = self.outcome
        lock.unlock()
        guard let outcome else { throw .timedOut }
        return try outcome.get()
    }
}

/// One evhttp_connection (one TCP/TLS connection at a time), loop-confined.
final class ClientConnection {
    let key: String
    let https: Bool
    var evcon: OpaquePointer!
    /// Owned by the bufferevent (freed with it).
    var ssl: OpaquePointer?
    /// The call in flight; at most one.
    var call: ClientCall?
    /// The established connection closed (libevent's close callback): never reuse it,
    /// and a failing call on it may have reached the server.
    var closed = false
    var handshakeStarted = false
    var handshakeDone = false
    /// First certificate verification failure of the handshake.
    var verifyError: String?

    init(key: String, https: Bool) {
        self.key = key
        self.https = https
    }
}

final class HostPool {
    var idle: [ClientConnection] = []
    var open = 0
    var waiting: [ClientCall] = []
}

// MARK: - TLS

/// One SSL_CTX per client: system trust store plus the optional CA file, peer
/// verification, TLS 1.2 or newer.
final class TLSClientContext: @unchecked Sendable {
    let ctx: OpaquePointer

    init(caFile: String?) throws(HTTPClientError) {
        guard let ctx = SSL_CTX_new(TLS_client_method()) else { throw .tlsFailed("SSL_CTX_new failed") }
        self.ctx = ctx
        SSL_CTX_set_default_verify_paths(ctx)
        if let caFile, !caFile.isEmpty {
            guard SSL_CTX_load_verify_locations(ctx, caFile, nil) == 1 else {
                ERR_clear_error()
                throw .tlsFailed("cannot load CA file \(caFile)")
            }
        }
        _ = gw_SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION)
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, tlsVerifyCallback)
        SSL_CTX_set_info_callback(ctx, tlsInfoCallback)
    }

    deinit { SSL_CTX_free(ctx) }
}

private func connectionOf(ssl: OpaquePointer?) -> ClientConnection? {
    guard let ssl, let pointer = SSL_get_ex_data(ssl, 0) else { return nil }
    return Unmanaged<ClientConnection>.fromOpaque(pointer).takeUnretainedValue()
}

/// Records the first verification error (chain or host name) on the connection; the
/// SSL object is reset when libevent closes the socket, so the result must be kept here.
private let tlsVerifyCallback: @convention(c) (Int32, OpaquePointer?) -> Int32 = { ok, store in
    guard ok == 0, let store else { return ok }
    let ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx())
    if let connection = connectionOf(ssl: OpaquePointer(ssl)), connection.verifyError == nil {
        let code = X509_STORE_CTX_get_error(store)
        let depth = X509_STORE_CTX_get_error_depth(store)
        let text = X509_verify_cert_error_string(Int(code)).map { String(cString: $0) } ?? "error \(code)"
        connection.verifyError = "certificate verification failed: \(text) (depth \(depth))"
    }
    return ok
}

private let tlsInfoCallback: @convention(c) (OpaquePointer?, Int32, Int32) -> Void = { ssl, type, _ in
    guard let connection = connectionOf(ssl: ssl) else { return }
    if type & SSL_CB_HANDSHAKE_START != 0 { connection.handshakeStarted = true }
    if type & SSL_CB_HANDSHAKE_DONE != 0 { connection.handshakeDone = true }
}

// MARK: - Engine (loop thread)

/// All libevent state of one client. Every method runs on the client's loop thread.
final class ClientEngine: @unchecked Sendable {
    private let loop: EventLoop
    private let tls: TLSClientContext
    private let configuration: HTTPClientConfiguration
    private let logger: Logger
    private let dns: OpaquePointer?
    private var pools: [String: HostPool] = [:]
    private var connections: [ObjectIdentifier: ClientConnection] = [:]
    private var calls: [ObjectIdentifier: ClientCall] = [:]
    private var keepLoopAlive: LoopTimer?
    private var stopped = false

    init(loop: EventLoop, tls: TLSClientContext, configuration: HTTPClientConfiguration, logger: Logger) {
        self.loop = loop
        self.tls = tls
        self.configuration = configuration
        self.logger = logger
        // Asynchronous DNS (resolv.conf and /etc/hosts), so a slow lookup never stalls the loop.
        dns = evdns_base_new(loop.base, EVDNS_BASE_INITIALIZE_NAMESERVERS | EVDNS_BASE_DISABLE_WHEN_INACTIVE)
        // event_base_dispatch returns when nothing is pending: keep one long timer.
        // Runs before the loop thread starts, so touching the loop here is safe.
        keepLoopAlive = loop.schedule(after: 86_400, repeating: true) {}
    }

    deinit {
        if let dns { evdns_base_free(dns, 1) }
    }

    func start(_ call: ClientCall) {
        guard !stopped else {
            call.complete(.failure(.connectionLost("client shut down")))
            return
        }
        calls[ObjectIdentifier(call)] = call
        call.engine = self
        let total = Double(configuration.totalTimeoutMillis) / 1000
        call.totalTimer = loop.schedule(after: total) { [unowned self] in self.abort(call, .totalTimeout) }
        let pool = pool(for: call.target.poolKey)
        while let connection = pool.idle.popLast() {
            if connection.closed {
                pool.open -= 1
                destroy(connection)
                continue
            }
            dispatch(call, on: connection)
            return
        }
        if pool.open < max(1, configuration.maxConnectionsPerHost) {
            openConnection(for: call, in: pool)
        } else {
            pool.waiting.append(call)
        }
    }

    /// The caller gave up waiting (wedged loop backstop): drop the call quietly.
    func abandon(_ call: ClientCall) {
        abort(call, .totalTimeout)
    }

    func stopAll() {
        stopped = true
        for call in Array(calls.values) {
            finish(call, .failure(.connectionLost("client shut down")))
        }
        for connection in Array(connections.values) { destroy(connection) }
        pools.removeAll()
        keepLoopAlive?.cancel()
        keepLoopAlive = nil
    }

    private func pool(for key: String) -> HostPool {
        if let pool = pools[key] { return pool }
        let pool = HostPool()
        pools[key] = pool
        return pool
    }

    private func openConnection(for call: ClientCall, in pool: HostPool) {
        do {
            let connection = try makeConnection(call.target)
            pool.open += 1
            dispatch(call, on: connection)
        } catch {
            finish(call, .failure(error))
        }
    }

    private func makeConnection(_ target: RequestTarget) throws(HTTPClientError) -> ClientConnection {
        let connection = ClientConnection(key: target.poolKey, https: target.https)
        let options = Int32(BEV_OPT_CLOSE_ON_FREE.rawValue | BEV_OPT_DEFER_CALLBACKS.rawValue)
        let bev: OpaquePointer
        if target.https {
            guard let ssl = SSL_new(tls.ctx) else { throw .tlsFailed("SSL_new failed") }
            SSL_set_ex_data(ssl, 0, Unmanaged.passUnretained(connection).toOpaque())
            // SNI carries DNS names only (RFC 6066); SSL_set1_host checks names and IP addresses.
            if !isIPAddress(target.host) { _ = gw_SSL_set_tlsext_host_name(ssl, target.host) }
            guard SSL_set1_host(ssl, target.host) == 1 else {
                SSL_free(ssl)
                throw .tlsFailed("cannot verify host name \(target.host)")
            }
            guard let made = bufferevent_openssl_socket_new(loop.base, -1, ssl, BUFFEREVENT_SSL_CONNECTING, options)
            else {
                SSL_free(ssl)
                throw .tlsFailed("bufferevent_openssl_socket_new failed")
            }
            // A peer closing TCP without close_notify is EOF, not an error.
            bufferevent_openssl_set_allow_dirty_shutdown(made, 1)
            connection.ssl = ssl
            bev = made
        } else {
            guard let made = bufferevent_socket_new(loop.base, -1, options) else {
                throw .connectFailed("bufferevent_socket_new failed")
            }
            bev = made
        }
        guard let evcon = evhttp_connection_base_bufferevent_new(loop.base, dns, bev, target.host, target.port)
        else {
            bufferevent_free(bev)
            throw .connectFailed("evhttp_connection_base_bufferevent_new failed")
        }
        connection.evcon = evcon
        // libevent's own timeout covers connect and every read/write; the loop timers are
        // the real bounds, this only backs them up.
        let backstop = configuration.totalTimeoutMillis + 1000
        var tv = timeval(tv_sec: backstop / 1000, tv_usec: (backstop % 1000) * 1000)
        evhttp_connection_set_timeout_tv(evcon, &tv)
        evhttp_connection_set_retries(evcon, 0)
        evhttp_connection_set_max_headers_size(evcon, 64 * 1024)
        evhttp_connection_set_max_body_size(evcon, 64 * 1024 * 1024)
        evhttp_connection_set_closecb(
            evcon,
            { _, context in
                Unmanaged<ClientConnection>.fromOpaque(context!).takeUnretainedValue().closed = true
            }, Unmanaged.passUnretained(connection).toOpaque())
        connections[ObjectIdentifier(connection)] = connection
        return connection
    }

    private func dispatch(_ call: ClientCall, on connection: ClientConnection) {
        call.connection = connection
        connection.call = call
        connection.verifyError = nil
        let context = Unmanaged.passUnretained(call).toOpaque()
        guard
            let req = evhttp_request_new(
                { req, context in
                    let call = Unmanaged<ClientCall>.fromOpaque(context!).takeUnretainedValue()
                    call.engine?.requestDone(call, req)
                }, context)
        else {
            finish(call, .failure(.connectFailed("evhttp_request_new failed")))
            return
        }
        evhttp_request_set_error_cb(
            req,
            { code, context in
                let call = Unmanaged<ClientCall>.fromOpaque(context!).takeUnretainedValue()
                call.engine?.requestError(call, code)
            })
        let headers = evhttp_request_get_output_headers(req)
        let request = call.request
        let has = { (name: String) in
            request.headers.contains { $0.0.caseInsensitiveCompare(name) == .orderedSame }
        }
        if !has("Host") { evhttp_add_header(headers, "Host", call.target.hostHeader) }
        if !has("Connection") { evhttp_add_header(headers, "Connection", "keep-alive") }
        for (name, value) in request.headers where name.caseInsensitiveCompare("Content-Length") != .orderedSame {
            evhttp_add_header(headers, name, value)
        }
        let method = request.method
        if !request.body.isEmpty || method == .post || method == .put || method == .patch {
            evhttp_add_header(headers, "Content-Length", String(request.body.count))
        }
        if !request.body.isEmpty {
            request.body.withUnsafeBytes { bytes in
                _ = evbuffer_add(evhttp_request_get_output_buffer(req), bytes.baseAddress, bytes.count)
            }
        }
        call.rawRequest = req
        if evhttp_make_request(connection.evcon, req, evhttp_cmd_type(call.target.command), call.target.uri) != 0 {
            // libevent freed the request.
            call.rawRequest = nil
            finish(call, .failure(.connectFailed("evhttp_make_request failed")))
            return
        }
        if !call.finished && !isEstablished(connection) {
            let seconds = Double(configuration.connectTimeoutMillis) / 1000
            call.connectTimer = loop.schedule(after: seconds) { [unowned self] in
                if !self.isEstablished(connection) { self.abort(call, .connectTimeout) }
            }
        }
    }

    // MARK: Completion

    /// evhttp's request callback: a response, a connect failure (a request with no
    /// status, no error callback), or the end of a failure reported by `requestError`.
    fileprivate func requestDone(_ call: ClientCall, _ req: OpaquePointer?) {
        call.rawRequest = nil
        guard !call.finished else { return }
        guard let req else {
            finish(call, .failure(classifyFailure(call)))
            return
        }
        let status = Int(evhttp_request_get_response_code(req))
        guard status != 0 else {
            finish(call, .failure(classifyFailure(call, connectFailure: true)))
            return
        }
        var headers: [(String, String)] = []
        if let input = evhttp_request_get_input_headers(req) {
            var entry = gw_evkeyvalq_first(input)
            while let kv = entry {
                headers.append((String(cString: kv.pointee.key), String(cString: kv.pointee.value)))
                entry = gw_evkeyval_next(kv)
            }
        }
        var body: [UInt8] = []
        if let buffer = evhttp_request_get_input_buffer(req) {
            let length = evbuffer_get_length(buffer)
            if length > 0 {
                body = [UInt8](unsafeUninitializedCapacity: length) { out, count in
                    count = Int(max(0, evbuffer_remove(buffer, out.baseAddress, length)))
                }
            }
        }
        finish(call, .success(HTTPClientResponse(status: status, headers: headers, body: body)))
    }

    /// evhttp's error callback; the request callback follows except for a cancel.
    fileprivate func requestError(_ call: ClientCall, _ code: evhttp_request_error) {
        call.errorCode = code.rawValue
        call.errorErrno = errno
        guard code == EVREQ_HTTP_REQUEST_CANCEL else { return }
        call.rawRequest = nil
        guard !call.finished else { return }
        finish(call, .failure(classifyFailure(call)))
    }

    /// Why a call failed, from what its connection reached before it broke.
    private func classifyFailure(_ call: ClientCall, connectFailure: Bool = false) -> HTTPClientError {
        let target = "\(call.target.host):\(call.target.port)"
        guard let connection = call.connection else { return .connectFailed("no connection to \(target)") }
        let tlsDetail = connection.https ? opensslErrors(connection) : nil
        if let why = connection.verifyError { return .tlsFailed(why) }
        // libevent reports an established connection's close (its close callback)
        // before the request fails: only then may the request have reached the server.
        if connection.closed && !connectFailure {
            switch call.abortReason {
            case .totalTimeout, .connectTimeout: return .timedOut
            case .shutdown: return .connectionLost("client shut down")
            case nil: break
            }
            switch call.errorCode {
            case EVREQ_HTTP_TIMEOUT.rawValue: return .timedOut
            case EVREQ_HTTP_INVALID_HEADER.rawValue: return .connectionLost("invalid response from \(target)")
            case EVREQ_HTTP_DATA_TOO_LONG.rawValue: return .connectionLost("response from \(target) too large")
            default: return .connectionLost("connection to \(target) closed before the response was complete")
            }
        }
        let timedOut = call.abortReason == .connectTimeout || call.abortReason == .totalTimeout
        if connection.https && connection.handshakeStarted && !connection.handshakeDone && !connectFailure {
            if timedOut { return .tlsFailed("TLS handshake with \(target) timed out") }
            if let tlsDetail { return .tlsFailed("TLS handshake with \(target) failed: \(tlsDetail)") }
            let savedErrno = call.errorErrno
            if ![ECONNREFUSED, EHOSTUNREACH, ENETUNREACH, ETIMEDOUT].contains(savedErrno) {
                return .tlsFailed("TLS handshake with \(target) failed")
            }
        }
        if timedOut { return .connectFailed("connect to \(target) timed out") }
        if call.abortReason == .shutdown { return .connectionLost("client shut down") }
        if connectFailure { return .connectFailed("cannot connect to \(target)") }
        let savedErrno = call.errorErrno
        if savedErrno != 0 && savedErrno != EAGAIN {
            return .connectFailed("cannot connect to \(target): \(String(cString: strerror(savedErrno)))")
        }
        return .connectFailed("cannot connect to \(target)")
    }

    /// The OpenSSL errors libevent queued on the connection's bufferevent, newest first.
    private func opensslErrors(_ connection: ClientConnection) -> String? {
        guard let bev = evhttp_connection_get_bufferevent(connection.evcon) else { return nil }
        var texts: [String] = []
        while true {
            let code = bufferevent_get_openssl_error(bev)
            if code == 0 { break }
            // libevent also queues SSL_get_error's small result codes: keep library errors only.
            guard (code >> 23) & 0xFF != 0 else { continue }
            var buffer = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &buffer, buffer.count)
            texts.append(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        return texts.isEmpty ? nil : texts.joined(separator: "; ")
    }

    private func abort(_ call: ClientCall, _ reason: ClientCall.AbortReason) {
        guard !call.finished else { return }
        call.abortReason = reason
        if let req = call.rawRequest {
            // Fails the request synchronously through `requestError(CANCEL)`, after
            // libevent's close callback if the connection was established.
            call.rawRequest = nil
            evhttp_cancel_request(req)
        }
        if !call.finished {
            // Still waiting for a free connection.
            if let pool = pools[call.target.poolKey] { pool.waiting.removeAll { $0 === call } }
            let failure: HTTPClientError =
                reason == .shutdown
                ? .connectionLost("client shut down")
                : .connectFailed("no free connection to \(call.target.host):\(call.target.port) in time")
            finish(call, .failure(failure))
        }
    }

    private func finish(_ call: ClientCall, _ result: Result<HTTPClientResponse, HTTPClientError>) {
        guard !call.finished else { return }
        call.finished = true
        call.totalTimer?.cancel()
        call.totalTimer = nil
        call.connectTimer?.cancel()
        call.connectTimer = nil
        calls[ObjectIdentifier(call)] = nil
        if case .failure(let error) = result {
            logger.debug(
                "outbound call failed",
                metadata: ["host": "\(call.target.host):\(call.target.port)", "error": "\(error)"])
        }
        if let connection = call.connection {
            call.connection = nil
            connection.call = nil
            let reusable: Bool
            if case .success = result { reusable = !connection.closed } else { reusable = false }
            // Never free or reuse a connection inside its own libevent callback. Queued
            // before the caller wakes: its next request, queued after, finds the
            // connection idle again (keep-alive), whatever thread runs first.
            loop.executeUnchecked { [unowned self] in self.release(connection, reusable: reusable) }
        }
        call.complete(result)
    }

    private func release(_ connection: ClientConnection, reusable: Bool) {
        guard !stopped, let pool = pools[connection.key] else {
            destroy(connection)
            return
        }
        if reusable && !connection.closed {
            if !pool.waiting.isEmpty {
                dispatch(pool.waiting.removeFirst(), on: connection)
                return
            }
            if pool.idle.count < configuration.maxIdlePerHost {
                pool.idle.append(connection)
                return
            }
        }
        pool.open -= 1
        destroy(connection)
        if !pool.waiting.isEmpty { openConnection(for: pool.waiting.removeFirst(), in: pool) }
    }

    private func destroy(_ connection: ClientConnection) {
        guard connections.removeValue(forKey: ObjectIdentifier(connection)) != nil else { return }
        // Frees the bufferevent and its SSL; the close callback may run meanwhile.
        evhttp_connection_free(connection.evcon)
        connection.ssl = nil
    }

    /// TCP connected and, for https, the handshake done.
    private func isEstablished(_ connection: ClientConnection) -> Bool {
        if connection.closed { return false }
        if connection.https { return connection.handshakeDone }
        guard let bev = evhttp_connection_get_bufferevent(connection.evcon) else { return false }
        let fd = bufferevent_getfd(bev)
        guard fd >= 0 else { return false }
        var address = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        return withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &length) == 0 }
        }
    }
}

private func isIPAddress(_ host: String) -> Bool {
    var v4 = in_addr()
    var v6 = in6_addr()
    return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
}

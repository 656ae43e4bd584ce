private import CLibEvent
import Foundation
import Logging

public enum HTTPMethod: String, Sendable {
    case get = "GET", post = "POST", put = "PUT", delete = "DELETE", head = "HEAD", options = "OPTIONS"
    case patch = "PATCH", trace = "TRACE", other = "OTHER"
}

/// Limits that keep one client from holding the server (SPEC §7, issue 2 robustness).
public struct HTTPServerLimits: Sendable {
    /// Seconds a connection may stay silent while sending a request or receiving a
    /// response (libevent's timeout, which restarts at every byte).
    public var ioTimeoutSeconds: Int32 = 10
    /// Seconds a connection has to deliver a whole request, counted from when it
    /// connected or from its previous request: a client that trickles bytes slowly
    /// enough to dodge `ioTimeoutSeconds` is cut off here.
    public var requestTimeoutSeconds: Int = 60
    /// Largest request head (request line + headers).
    public var maxHeaderBytes: Int = 16 * 1024
    /// Hard cap where libevent itself refuses the body (413, plain body, connection closed).
    /// The application applies its own, smaller limit with a JSON error below it.
    public var hardMaxBodyBytes: Int = 4 * 1024 * 1024
    /// Open connections at most; past it the listener pauses until one closes.
    public var maxConnections: Int = 4096

    public init() {}
}

/// One request, owned by the loop thread. It may travel to other threads inside
/// closures, but only the loop thread may call its methods.
public final class HTTPRequest: @unchecked Sendable {
    let raw: OpaquePointer
    public let method: HTTPMethod
    /// Path without the query, percent-decoding not applied.
    public let path: String
    public let query: String?
    public let startNanos: UInt64
    /// The request's id for log lines and the `X-Request-Id` header: the server's
    /// random prefix and a counter (`3f9a1c2b-17`).
    public let id: String
    private var responded = false
    private let date: HTTPDateCache?

    init(raw: OpaquePointer, id: String, date: HTTPDateCache? = nil) {
        self.raw = raw
        self.id = id
        self.date = date
        startNanos = DispatchTime.now().uptimeNanoseconds
        switch evhttp_request_get_command(raw) {
        case EVHTTP_REQ_GET: method = .get
        case EVHTTP_REQ_POST: method = .post
        case EVHTTP_REQ_PUT: method = .put
        case EVHTTP_REQ_DELETE: method = .delete
        case EVHTTP_REQ_HEAD: method = .head
        case EVHTTP_REQ_OPTIONS: method = .options
        case EVHTTP_REQ_PATCH: method = .patch
        case EVHTTP_REQ_TRACE: method = .trace
        default: method = .other
        }
        if let uri = evhttp_request_get_evhttp_uri(raw) {
            path = evhttp_uri_get_path(uri).map { String(cString: $0) } ?? "/"
            query = evhttp_uri_get_query(uri).map { String(cString: $0) }
        } else {
            path = "/"
            query = nil
        }
    }

    public func header(_ name: String) -> String? {
        guard let headers = evhttp_request_get_input_headers(raw), let value = evhttp_find_header(headers, name)
        else { return nil }
        return String(cString: value)
    }

    /// The values of several headers (names in lowercase ASCII), in one pass over the
    /// request's headers instead of one search each; the first occurrence wins, as with
    /// ``header(_:)``.
    public func headers<let count: Int>(_ names: [count of StaticString]) -> [count of String?] {
        var values = [count of String?](repeating: nil)
        guard let headers = evhttp_request_get_input_headers(raw) else { return values }
        var entry = headers.pointee.tqh_first
        while let current = entry {
            entry = current.pointee.next.tqe_next
            guard let key = current.pointee.key, let value = current.pointee.value else { continue }
            let length = strlen(key)
            for index in 0..<count where values[index] == nil {
                let name = names[index]
                guard name.utf8CodeUnitCount == length else { continue }
                var same = true
                for offset in 0..<length {
                    var byte = UInt8(bitPattern: key[offset])
                    if byte >= 0x41 && byte <= 0x5A { byte |= 0x20 }
                    if byte != name.utf8Start[offset] {
                        same = false
                        break
                    }
                }
                if same {
                    values[index] = String(cString: value)
                    break
                }
            }
        }
        return values
    }

    /// Number of body bytes received.
    public var bodyLength: Int {
        guard let buffer = evhttp_request_get_input_buffer(raw) else { return 0 }
        return evbuffer_get_length(buffer)
    }

    /// A copy of the body: one copy out of libevent's buffer chain, where `withBody`
    /// would first make the chain contiguous (another copy when the body arrived in
    /// more than one read).
    public func bodyBytes() -> [UInt8] {
        guard let buffer = evhttp_request_get_input_buffer(raw) else { return [] }
        let length = evbuffer_get_length(buffer)
        guard length > 0 else { return [] }
        return [UInt8](unsafeUninitializedCapacity: length) { storage, initialized in
            let copied = evbuffer_copyout(buffer, storage.baseAddress, length)
            initialized = max(copied, 0)
        }
    }

    /// The body as one contiguous buffer, valid during `body` only.
    public func withBody<T>(_ body: (UnsafeBufferPointer<UInt8>) throws -> T) rethrows -> T {
        guard let buffer = evhttp_request_get_input_buffer(raw) else {
            return try body(UnsafeBufferPointer(start: nil, count: 0))
        }
        let length = evbuffer_get_length(buffer)
        guard length > 0, let p = evbuffer_pullup(buffer, -1) else {
            return try body(UnsafeBufferPointer(start: nil, count: 0))
        }
        return try body(UnsafeBufferPointer(start: p, count: length))
    }

    /// Query parameters, percent-decoded; repeated keys keep the first value.
    public var queryParameters: [String: String] {
        guard let query else { return [:] }
        var result: [String: String] = [:]
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = Self.decode(parts[0])
            let value = parts.count > 1 ? Self.decode(parts[1]) : ""
            if result[key] == nil { result[key] = value }
        }
        return result
    }

    static func decode(_ text: Substring) -> String {
        let plus = text.replacingOccurrences(of: "+", with: " ")
        return plus.removingPercentEncoding ?? plus
    }

    public var hasResponded: Bool { responded }

    /// Sends the response. A second call is ignored.
    public func respond(status: Int, headers: [(String, String)] = [], body: [UInt8]) {
        body.withUnsafeBytes { respond(status: status, contentType: nil, headers: headers, body: $0) }
    }

    /// Sends the response with a `Content-Type` (when given), `X-Request-Id` (when
    /// `withRequestID`), then `headers`, and the server's cached `Date`. A second call is
    /// ignored.
    public func respond(
        status: Int, contentType: String?, withRequestID: Bool = false, headers: [(String, String)] = [],
        body: UnsafeRawBufferPointer
    ) {
        guard !responded else { return }
        responded = true
        if let output = evhttp_request_get_output_headers(raw) {
            if let contentType { Self.add(output, "Content-Type", contentType) }
            if withRequestID { Self.add(output, "X-Request-Id", id) }
            for (name, value) in headers { evhttp_add_header(output, name, value) }
            // libevent formats a Date header for every answer (gmtime and strftime); the
            // server keeps one per second instead.
            if let date { Self.add(output, "Date", date.current()) }
            // libevent 2.1 reads no body of a TRACE request: bytes sent anyway would be parsed as
            // the next request on this connection. It is closed after the answer instead.
            if method == .trace { evhttp_add_header(output, "Connection", "close") }
        }
        // Straight into the request's own output buffer: no temporary evbuffer.
        if body.count > 0, let output = evhttp_request_get_output_buffer(raw) {
            evbuffer_add(output, body.baseAddress, body.count)
        }
        let reason = Self.reason(status)
        evhttp_send_reply(raw, Int32(status), Self.cString(reason), nil)
    }

    /// Adds a header whose name is a literal. A Swift string passed straight to a C
    /// parameter is copied to the heap when it is short (stored inline); the literal's
    /// own bytes and `withCString` (a stack copy) avoid that allocation per answer.
    private static func add(_ headers: UnsafeMutablePointer<evkeyvalq>, _ name: StaticString, _ value: String) {
        _ = value.withCString { evhttp_add_header(headers, cString(name), $0) }
    }

    /// A string literal's bytes, which the compiler stores NUL-terminated.
    private static func cString(_ text: StaticString) -> UnsafePointer<CChar> {
        UnsafeRawPointer(text.utf8Start).assumingMemoryBound(to: CChar.self)
    }

    public func respond(status: Int, headers: [(String, String)] = [], body: String) {
        respond(status: status, headers: headers, body: Array(body.utf8))
    }

    /// Closes the connection without answering (the provider sandbox's "dropped
    /// connection" fault). Counts as the response: later `respond` calls are ignored.
    /// Freeing an incoming connection from the request callback is safe in libevent
    /// 2.1: after the callback returns, `evhttp_connection_done` no longer touches an
    /// incoming connection. The free also frees this request. If the client already
    /// left, libevent has detached the request (its connection is NULL): free it alone.
    public func dropConnection() {
        guard !responded else { return }
        responded = true
        if let connection = evhttp_request_get_connection(raw) {
            evhttp_connection_free(connection)
        } else {
            evhttp_request_free(raw)
        }
    }

    static func reason(_ status: Int) -> StaticString {
        switch status {
        case 200: return "OK"
        case 202: return "Accepted"
        case 204: return "No Content"
        case 302: return "Found"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 413: return "Payload Too Large"
        case 415: return "Unsupported Media Type"
        case 422: return "Unprocessable Content"
        case 429: return "Too Many Requests"
        case 500: return "Internal Server Error"
        case 503: return "Service Unavailable"
        default: return "Status"
        }
    }
}

/// The inbound HTTP server: libevent's evhttp on the loop thread.
public final class HTTPServer {
    let loop: EventLoop
    let http: OpaquePointer
    private var bound: OpaquePointer?
    private let limits: HTTPServerLimits
    private let handler: (HTTPRequest) -> Void
    private let logger: Logger
    private var connections = Set<OpaquePointer>()
    private var listenerPaused = false
    public private(set) var port: Int = 0
    /// Request ids: a random prefix per server (so ids stay unique across restarts)
    /// and a counter, on the loop thread.
    private let requestIDPrefix = String(UInt32.random(in: 0x1000_0000...UInt32.max), radix: 16)
    private var requestCount: UInt64 = 0
    /// Every open connection and when its current request's time started (accept, or
    /// the previous request). Loop thread only.
    private var requestClocks: [OpaquePointer: UInt64] = [:]
    /// Bufferevents made for connections accepted in this loop iteration, adopted
    /// (clock started, close callback set) right after evhttp finished setting them up.
    private var newBufferevents: [OpaquePointer] = []
    private var sweepTimer: LoopTimer?
    private let dateCache = HTTPDateCache()

    /// `handler` runs on the loop thread for every request.
    public init(loop: EventLoop, limits: HTTPServerLimits, logger: Logger, handler: @escaping (HTTPRequest) -> Void) {
        self.loop = loop
        self.limits = limits
        self.handler = handler
        self.logger = logger
        http = evhttp_new(loop.base)
        evhttp_set_timeout(http, limits.ioTimeoutSeconds)
        evhttp_set_max_headers_size(http, limits.maxHeaderBytes)
        evhttp_set_max_body_size(http, limits.hardMaxBodyBytes)
        let methods =
            EVHTTP_REQ_GET.rawValue | EVHTTP_REQ_POST.rawValue | EVHTTP_REQ_PUT.rawValue | EVHTTP_REQ_DELETE.rawValue
            | EVHTTP_REQ_HEAD.rawValue | EVHTTP_REQ_OPTIONS.rawValue | EVHTTP_REQ_PATCH.rawValue
            | EVHTTP_REQ_TRACE.rawValue
        // These reach the handler, which answers 405 with Allow where a method does not apply;
        // CONNECT and methods libevent does not know get libevent's 501.
        evhttp_set_allowed_methods(http, UInt16(methods))
        // The bufferevent evhttp would make itself, made here so every connection is seen
        // at accept: its request clock starts then (see `sweep`).
        evhttp_set_bevcb(
            http,
            { base, context in
                Unmanaged<HTTPServer>.fromOpaque(context!).takeUnretainedValue().newConnection(base: base)
            }, Unmanaged.passUnretained(self).toOpaque())
        evhttp_set_gencb(
            http,
            { request, context in
                guard let request else { return }
                Unmanaged<HTTPServer>.fromOpaque(context!).takeUnretainedValue().handle(request)
            }, Unmanaged.passUnretained(self).toOpaque())
    }

    deinit {
        sweepTimer?.cancel()
        // evhttp_free frees the listening sockets before the connections, whose close
        // callbacks (`closed`) would then look up a freed listener if accepting was
        // paused at the connection cap.
        bound = nil
        evhttp_free(http)
    }

    /// Binds and starts accepting. `host:port`; port 0 picks a free one.
    public func bind(host: String, port: Int) throws {
        guard let bound = evhttp_bind_socket_with_handle(http, host, UInt16(port)) else {
            throw HTTPServerError.bindFailed("\(host):\(port)")
        }
        self.bound = bound
        var address = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let fd = evhttp_bound_socket_get_fd(bound)
        withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = getsockname(fd, $0, &length) }
        }
        if address.ss_family == sa_family_t(AF_INET) {
            self.port = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin_port)) }
            }
        } else {
            self.port = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) {
                    Int(UInt16(bigEndian: $0.pointee.sin6_port))
                }
            }
        }
    }

    /// Stops accepting new connections; open ones keep being served.
    public func stopAccepting() {
        guard let bound else { return }
        evhttp_del_accept_socket(http, bound)
        self.bound = nil
    }

    public var openConnections: Int { connections.count }

    private func newConnection(base: OpaquePointer?) -> OpaquePointer? {
        guard let bev = bufferevent_socket_new(base, -1, Int32(BEV_OPT_CLOSE_ON_FREE.rawValue)) else { return nil }
        newBufferevents.append(bev)
        if newBufferevents.count == 1 {
            // Runs in this loop iteration, after the accept callback and before any I/O
            // on the new connections is polled: they are all still alive then.
            loop.executeUnchecked { [weak self] in self?.adoptNewConnections() }
        }
        if sweepTimer == nil {
            sweepTimer = loop.schedule(after: 1, repeating: true) { [weak self] in self?.sweep() }
        }
        return bev
    }

    /// evhttp made each new bufferevent's callback argument its connection.
    private func adoptNewConnections() {
        let now = DispatchTime.now().uptimeNanoseconds
        for bev in newBufferevents {
            var argument: UnsafeMutableRawPointer?
            bufferevent_getcb(bev, nil, nil, nil, &argument)
            guard let argument else { continue }
            let connection = OpaquePointer(argument)
            requestClocks[connection] = now
            setCloseCallback(connection)
        }
        newBufferevents.removeAll(keepingCapacity: true)
    }

    /// Once a second: a connection whose request has taken longer than
    /// `requestTimeoutSeconds` is shut down. evhttp then reads the end of the stream
    /// and frees it as if the client had left (a request being answered is detached
    /// by libevent and freed when answered).
    private func sweep() {
        let now = DispatchTime.now().uptimeNanoseconds
        let limit = UInt64(limits.requestTimeoutSeconds) * 1_000_000_000
        var cut = 0
        for (connection, started) in requestClocks where started != .max && now &- started > limit {
            if let bev = evhttp_connection_get_bufferevent(connection) {
                let fd = bufferevent_getfd(bev)
                if fd >= 0 { shutdown(fd, Int32(SHUT_RDWR)) }
            }
            requestClocks[connection] = .max  // cut once; forgotten when it closes
            cut += 1
        }
        if cut > 0 {
            logger.warning(
                "connections cut: no complete request within request_timeout_s",
                metadata: ["count": "\(cut)", "request_timeout_s": "\(limits.requestTimeoutSeconds)"])
        }
    }

    private func handle(_ raw: OpaquePointer) {
        requestCount &+= 1
        // Concatenation keeps a short id inline (interpolation would allocate a buffer).
        let request = HTTPRequest(raw: raw, id: requestIDPrefix + "-" + String(requestCount), date: dateCache)
        if let connection = evhttp_request_get_connection(raw) {
            // The request is complete: the connection's next request is timed from now.
            let adopted = requestClocks.index(forKey: connection)
            if let adopted { requestClocks.values[adopted] = request.startNanos }
            track(connection, hasCloseCallback: adopted != nil)
        }
        handler(request)
    }

    /// Counts connections (seen at their first request) and pauses the listener at
    /// the cap. A connection that never sends a request is closed by the I/O timeout.
    private func track(_ connection: OpaquePointer, hasCloseCallback: Bool) {
        guard !connections.contains(connection) else { return }
        connections.insert(connection)
        if !hasCloseCallback { setCloseCallback(connection) }
        if connections.count >= limits.maxConnections, !listenerPaused, let bound,
            let listener = evhttp_bound_socket_get_listener(bound)
        {
            evconnlistener_disable(listener)
            listenerPaused = true
            logger.warning("connection cap reached, pausing accept", metadata: ["open": "\(connections.count)"])
        }
    }

    private func setCloseCallback(_ connection: OpaquePointer) {
        evhttp_connection_set_closecb(
            connection,
            { connection, context in
                guard let connection else { return }
                Unmanaged<HTTPServer>.fromOpaque(context!).takeUnretainedValue().closed(connection)
            }, Unmanaged.passUnretained(self).toOpaque())
    }

    private func closed(_ connection: OpaquePointer) {
        requestClocks[connection] = nil
        connections.remove(connection)
        logger.debug("connection closed", metadata: ["open": "\(connections.count)"])
        if listenerPaused, connections.count < limits.maxConnections, let bound,
            let listener = evhttp_bound_socket_get_listener(bound)
        {
            evconnlistener_enable(listener)
            listenerPaused = false
        }
    }
}

/// The `Date` header value (RFC 9110 IMF-fixdate), formatted once per second. Loop thread only.
final class HTTPDateCache: @unchecked Sendable {
    private var second: time_t = -1
    private var text = ""

    func current() -> String {
        let now = time(nil)
        if now != second {
            second = now
            var parts = tm()
            var seconds = now
            gmtime_r(&seconds, &parts)
            let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
            let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
            func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
            text =
                "\(days[Int(parts.tm_wday)]), \(two(parts.tm_mday)) \(months[Int(parts.tm_mon)]) \(parts.tm_year + 1900) "
                + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) GMT"
        }
        return text
    }
}

public enum HTTPServerError: Error, CustomStringConvertible {
    case bindFailed(String)
    public var description: String {
        switch self {
        case .bindFailed(let address): return "cannot listen on \(address)"
        }
    }
}

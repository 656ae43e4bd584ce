import Foundation
import Logging
private import CLibEvent

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
public final class HTTPClient: @unchecked Sendable {
    public let configuration: HTTPClientConfiguration

    public init(configuration: HTTPClientConfiguration, logger: Logger) throws {
        self.configuration = configuration
        fatalError("HTTPClient: not implemented yet")
    }

    /// Sends one request and waits for the whole response.
    public func send(_ request: HTTPClientRequest) throws(HTTPClientError) -> HTTPClientResponse {
        fatalError("HTTPClient: not implemented yet")
    }

    /// Stops the client's loop thread; pending calls fail with `connectionLost`.
    public func shutdown() {}
}

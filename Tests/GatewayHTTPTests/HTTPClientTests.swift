import Foundation
import GatewayHTTP
import Logging
import Testing

private let logger = Logger(label: "http-client-tests")

private func makeClient(
    caFile: String? = nil, connectTimeoutMillis: Int = 3000, totalTimeoutMillis: Int = 5000
) throws -> HTTPClient {
    try HTTPClient(
        configuration: HTTPClientConfiguration(
            caFile: caFile, connectTimeoutMillis: connectTimeoutMillis, totalTimeoutMillis: totalTimeoutMillis),
        logger: logger)
}

/// The echo server's description of the request it received.
private struct Echo {
    let method: String
    let path: String
    let headers: [(String, String)]
    let body: [UInt8]
    let connection: Int
    let connections: Int
    let sni: String?

    init(_ response: HTTPClientResponse) throws {
        let object = try #require(try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])
        method = try #require(object["method"] as? String)
        path = try #require(object["path"] as? String)
        headers = try #require(object["headers"] as? [[String]]).map { ($0[0], $0[1]) }
        let encoded = try #require(object["body"] as? String)
        body = [UInt8](try #require(Data(base64Encoded: encoded)))
        connection = try #require(object["connection"] as? Int)
        connections = try #require(object["connections"] as? Int)
        sni = object["sni"] as? String
    }

    func header(_ name: String) -> [String] {
        headers.filter { $0.0.caseInsensitiveCompare(name) == .orderedSame }.map(\.1)
    }
}

/// The error `send` threw, or nil if it returned a response.
private func failure(_ client: HTTPClient, _ request: HTTPClientRequest) -> HTTPClientError? {
    do {
        _ = try client.send(request)
        return nil
    } catch {
        return error
    }
}

@Suite(.serialized) struct HTTPClientTests {
    @Test func plainGetReturnsStatusHeadersAndBody() throws {
        let server = try PythonServer(mode: "echo")
        defer { server.stop() }
        let client = try makeClient()
        defer { client.shutdown() }
        let response = try client.send(
            HTTPClientRequest(method: .get, url: "http://127.0.0.1:\(server.port)/v1/user?x=1&y=%20z"))
        #expect(response.status == 200)
        #expect(response.header("x-echo") == "yes")
        #expect(response.header("CONTENT-TYPE") == "application/json")
        let echo = try Echo(response)
        #expect(echo.method == "GET")
        #expect(echo.path == "/v1/user?x=1&y=%20z")
        #expect(echo.header("Host") == ["127.0.0.1:\(server.port)"])
        #expect(echo.header("Connection") == ["keep-alive"])

        let notFound = try client.send(
            HTTPClientRequest(method: .delete, url: "http://127.0.0.1:\(server.port)/status/404"))
        #expect(notFound.status == 404)
        #expect(try Echo(notFound).method == "DELETE")
    }

    @Test func postBodyAndHeadersArriveIntact() throws {
        let server = try PythonServer(mode: "echo")
        defer { server.stop() }
        let client = try makeClient()
        defer { client.shutdown() }
        var body = Array("grant_type=refresh_token&refresh_token=abc%2Fdef".utf8)
        body += (0..<70_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }  // binary, bigger than one read
        let response = try client.send(
            HTTPClientRequest(
                method: .post, url: "http://127.0.0.1:\(server.port)/token",
                headers: [
                    ("Content-Type", "application/x-www-form-urlencoded"), ("Authorization", "Bearer t0k3n"),
                    ("X-Multi", "one"), ("X-Multi", "two"),
                ], body: body))
        #expect(response.status == 200)
        let echo = try Echo(response)
        #expect(echo.method == "POST")
        #expect(echo.body == body)
        #expect(echo.header("Content-Length") == [String(body.count)])
        #expect(echo.header("Content-Type") == ["application/x-www-form-urlencoded"])
        #expect(echo.header("Authorization") == ["Bearer t0k3n"])
        #expect(echo.header("X-Multi") == ["one", "two"])

        let put = try client.send(
            HTTPClientRequest(method: .put, url: "http://127.0.0.1:\(server.port)/w/1", body: Array("{}".utf8)))
        #expect(try Echo(put).body == Array("{}".utf8))
        let emptyPost = try client.send(HTTPClientRequest(method: .post, url: "http://127.0.0.1:\(server.port)/e"))
        #expect(try Echo(emptyPost).header("Content-Length") == ["0"])
    }

    @Test func keepAliveReusesOneConnection() throws {
        let server = try PythonServer(mode: "echo")
        defer { server.stop() }
        let client = try makeClient()
        defer { client.shutdown() }
        let url = "http://127.0.0.1:\(server.port)/ka"
        let first = try Echo(try client.send(HTTPClientRequest(method: .get, url: url)))
        let second = try Echo(try client.send(HTTPClientRequest(method: .post, url: url, body: [1, 2, 3])))
        let third = try Echo(try client.send(HTTPClientRequest(method: .get, url: url)))
        #expect(first.connection == second.connection)
        #expect(second.connection == third.connection)
        #expect(third.connections == 1)
    }

    @Test func twentyConcurrentSendsSucceed() throws {
        let server = try PythonServer(mode: "echo")
        defer { server.stop() }
        let client = try makeClient(totalTimeoutMillis: 10_000)
        defer { client.shutdown() }
        let results = ResultsBox()
        let group = DispatchGroup()
        let port = server.port
        for index in 0..<20 {
            group.enter()
            Thread {
                let request = HTTPClientRequest(
                    method: .post, url: "http://127.0.0.1:\(port)/slow/\(index)", body: Array("n=\(index)".utf8))
                results.add(index, Result { try client.send(request) })
                group.leave()
            }.start()
        }
        #expect(group.wait(timeout: .now() + 30) == .success)
        let all = results.values
        #expect(all.count == 20)
        var connections = Set<Int>()
        for (index, result) in all {
            let response = try result.get()
            #expect(response.status == 200)
            let echo = try Echo(response)
            #expect(echo.path == "/slow/\(index)")
            #expect(echo.body == Array("n=\(index)".utf8))
            connections.insert(echo.connection)
        }
        // Slow responses overlap, so calls ran on parallel connections.
        #expect(connections.count > 1)
        // And the pool serves more calls afterwards.
        let after = try client.send(HTTPClientRequest(method: .get, url: "http://127.0.0.1:\(server.port)/after"))
        #expect(after.status == 200)
    }

    @Test func connectionRefusedIsConnectFailed() throws {
        let client = try makeClient()
        defer { client.shutdown() }
        let port = closedPort()
        for url in ["http://127.0.0.1:\(port)/", "https://127.0.0.1:\(port)/"] {
            let error = failure(client, HTTPClientRequest(method: .post, url: url, body: [1]))
            guard case .connectFailed = error else {
                Issue.record("\(url): expected connectFailed, got \(String(describing: error))")
                continue
            }
            #expect(error?.outcomeUnknown == false)
        }
    }

    @Test func stalledServerTimesOutWithinTotalTimeout() throws {
        let server = try PythonServer(mode: "stall")
        defer { server.stop() }
        let client = try makeClient(connectTimeoutMillis: 5000, totalTimeoutMillis: 700)
        defer { client.shutdown() }
        let start = Date()
        let error = failure(
            client, HTTPClientRequest(method: .post, url: "http://127.0.0.1:\(server.port)/", body: [1]))
        let elapsed = Date().timeIntervalSince(start)
        #expect(error == .timedOut)
        #expect(error?.outcomeUnknown == true)
        #expect(elapsed >= 0.65 && elapsed < 1.7, "took \(elapsed) s")
    }

    @Test func stalledTLSHandshakeFailsWithinConnectTimeout() throws {
        let server = try PythonServer(mode: "stall")
        defer { server.stop() }
        let client = try makeClient(connectTimeoutMillis: 500, totalTimeoutMillis: 5000)
        defer { client.shutdown() }
        let start = Date()
        let error = failure(client, HTTPClientRequest(method: .get, url: "https://127.0.0.1:\(server.port)/"))
        let elapsed = Date().timeIntervalSince(start)
        guard case .tlsFailed = error else {
            Issue.record("expected tlsFailed, got \(String(describing: error))")
            return
        }
        #expect(elapsed >= 0.45 && elapsed < 1.5, "took \(elapsed) s")
    }

    @Test func unansweredConnectFailsWithinConnectTimeout() throws {
        let server = try PythonServer(mode: "backlog")
        defer { server.stop() }
        let client = try makeClient(connectTimeoutMillis: 500, totalTimeoutMillis: 5000)
        defer { client.shutdown() }
        let start = Date()
        let error = failure(client, HTTPClientRequest(method: .get, url: "http://127.0.0.1:\(server.port)/"))
        let elapsed = Date().timeIntervalSince(start)
        guard case .connectFailed = error else {
            Issue.record("expected connectFailed, got \(String(describing: error))")
            return
        }
        #expect(elapsed >= 0.45 && elapsed < 1.5, "took \(elapsed) s")
    }

    @Test func serverClosingMidResponseIsConnectionLost() throws {
        let server = try PythonServer(mode: "close")
        defer { server.stop() }
        let client = try makeClient()
        defer { client.shutdown() }
        let error = failure(
            client, HTTPClientRequest(method: .post, url: "http://127.0.0.1:\(server.port)/", body: [1]))
        guard case .connectionLost = error else {
            Issue.record("expected connectionLost, got \(String(describing: error))")
            return
        }
        #expect(error?.outcomeUnknown == true)
    }

    @Test func trustedCAPasses() throws {
        let certificates = TestCertificates.shared
        let server = try PythonServer(mode: "echo", certificate: certificates.localhostCert)
        defer { server.stop() }
        let client = try makeClient(caFile: certificates.caFile)
        defer { client.shutdown() }
        let url = "https://127.0.0.1:\(server.port)/secure"
        let first = try client.send(HTTPClientRequest(method: .post, url: url, body: Array("hello".utf8)))
        #expect(first.status == 200)
        let echo = try Echo(first)
        #expect(echo.body == Array("hello".utf8))
        // No SNI for an IP address (RFC 6066).
        #expect(echo.sni == nil)
        // Keep-alive over TLS too.
        let second = try Echo(try client.send(HTTPClientRequest(method: .get, url: url)))
        #expect(second.connection == echo.connection)
        #expect(second.connections == 1)
    }

    @Test func hostNameIsSentAsSNIAndVerified() throws {
        let certificates = TestCertificates.shared
        let server = try PythonServer(mode: "echo", certificate: certificates.localhostCert)
        defer { server.stop() }
        let client = try makeClient(caFile: certificates.caFile)
        defer { client.shutdown() }
        let response = try client.send(HTTPClientRequest(method: .get, url: "https://localhost:\(server.port)/"))
        #expect(response.status == 200)
        #expect(try Echo(response).sni == "localhost")
    }

    @Test func unknownCAIsTLSFailed() throws {
        let certificates = TestCertificates.shared
        let server = try PythonServer(mode: "echo", certificate: certificates.localhostCert)
        defer { server.stop() }
        let client = try makeClient()  // system roots only
        defer { client.shutdown() }
        let error = failure(
            client, HTTPClientRequest(method: .post, url: "https://127.0.0.1:\(server.port)/", body: [1]))
        guard case .tlsFailed(let why) = error else {
            Issue.record("expected tlsFailed, got \(String(describing: error))")
            return
        }
        #expect(why.contains("local issuer") || why.contains("self-signed") || why.contains("self signed"), "\(why)")
        #expect(error?.outcomeUnknown == false)
    }

    @Test func wrongHostNameIsTLSFailed() throws {
        let certificates = TestCertificates.shared
        let server = try PythonServer(mode: "echo", certificate: certificates.otherCert)
        defer { server.stop() }
        let client = try makeClient(caFile: certificates.caFile)
        defer { client.shutdown() }
        for host in ["127.0.0.1", "localhost"] {
            let error = failure(client, HTTPClientRequest(method: .get, url: "https://\(host):\(server.port)/"))
            guard case .tlsFailed(let why) = error else {
                Issue.record("\(host): expected tlsFailed, got \(String(describing: error))")
                continue
            }
            #expect(why.contains("mismatch"), "\(why)")
        }
    }

    @Test func httpsToPlainServerIsTLSFailed() throws {
        let server = try PythonServer(mode: "echo")
        defer { server.stop() }
        let client = try makeClient()
        defer { client.shutdown() }
        let error = failure(client, HTTPClientRequest(method: .get, url: "https://127.0.0.1:\(server.port)/"))
        guard case .tlsFailed = error else {
            Issue.record("expected tlsFailed, got \(String(describing: error))")
            return
        }
    }

    @Test func badCAFileIsRejected() {
        #expect(throws: HTTPClientError.self) { try makeClient(caFile: "/nonexistent/ca.pem") }
    }

    @Test func invalidURLs() throws {
        let client = try makeClient()
        defer { client.shutdown() }
        for url in ["ftp://example.com/", "not a url", "http://", "/relative/path", "http://host:99999/"] {
            let error = failure(client, HTTPClientRequest(method: .get, url: url))
            guard case .invalidURL = error else {
                Issue.record("\(url): expected invalidURL, got \(String(describing: error))")
                continue
            }
        }
        let badHeader = failure(
            client, HTTPClientRequest(method: .get, url: "http://127.0.0.1:1/", headers: [("X", "a\r\nInjected: 1")]))
        guard case .invalidURL = badHeader else {
            Issue.record("expected invalidURL for a header with CRLF, got \(String(describing: badHeader))")
            return
        }
    }

    @Test func sendAfterShutdownFails() throws {
        let server = try PythonServer(mode: "echo")
        defer { server.stop() }
        let client = try makeClient()
        #expect(try client.send(HTTPClientRequest(method: .get, url: "http://127.0.0.1:\(server.port)/")).status == 200)
        client.shutdown()
        client.shutdown()
        let error = failure(client, HTTPClientRequest(method: .get, url: "http://127.0.0.1:\(server.port)/"))
        guard case .connectionLost = error else {
            Issue.record("expected connectionLost, got \(String(describing: error))")
            return
        }
    }

    @Test func shutdownFailsPendingCalls() throws {
        let server = try PythonServer(mode: "stall")
        defer { server.stop() }
        let client = try makeClient(totalTimeoutMillis: 10_000)
        let done = DispatchSemaphore(value: 0)
        let results = ResultsBox()
        let url = "http://127.0.0.1:\(server.port)/"
        Thread {
            results.add(0, Result { try client.send(HTTPClientRequest(method: .get, url: url)) })
            done.signal()
        }.start()
        Thread.sleep(forTimeInterval: 0.3)
        client.shutdown()
        #expect(done.wait(timeout: .now() + 3) == .success)
        let result = try #require(results.values.first?.1)
        guard case .failure(let error as HTTPClientError) = result, case .connectionLost = error else {
            Issue.record("expected connectionLost, got \(result)")
            return
        }
    }
}

private final class ResultsBox: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [(Int, Result<HTTPClientResponse, any Error>)] = []

    func add(_ index: Int, _ result: Result<HTTPClientResponse, any Error>) {
        lock.lock()
        stored.append((index, result))
        lock.unlock()
    }

    var values: [(Int, Result<HTTPClientResponse, any Error>)] {
        lock.lock()
        defer { lock.unlock() }
        return stored
    }
}

import Foundation

/// A tiny blocking HTTP/1.1 client for the sandbox's outbound notifications:
/// plain `http://` only, one request per connection (`Connection: close`).
/// Runs off the loop thread; the gateway's own HTTPClient is not used on purpose,
/// so the sandbox stays independent of the code it tests.
enum PlainHTTPPost {
    struct Answer: Sendable {
        let status: Int
        let body: String
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    static func send(url: String, body: [UInt8], timeoutSeconds: Int) -> Result<Answer, Failure> {
        guard let target = parse(url) else { return .failure(Failure(description: "cannot parse URL \(url)")) }
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(target.host, String(target.port), &hints, &list) == 0, let first = list else {
            return .failure(Failure(description: "cannot resolve \(target.host)"))
        }
        defer { freeaddrinfo(list) }
        var fd: Int32 = -1
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let info = cursor {
            let candidate = socket(info.pointee.ai_family, info.pointee.ai_socktype, info.pointee.ai_protocol)
            if candidate >= 0 {
                var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
                setsockopt(candidate, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
                setsockopt(candidate, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
                if connect(candidate, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 {
                    fd = candidate
                    break
                }
                close(candidate)
            }
            cursor = info.pointee.ai_next
        }
        guard fd >= 0 else { return .failure(Failure(description: "cannot connect to \(target.host):\(target.port)")) }
        defer { close(fd) }
        let head =
            "POST \(target.path) HTTP/1.1\r\nHost: \(target.hostHeader)\r\nContent-Type: application/json\r\n"
            + "Content-Length: \(body.count)\r\nConnection: close\r\nUser-Agent: gatewayd-sandbox\r\n\r\n"
        let request = Array(head.utf8) + body
        var sent = 0
        while sent < request.count {
            let n = request[sent...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { return .failure(Failure(description: "write failed: errno \(errno)")) }
            sent += n
        }
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n == 0 { break }
            guard n > 0 else {
                if response.isEmpty { return .failure(Failure(description: "read failed: errno \(errno)")) }
                break
            }
            response.append(contentsOf: buffer[0..<n])
            if let answer = complete(response) { return .success(answer) }
        }
        if let answer = complete(response, atEOF: true) { return .success(answer) }
        return .failure(Failure(description: "no valid HTTP response"))
    }

    /// The answer once the head and a `Content-Length` body (or EOF) are in.
    private static func complete(_ bytes: [UInt8], atEOF: Bool = false) -> Answer? {
        let separator: [UInt8] = [13, 10, 13, 10]
        guard let headEnd = bytes.indices.dropLast(3).first(where: { Array(bytes[$0..<$0 + 4]) == separator }) else {
            return nil
        }
        let head = String(decoding: bytes[..<headEnd], as: UTF8.self)
        let lines = head.components(separatedBy: "\r\n")
        let statusParts = lines[0].split(separator: " ")
        guard statusParts.count >= 2, statusParts[0].hasPrefix("HTTP/"), let status = Int(statusParts[1]) else {
            return nil
        }
        let bodyBytes = bytes[(headEnd + 4)...]
        var length: Int?
        for line in lines.dropFirst() {
            let pair = line.split(separator: ":", maxSplits: 1)
            if pair.count == 2, pair[0].lowercased() == "content-length" {
                length = Int(pair[1].trimmingCharacters(in: .whitespaces))
            }
        }
        if let length {
            guard bodyBytes.count >= length else { return nil }
            return Answer(status: status, body: String(decoding: bodyBytes.prefix(length), as: UTF8.self))
        }
        return atEOF || status == 204 || status == 304
            ? Answer(status: status, body: String(decoding: bodyBytes, as: UTF8.self)) : nil
    }

    private struct Target {
        let host: String
        let port: Int
        let path: String
        var hostHeader: String { port == 80 ? host : "\(host):\(port)" }
    }

    private static func parse(_ url: String) -> Target? {
        guard url.hasPrefix("http://") else { return nil }
        let rest = url.dropFirst("http://".count)
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let authority = rest[..<slash]
        let path = slash == rest.endIndex ? "/" : String(rest[slash...])
        var host = String(authority)
        var port = 80
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return nil }
            host = String(authority[authority.index(after: authority.startIndex)..<close])
            let after = authority[authority.index(after: close)...]
            if after.hasPrefix(":") {
                guard let p = Int(after.dropFirst()) else { return nil }
                port = p
            }
        } else if let colon = authority.lastIndex(of: ":") {
            host = String(authority[..<colon])
            guard let p = Int(authority[authority.index(after: colon)...]) else { return nil }
            port = p
        }
        guard !host.isEmpty, (1...65535).contains(port) else { return nil }
        return Target(host: host, port: port, path: path)
    }
}

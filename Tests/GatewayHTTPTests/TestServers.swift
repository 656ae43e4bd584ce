import Foundation

/// Temp directory with a test CA and server certificates, made once per test process
/// with the `openssl` CLI.
final class TestCertificates: Sendable {
    static let shared: TestCertificates = {
        do { return try TestCertificates() } catch { fatalError("cannot create test certificates: \(error)") }
    }()

    let directory: URL
    var caFile: String { directory.appendingPathComponent("ca.pem").path }
    /// Signed by the CA, for DNS:localhost and IP:127.0.0.1.
    var localhostCert: (cert: String, key: String) { (path("localhost.pem"), path("localhost.key")) }
    /// Signed by the CA, for DNS:other.example only.
    var otherCert: (cert: String, key: String) { (path("other.pem"), path("other.key")) }

    private func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    private init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("gw-http-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        try run(
            ["req", "-x509"] + ec + [
                "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=Gateway Test CA",
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            ])
        for (name, san) in [("localhost", "DNS:localhost,IP:127.0.0.1"), ("other", "DNS:other.example")] {
            try run(["req"] + ec + ["-keyout", "\(name).key", "-out", "\(name).csr", "-subj", "/CN=\(name)"])
            try "subjectAltName=\(san)\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n".write(
                to: directory.appendingPathComponent("\(name).ext"), atomically: true, encoding: .utf8)
            try run([
                "x509", "-req", "-in", "\(name).csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", "\(name).pem", "-days", "2", "-extfile", "\(name).ext",
            ])
        }
    }

    private func run(_ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["openssl"] + arguments
        process.currentDirectoryURL = directory
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw TestServerError.failed(
                "openssl \(arguments.joined(separator: " ")) exited \(process.terminationStatus)")
        }
    }
}

enum TestServerError: Error { case failed(String) }

/// A Python test server in a subprocess, on 127.0.0.1 and a free port. Modes:
/// `echo` (HTTP/1.1 keep-alive; replies with a JSON description of the request and
/// the connection it came on; TLS when a certificate is given), `stall` (accepts,
/// never answers), `close` (sends half a response, then closes), `backlog` (listens
/// with a full accept queue, so connects hang).
final class PythonServer {
    let port: Int
    private let process: Process

    init(mode: String, certificate: (cert: String, key: String)? = nil) throws {
        let script = FileManager.default.temporaryDirectory.appendingPathComponent("gw-test-server-\(getpid()).py")
        if !FileManager.default.fileExists(atPath: script.path) {
            try pythonServerSource.write(to: script, atomically: true, encoding: .utf8)
        }
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script.path, mode, certificate?.cert ?? "-", certificate?.key ?? "-"]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        var line = [UInt8]()
        let reader = output.fileHandleForReading
        while !line.contains(UInt8(ascii: "\n")) {
            let chunk = reader.availableData
            if chunk.isEmpty { break }
            line += chunk
        }
        guard let text = String(bytes: line, encoding: .utf8),
            let port = Int(text.trimmingCharacters(in: .whitespacesAndNewlines))
        else {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            throw TestServerError.failed("python server (\(mode)) did not report a port")
        }
        self.port = port
    }

    func stop() {
        if process.isRunning {
            // SIGKILL: the child inherits the test runner's signal mask, which may block SIGTERM.
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    deinit { stop() }
}

/// A port nothing listens on (bound, then closed).
func closedPort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
            bind(fd, pointer, length)
            return getsockname(fd, pointer, &length)
        }
    }
    return Int(UInt16(bigEndian: address.sin_port))
}

private let pythonServerSource = #"""
    import base64, json, os, socket, ssl, sys, threading, time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    mode, cert, key = sys.argv[1], sys.argv[2], sys.argv[3]
    lock = threading.Lock()
    state = {"connections": 0, "sni": None}

    def announce(port):
        print(port, flush=True)

    def exit_with_parent(parent):
        # The test process may die without stopping us: never outlive it.
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=exit_with_parent, args=(os.getppid(),), daemon=True).start()

    def tls_context():
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        def on_sni(sock, name, context):
            with lock:
                state["sni"] = name
        ctx.sni_callback = on_sni
        return ctx

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def setup(self):
            if isinstance(self.request, ssl.SSLSocket):
                self.request.do_handshake()
            super().setup()
            with lock:
                state["connections"] += 1
                self.connection_id = state["connections"]

        def do_any(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if self.path.startswith("/slow"):
                time.sleep(0.3)
            status = int(self.path.split("/")[2]) if self.path.startswith("/status/") else 200
            with lock:
                info = {
                    "method": self.command, "path": self.path,
                    "headers": [[k, v] for k, v in self.headers.items()],
                    "body": base64.b64encode(body).decode(),
                    "connection": self.connection_id, "connections": state["connections"],
                    "sni": state["sni"],
                }
            out = json.dumps(info).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.send_header("X-Echo", "yes")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(out)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_any

    def listener(backlog=16):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 0))
        s.listen(backlog)
        return s

    if mode == "echo":
        ThreadingHTTPServer.daemon_threads = True
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if cert != "-":
            httpd.socket = tls_context().wrap_socket(httpd.socket, server_side=True, do_handshake_on_connect=False)
        announce(httpd.server_address[1])
        httpd.serve_forever()
    elif mode == "stall":
        s = listener()
        announce(s.getsockname()[1])
        held = []
        while True:
            c, _ = s.accept()
            held.append(c)
    elif mode == "close":
        s = listener()
        announce(s.getsockname()[1])
        while True:
            c, _ = s.accept()
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = c.recv(65536)
                if not chunk:
                    break
                data += chunk
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nContent-Type: text/plain\r\n\r\npartial")
            time.sleep(0.05)
            c.close()
    elif mode == "backlog":
        s = listener(0)
        fillers = []
        for _ in range(8):
            f = socket.socket()
            f.setblocking(False)
            try:
                f.connect(("127.0.0.1", s.getsockname()[1]))
            except BlockingIOError:
                pass
            fillers.append(f)
        time.sleep(0.2)
        announce(s.getsockname()[1])
        while True:
            time.sleep(1)
    """#

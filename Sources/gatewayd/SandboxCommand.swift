import ArgumentParser
import Foundation
import GatewayAPI
import GatewayHTTP
import GatewaySandbox
import Logging

/// `gatewayd sandbox`: fake Garmin and Wahoo servers for the demo, tests and benchmarks.
struct SandboxCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sandbox",
        abstract: "Run fake Garmin and Wahoo OAuth + API servers with scriptable faults (docs/SANDBOX.md).")

    @Option(name: .long, help: "host:port to listen on (port 0 picks a free one). Keep it on loopback.")
    var listen = "127.0.0.1:9090"

    @Option(name: .long, help: "Client id the fake Garmin accepts.")
    var garminClientId = "sandbox-garmin-client"
    @Option(name: .long, help: "Client secret the fake Garmin accepts.")
    var garminClientSecret = "sandbox-garmin-secret"
    @Option(name: .long, help: "Client id the fake Wahoo accepts.")
    var wahooClientId = "sandbox-wahoo-client"
    @Option(name: .long, help: "Client secret the fake Wahoo accepts.")
    var wahooClientSecret = "sandbox-wahoo-secret"

    @Option(name: .long, help: "Per provider: more calls than this in any 60 s window get 429 (default: no limit).")
    var rateLimitPerMinute: Int?

    @Option(name: .long, help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel = "info"

    @Option(name: .long, help: "logfmt or json.")
    var logFormat = "logfmt"

    func validate() throws {
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("unknown --log-level \(logLevel)") }
        guard logFormat == "logfmt" || logFormat == "json" else {
            throw ValidationError("--log-format: logfmt or json")
        }
        guard splitListen() != nil else { throw ValidationError("--listen must be host:port") }
        if let rateLimitPerMinute, rateLimitPerMinute < 1 {
            throw ValidationError("--rate-limit-per-minute must be at least 1")
        }
    }

    private func splitListen() -> (String, Int)? {
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]),
            (0...65535).contains(port)
        else { return nil }
        var host = String(listen[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return host.isEmpty ? nil : (host, port)
    }

    func run() throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        let format: LineLogHandler.Format = logFormat == "json" ? .json : .logfmt
        LoggingSystem.bootstrap { LineLogHandler(label: $0, format: format, level: level) }
        let logger = Logger(label: "gatewayd.sandbox")

        var options = SandboxOptions()
        options.garmin = SandboxClient(id: garminClientId, secret: garminClientSecret)
        options.wahoo = SandboxClient(id: wahooClientId, secret: wahooClientSecret)
        options.rateLimitPerMinute = rateLimitPerMinute

        let loop = EventLoop()
        let sandbox = Sandbox(loop: loop, options: options, logger: logger)
        var limits = HTTPServerLimits()
        // Scripted delays may hold a request for minutes: do not let the I/O timeout cut them.
        limits.ioTimeoutSeconds = 600
        let server = HTTPServer(loop: loop, limits: limits, logger: logger) { sandbox.handle($0) }
        let (host, port) = splitListen()!
        do {
            try server.bind(host: host, port: port)
        } catch {
            logger.critical("cannot listen", metadata: ["listen": "\(listen)"])
            throw ExitCode(1)
        }
        for (signo, name) in [(SIGTERM, "SIGTERM"), (SIGINT, "SIGINT")] {
            loop.onSignal(signo) {
                logger.info("got \(name), stopping the sandbox")
                server.stopAccepting()
                loop.stop(after: 0.1)
            }
        }
        let base = "http://\(host.contains(":") ? "[\(host)]" : host):\(server.port)"
        logger.info(
            "sandbox up",
            metadata: [
                "listen": "\(host):\(server.port)", "garmin": "\(base)/garmin", "wahoo": "\(base)/wahoo",
                "admin": "\(base)/_sandbox", "pid": "\(getpid())",
            ])
        loop.run()
        logger.info("sandbox down")
    }
}

import ArgumentParser
import Foundation
import GatewayAPI
import GatewayConfig
import GatewayCore
import GatewayCrypto
import GatewayHTTP
import GatewayProviders
import GatewayPush
import GatewayStore
import Logging
import Metrics
import Prometheus

@main
struct Gatewayd: ParsableCommand {
    static let version = "0.1.0"
    static let configuration = CommandConfiguration(
        commandName: "gatewayd",
        abstract: "Gets a coach's planned endurance workouts onto athletes' devices.",
        version: version,
        subcommands: [
            Serve.self, CheckConfig.self, Migrate.self, SessionsCommand.self, ConnectionsCommand.self,
            BackupCommand.self, SandboxCommand.self,
        ],
        defaultSubcommand: Serve.self)

    /// As ArgumentParser's `main`, but a usage error exits 2 (like a config error)
    /// instead of 64: the operator commands promise 0 ok, 1 not found, 2 usage/config.
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            if exitCode(for: error) == .validationFailure {
                FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
                Foundation.exit(2)
            }
            exit(withError: error)
        }
    }
}

struct ConfigOption: ParsableArguments {
    @Option(name: .long, help: "TOML config file (every key can be overridden by GATEWAYD_<SECTION>_<KEY>).")
    var config: String?

    func load() throws -> GatewayConfig {
        do {
            return try GatewayConfig.load(path: config, environment: ProcessInfo.processInfo.environment)
        } catch {
            FileHandle.standardError.write(Data("gatewayd: config error: \(error)\n".utf8))
            throw ExitCode(2)
        }
    }
}

struct CheckConfig: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config", abstract: "Validate the config and print it, secrets redacted.")
    @OptionGroup var options: ConfigOption

    func run() throws {
        let config = try options.load()
        print(config.redactedDump(), terminator: "")
    }
}

struct Migrate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Create or upgrade the SQLite schema, then exit.")
    @OptionGroup var options: ConfigOption

    func run() throws {
        let config = try options.load()
        try ensureParentDirectory(config.storagePath)
        let db = try Database.openForWriting(path: config.storagePath)
        let applied = try Schema.migrate(db, now: WallClock.nowMillis())
        print(
            applied.isEmpty
                ? "schema is up to date" : "applied migrations: \(applied.map(String.init).joined(separator: ", "))")
    }
}

func ensureParentDirectory(_ path: String) throws {
    let directory = (path as NSString).deletingLastPathComponent
    if !directory.isEmpty {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }
}

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the gateway daemon.")
    @OptionGroup var options: ConfigOption

    func run() throws {
        // 1. Configuration: a bad file stops here with the key and the reason.
        let config = try options.load()
        let configPath = options.config

        // 2. Logging, then metrics: everything after may log and count.
        let format: LineLogHandler.Format = config.logFormat == "json" ? .json : .logfmt
        let level = Logger.Level(rawValue: config.logLevel) ?? .info
        LoggingSystem.bootstrap { LineLogHandler(label: $0, format: format, level: level) }
        let logger = Logger(label: "gatewayd")
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))

        // 3. Storage: migrate and start the single writer before anything can accept.
        try ensureParentDirectory(config.storagePath)
        let writer: StoreWriter
        do {
            writer = try StoreWriter(path: config.storagePath, logger: logger)
        } catch {
            logger.critical(
                "cannot open the database", metadata: ["path": "\(config.storagePath)", "error": "\(error)"])
            throw ExitCode(1)
        }

        // 4. The event loop and the HTTP application on it.
        let loop = EventLoop()
        let app = try GatewayApp(
            loop: loop, config: config, writer: writer, metrics: GatewayMetrics(registry: registry), logger: logger)
        // 5. Provider connections: HTTPS clients, sealed tokens, the token manager.
        let push = try startConnections(config: config, app: app, writer: writer, logger: logger)

        var limits = HTTPServerLimits()
        limits.ioTimeoutSeconds = Int32(config.ioTimeoutSeconds)
        limits.requestTimeoutSeconds = config.requestTimeoutSeconds
        limits.maxHeaderBytes = config.maxHeaderBytes
        limits.hardMaxBodyBytes = config.maxBodyBytes * 4
        limits.maxConnections = config.maxConnections
        let server = HTTPServer(loop: loop, limits: limits, logger: logger) { app.handle($0) }
        do {
            try server.bind(host: config.listenHost, port: config.listenPort)
        } catch {
            logger.critical("cannot listen", metadata: ["listen": "\(config.listenHost):\(config.listenPort)"])
            throw ExitCode(1)
        }

        // 6. Signals, handled on the loop thread.
        let shutdown = Shutdown(loop: loop, app: app, server: server, writer: writer, push: push, logger: logger)
        loop.onSignal(SIGTERM) { shutdown.begin(signal: "SIGTERM") }
        loop.onSignal(SIGINT) { shutdown.begin(signal: "SIGINT") }
        loop.onSignal(SIGHUP) { reload(configPath: configPath, app: app, loop: loop, logger: logger) }

        logger.info(
            "process up",
            metadata: [
                "version": "\(Gatewayd.version)", "listen": "\(config.listenHost):\(server.port)",
                "db": "\(config.storagePath)", "libevent": "\(EventLoop.libeventVersion)",
                "openssl": "\(LibraryVersions.openssl)", "sqlite": "\(Database.libraryVersion)",
                "log_format": "\(config.logFormat)", "log_level": "\(config.logLevel)", "pid": "\(getpid())",
            ])
        // 7. Run until a signal stops the loop.
        loop.run()
        logger.info("process down")
    }
}

/// SIGHUP: re-read the file off the loop thread; apply the reloadable keys on it.
/// A file that does not load keeps the old configuration.
func reload(configPath: String?, app: GatewayApp, loop: EventLoop, logger: Logger) {
    logger.info("got SIGHUP, reloading", metadata: ["config": "\(configPath ?? "(defaults)")"])
    let box = UncheckedSendable(app)
    DispatchQueue.global().async {
        let result = Result {
            try GatewayConfig.load(path: configPath, environment: ProcessInfo.processInfo.environment)
        }
        let resultBox = UncheckedSendable(result)
        loop.execute {
            do {
                try box.value.reload(try resultBox.value.get())
                logger.info("reload done: webhook secrets, API keys and tolerance updated")
            } catch {
                logger.error("reload failed, keeping the old config", metadata: ["error": "\(error)"])
            }
        }
    }
}

/// SIGTERM/SIGINT: stop accepting, let in-flight commits finish and their replies
/// go out, then leave the loop; a 5 s deadline bounds it all.
final class Shutdown {
    let loop: EventLoop
    let app: GatewayApp
    let server: HTTPServer
    let writer: StoreWriter
    let push: PushServices?
    let logger: Logger
    private var started = false

    init(
        loop: EventLoop, app: GatewayApp, server: HTTPServer, writer: StoreWriter, push: PushServices?,
        logger: Logger
    ) {
        self.loop = loop
        self.app = app
        self.server = server
        self.writer = writer
        self.push = push
        self.logger = logger
    }

    func begin(signal: String) {
        guard !started else { return }
        started = true
        logger.info("got \(signal), shutting down")
        app.beginShutdown()
        server.stopAccepting()
        let loop = self.loop
        let writer = UncheckedSendable(self.writer)
        let push = UncheckedSendable(self.push)
        DispatchQueue.global().async {
            // Push attempts in flight get 3 s to finish; unfinished ones are released at
            // the next start. Then the writer commits what is left.
            push.value?.stop(deadline: 3)
            writer.value.shutdown()
            // Replies for the last commits are queued on the loop: give them time to flush.
            loop.execute { loop.stop(after: 0.2) }
        }
        loop.schedule(after: 4.5) { [logger] in
            logger.warning("shutdown deadline reached, exiting with work in flight")
            loop.stop()
        }
    }
}

/// What `startConnections` started, for shutdown.
struct PushServices {
    var deletionWorker: AthleteDeletionWorker
    var dispatcher: Dispatcher
    var callbacks: StatusCallbacks?

    func stop(deadline: Double) {
        dispatcher.stop(deadline: deadline)
        deletionWorker.stop()
        callbacks?.stop()
    }
}

/// Builds the provider clients, the connection service and the push dispatcher, or
/// leaves them off (503 on the connection routes) when no provider is enabled or no
/// token key is set.
func startConnections(config: GatewayConfig, app: GatewayApp, writer: StoreWriter, logger: Logger) throws
    -> PushServices?
{
    var providers: [ProviderKind: ProviderOAuth] = [:]
    for (kind, settings) in [(ProviderKind.garmin, config.garmin), (.wahoo, config.wahoo)] where settings.enabled {
        let http = try HTTPClient(
            configuration: HTTPClientConfiguration(
                caFile: settings.caFile.isEmpty ? nil : settings.caFile,
                totalTimeoutMillis: config.requestTimeoutMillis),
            logger: logger)
        let gate = try RateGate(
            provider: kind, perMinute: settings.rateLimitPerMinute, maxConcurrency: settings.maxConcurrency,
            writer: writer, databasePath: config.storagePath, logger: logger)
        providers[kind] = ProviderOAuth(
            endpoints: ProviderEndpoints(
                kind: kind, clientID: settings.clientID, clientSecret: settings.clientSecret,
                authorizeURL: settings.authorizeURL, tokenURL: settings.tokenURL, apiBaseURL: settings.apiBaseURL),
            http: http, gate: gate)
    }
    guard !providers.isEmpty else {
        logger.info("no provider enabled: connections and pushes are off")
        return nil
    }
    guard !config.tokenKey.isEmpty else {
        logger.warning("security.token_key is not set: connections and pushes are off (tokens cannot be stored)")
        return nil
    }
    let box = try TokenBox(current: config.tokenKey, previous: config.previousTokenKeys)
    let tokens = try TokenManager(
        databasePath: config.storagePath, writer: writer, box: box, providers: providers,
        refreshSkewSeconds: config.refreshSkewSeconds, logger: logger)
    let service = try ConnectionService(
        databasePath: config.storagePath, writer: writer, tokens: tokens, providers: providers,
        publicURL: config.publicURL, logger: logger)
    app.connections = service
    app.tokenManager = tokens
    // Tokens sealed with an older key are re-encrypted with the current one.
    let resealed = try tokens.rotate(to: box)
    if resealed > 0 {
        logger.info("re-encrypted provider tokens with the current key", metadata: ["count": "\(resealed)"])
    }
    let worker = try AthleteDeletionWorker(databasePath: config.storagePath, service: service, logger: logger)
    worker.start()

    // Status callbacks to the plan app, if it wants them.
    var callbacks: StatusCallbacks?
    if !config.callbackURL.isEmpty, let first = config.webhookSecrets.first {
        callbacks = try StatusCallbacks(
            url: config.callbackURL, secret: try WebhookSecret(first),
            http: try HTTPClient(
                configuration: HTTPClientConfiguration(totalTimeoutMillis: config.requestTimeoutMillis),
                logger: logger), writer: writer, databasePath: config.storagePath, logger: logger)
        callbacks?.start()
    }

    var settings = DispatcherSettings()
    settings.workers = config.pushWorkers
    settings.maxAttempts = config.maxAttempts
    settings.backoffBaseMillis = config.backoffBaseMillis
    settings.backoffMaxMillis = config.backoffMaxMillis
    var pushers: [ProviderKind: any ProviderPusher] = [:]
    if providers[.garmin] != nil { pushers[.garmin] = GarminPusher() }
    if providers[.wahoo] != nil { pushers[.wahoo] = WahooPusher() }
    let attempt = try PushAttempt(
        databasePath: config.storagePath, writer: writer, tokens: tokens, providers: providers, pushers: pushers,
        settings: settings, callbackURLSet: callbacks != nil, logger: logger)
    let dispatcher = try Dispatcher(
        databasePath: config.storagePath, writer: writer, attempt: attempt, settings: settings, logger: logger)
    dispatcher.start()
    app.dispatcher = dispatcher
    return PushServices(deletionWorker: worker, dispatcher: dispatcher, callbacks: callbacks)
}

import ArgumentParser
import Foundation
import GatewayCore
import GatewayStore

/// `gatewayd sessions list|show|retry`: the export status of sessions, read from and
/// re-queued in the SQLite file, safely beside a running daemon.
struct SessionsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sessions", abstract: "List, show and retry sessions' exports (safe while the daemon runs).",
        subcommands: [SessionsList.self, SessionsShow.self, SessionsRetry.self])
}

struct SessionsList: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "Sessions ordered by id; exit 1 when none match.")
    @OptionGroup var options: ConfigOption
    @Option(name: .long, help: "Only this athlete's sessions.") var athlete: String?
    @Option(name: .long, help: "NOT_CONNECTED, PENDING, SENT or FAILED.") var status: String?
    @Option(name: .long, help: "garmin or wahoo: the athlete's primary connected provider, else the last export's.")
    var provider: String?
    @Option(name: .long, help: "At most this many (1-100000).") var limit = 100
    @Flag(name: .long, help: "One JSON object: {\"sessions\": [...], \"more\": bool}.") var json = false

    func validate() throws {
        _ = try OperatorCLI.parseStatus(status)
        _ = try OperatorCLI.parseProvider(provider)
        guard (1...100_000).contains(limit) else { throw ValidationError("--limit: expected 1...100000") }
    }

    func run() throws {
        let config = try options.load()
        let db = try OperatorCLI.open(config, readOnly: true)
        let filter = OperatorSessionFilter(
            athleteID: athlete, status: try OperatorCLI.parseStatus(status),
            provider: try OperatorCLI.parseProvider(provider), limit: limit)
        let page = try OperatorCLI.run("reading sessions") { try OperatorStore.sessions(db, filter) }
        if json {
            OperatorCLI.printJSON(
                .object(JSONObject([("sessions", .array(page.rows.map(\.json))), ("more", .bool(page.more))])))
        } else if !page.rows.isEmpty {
            let rows = page.rows.map { s -> [String] in
                [
                    s.sessionID, s.athleteID, s.exportStatus ?? "-", s.provider ?? "-", s.date, String(s.attempts),
                    OperatorCLI.time(s.updatedAtMillis), Self.short(s.lastExportError),
                ]
            }
            print(
                OperatorCLI.table(
                    ["SESSION", "ATHLETE", "STATUS", "PROVIDER", "DATE", "ATTEMPTS", "UPDATED", "LAST ERROR"], rows))
        }
        if page.more { OperatorCLI.warn("more sessions match than --limit \(limit) shows") }
        if page.rows.isEmpty {
            if !json { OperatorCLI.warn("no session matches") }
            throw ExitCode(OperatorCLI.notFound)
        }
    }

    static func short(_ text: String?) -> String {
        guard let text else { return "-" }
        let line = text.replacingOccurrences(of: "\n", with: " ")
        return line.count > 80 ? String(line.prefix(77)) + "..." : line
    }
}

struct SessionsShow: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show", abstract: "One session: status, provider, attempts, last error, remote ids, dates, job.")
    @OptionGroup var options: ConfigOption
    @Argument(help: "The session id.") var id: String
    @Flag(name: .long, help: "The session as one JSON object.") var json = false

    func run() throws {
        let config = try options.load()
        let db = try OperatorCLI.open(config, readOnly: true)
        guard let s = try OperatorCLI.run("reading the session", { try OperatorStore.session(db, id: id) }) else {
            throw OperatorCLI.fail("no session \(id)", OperatorCLI.notFound)
        }
        if json {
            OperatorCLI.printJSON(s.json)
            return
        }
        var remote = "-"
        if let provider = s.remoteProvider {
            let parts = [
                s.remoteWorkoutID.map { "workout \($0)" }, s.remoteScheduleID.map { "schedule \($0)" },
                s.remotePlanID.map { "plan \($0)" }, s.remoteDate.map { "date \($0)" },
            ].compactMap { $0 }
            remote = ([provider] + parts).joined(separator: " ")
        }
        let job =
            s.job.map { job in
                "revision \(job.revision), due \(OperatorCLI.time(job.dueAtMillis)), "
                    + "leased until \(OperatorCLI.time(job.leaseUntilMillis)), \(job.attempts) retries"
            } ?? "-"
        let fields: [(String, String)] = [
            ("session", s.sessionID), ("athlete", s.athleteID), ("revision", String(s.revision)),
            ("type", s.sessionType), ("date", s.date), ("start time", s.startTime ?? "-"),
            ("deleted", s.deleted ? "yes" : "no"), ("status", s.exportStatus ?? "- (not exported)"),
            ("provider", s.provider ?? "-"), ("exported to", s.exportProvider ?? "-"),
            ("exported at", OperatorCLI.time(s.exportedAtMillis)), ("external id", s.externalWorkoutID ?? "-"),
            ("attempts", String(s.attempts)), ("next attempt", OperatorCLI.time(s.nextAttemptAtMillis)),
            ("last error", s.lastExportError ?? "-"), ("remote", remote), ("job", job),
            ("created", OperatorCLI.time(s.createdAtMillis)), ("updated", OperatorCLI.time(s.updatedAtMillis)),
        ]
        for (name, value) in fields {
            print(name + String(repeating: " ", count: 13 - name.count) + value)
        }
    }
}

struct SessionsRetry: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "retry",
        abstract: "Re-queue FAILED or NOT_CONNECTED sessions with a fresh count of attempts.",
        discussion: """
            Either session ids, or --status (FAILED or NOT_CONNECTED) with optional --provider and --athlete for \
            every matching session. The running daemon pushes them within its 200 ms poll; no restart or signal. \
            Exit 1 if an id is unknown or not retryable, or if no session matches.
            """)
    @OptionGroup var options: ConfigOption
    @Argument(help: "Session ids.") var ids: [String] = []
    @Option(name: .long, help: "Bulk: FAILED or NOT_CONNECTED.") var status: String?
    @Option(name: .long, help: "Bulk: only sessions going to this provider (garmin or wahoo).") var provider: String?
    @Option(name: .long, help: "Bulk: only this athlete's sessions.") var athlete: String?

    /// Sessions per write transaction: each holds the write lock for a few milliseconds.
    static let batch = 200

    func validate() throws {
        let parsed = try OperatorCLI.parseStatus(status)
        _ = try OperatorCLI.parseProvider(provider)
        if ids.isEmpty {
            guard let parsed else {
                throw ValidationError("give session ids, or --status FAILED|NOT_CONNECTED for a bulk retry")
            }
            guard parsed == .failed || parsed == .notConnected else {
                throw ValidationError("--status: only FAILED or NOT_CONNECTED sessions are retried")
            }
        } else if status != nil || provider != nil || athlete != nil {
            throw ValidationError("give session ids or --status/--provider/--athlete, not both")
        }
    }

    func run() throws {
        let config = try options.load()
        let db = try OperatorCLI.open(config, readOnly: false)
        var targets = ids
        let bulk = ids.isEmpty
        if bulk {
            let filter = OperatorSessionFilter(
                athleteID: athlete, status: try OperatorCLI.parseStatus(status),
                provider: try OperatorCLI.parseProvider(provider))
            targets = try OperatorCLI.run("reading sessions") { try OperatorStore.retryCandidates(db, filter) }
            if targets.isEmpty { throw OperatorCLI.fail("no session matches", OperatorCLI.notFound) }
        }
        var queued = 0
        var problems = 0
        var start = 0
        while start < targets.count {
            let chunk = Array(targets[start..<min(start + Self.batch, targets.count)])
            start += chunk.count
            let outcomes = try OperatorCLI.run("queueing sessions") {
                try OperatorStore.write(db) {
                    let now = WallClock.nowMillis()
                    return try chunk.map { try OperatorStore.retry(db, sessionID: $0, now: now) }
                }
            }
            for (id, outcome) in zip(chunk, outcomes) {
                switch outcome {
                case .queued:
                    queued += 1
                    print("queued \(id)")
                case .notFound:
                    problems += 1
                    OperatorCLI.warn("\(id): no such session")
                case .notRetryable(let status):
                    problems += 1
                    OperatorCLI.warn(
                        "\(id): not retried, it is \(status ?? "not exported")"
                            + (bulk ? " now" : "; only FAILED or NOT_CONNECTED sessions are retried"))
                }
            }
        }
        print("\(queued) session\(queued == 1 ? "" : "s") queued")
        // Bulk: sessions that changed status since they were listed are skipped, not errors.
        if queued == 0 || (!bulk && problems > 0) { throw ExitCode(OperatorCLI.notFound) }
    }
}

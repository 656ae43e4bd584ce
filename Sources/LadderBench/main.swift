// The rungs under the gateway's ingest, for the ladder of `scripts/bench ingest`: each adds
// one piece of the real ingest on the same HTTP server, so the benchmark shows what
// every piece costs in the same sitting (the ladder of docs/BENCHMARKS.md, as in the
// design notes' measured facts).
//
//   LadderBench http   PORT                      202 to every request
//   LadderBench hmac   PORT SECRET               + Standard Webhooks verification
//   LadderBench insert PORT SECRET DB_PATH       + one row per webhook, committed by the
//                                                  gateway's own StoreWriter before the 202
//
// Runs until SIGTERM or SIGINT. Answers 401 to a webhook that fails verification.
import Foundation
import GatewayCore
import GatewayCrypto
import GatewayHTTP
import GatewayStore
import Logging

let arguments = CommandLine.arguments
guard arguments.count >= 3, ["http", "hmac", "insert"].contains(arguments[1]), let port = Int(arguments[2]) else {
    FileHandle.standardError.write(Data("usage: LadderBench http|hmac|insert PORT [SECRET [DB_PATH]]\n".utf8))
    exit(2)
}
let mode = arguments[1]
let logger = Logger(label: "ladder")
let loop = EventLoop()

let verifier: WebhookVerifier?
if mode != "http" {
    guard arguments.count >= 4 else { fatalError("\(mode) needs SECRET") }
    verifier = try WebhookVerifier(secrets: [WebhookSecret(arguments[3])], toleranceSeconds: 3600)
} else {
    verifier = nil
}

let writer: StoreWriter?
if mode == "insert" {
    guard arguments.count >= 5 else { fatalError("insert needs DB_PATH") }
    let store = try StoreWriter(path: arguments[4], logger: logger)
    try store.performAndWait { db in
        try db.execute("CREATE TABLE IF NOT EXISTS ladder(webhook_id TEXT NOT NULL UNIQUE, body BLOB NOT NULL)")
    }
    writer = store
} else {
    writer = nil
}

enum Ladder {
    /// Prepared once, like the gateway's ingest statements; used on the writer thread only.
    nonisolated(unsafe) static var prepared: Statement?
    static func insert(_ db: Database) throws -> Statement {
        if let prepared { return prepared }
        let statement = try db.statement("INSERT INTO ladder(webhook_id, body) VALUES(?, ?)")
        prepared = statement
        return statement
    }
    static let accepted = Array(#"{"accepted":true}"#.utf8)
    static func answer(_ request: HTTPRequest, _ status: Int) {
        accepted.withUnsafeBytes { request.respond(status: status, contentType: "application/json", body: $0) }
    }
}

let server = HTTPServer(loop: loop, limits: HTTPServerLimits(), logger: logger) { request in
    guard let verifier, request.method == .post else { return Ladder.answer(request, 202) }
    let headers = request.headers(["webhook-id", "webhook-timestamp", "webhook-signature"])
    let body = request.bodyBytes()
    let failure = body.withUnsafeBytes {
        verifier.verify(
            id: headers[0], timestamp: headers[1], signature: headers[2], body: $0, now: WallClock.nowSeconds())
    }
    if failure != nil { return Ladder.answer(request, 401) }
    guard let writer else { return Ladder.answer(request, 202) }
    let id = headers[0] ?? ""
    let pending = UncheckedSendable(request)
    writer.perform(
        { db in
            let insert = try Ladder.insert(db)
            defer { insert.reset() }
            try insert.bind(.text(id), at: 1)
            try body.withUnsafeBytes { try insert.bindBlob($0, at: 2) }
            _ = try insert.step()
        },
        completion: { result in
            let status = if case .success = result { 202 } else { 503 }
            loop.execute { Ladder.answer(pending.value, status) }
        })
}
try server.bind(host: "127.0.0.1", port: port)
for signo in [SIGTERM, SIGINT] {
    loop.onSignal(signo) {
        server.stopAccepting()
        loop.stop()
    }
}
loop.run()
if let writer {
    // The statement is finalized on the writer thread, before the connection closes.
    _ = try? writer.performAndWait { _ in Ladder.prepared = nil }
    writer.shutdown()
}

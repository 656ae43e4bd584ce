import Foundation
import GatewayCore
import GatewayCrypto
import GatewayHTTP
import GatewayStore
import Logging

/// `session.export_status_changed` to the plan app (SPEC §5): written to an outbox
/// in the same transaction as the status change, sent Standard-Webhooks-signed with
/// the first webhook secret, retried with backoff until the plan app answers 2xx.
public final class StatusCallbacks: @unchecked Sendable {
    let url: String
    let signer: WebhookSigner
    let http: HTTPClient
    let writer: StoreWriter
    let reader: Database
    let logger: Logger
    let queue = DispatchQueue(label: "gatewayd.callbacks")
    private var timer: (any DispatchSourceTimer)?
    static let maxAttempts: Int64 = 20

    public init(
        url: String, secret: WebhookSecret, http: HTTPClient, writer: StoreWriter, databasePath: String, logger: Logger
    ) throws {
        self.url = url
        signer = try WebhookSigner(secret: secret)
        self.http = http
        self.writer = writer
        self.logger = logger
        reader = try Database.openForReading(path: databasePath)
    }

    /// Adds a callback for this status (inside the caller's transaction).
    public static func enqueue(_ db: Database, status: SessionStatusRow, now: Int64) throws {
        let body = JSONValue.object(
            JSONObject([
                ("type", "session.export_status_changed"),
                ("timestamp", .string(ISODateTime.format(epochMillis: now))),
                ("data", .object(JSONObject([("session", status.json)]))),
            ]))
        try db.statement(
            "INSERT INTO status_callbacks(session_id, body, due_at_ms, attempts, created_at_ms) VALUES(?, ?, ?, 0, ?)"
        ).run([.text(status.sessionID), .blob(body.serializedBytes), .int(now), .int(now)])
    }

    public func start() {
        let timer = DispatchSource.makeTimerSource(queue: queue)
        timer.schedule(deadline: .now() + 0.1, repeating: 0.25)
        timer.setEventHandler { [self] in sendDue() }
        timer.resume()
        self.timer = timer
    }

    public func stop() {
        queue.sync { timer?.cancel() }
    }

    func sendDue() {
        var due: [(id: Int64, body: [UInt8], attempts: Int64, session: String)] = []
        do {
            try reader.query(
                """
                SELECT id, body, attempts, session_id FROM status_callbacks WHERE due_at_ms <= ? ORDER BY id LIMIT 50
                """,
                [.int(WallClock.nowMillis())]
            ) { due.append(($0.int(0), $0.blob(1), $0.int(2), $0.text(3) ?? "")) }
        } catch {
            logger.error("cannot read status callbacks", metadata: ["error": "\(error)"])
            return
        }
        for callback in due {
            let id = "msg_cb_\(callback.id)"
            let timestamp = WallClock.nowSeconds()
            let request = HTTPClientRequest(
                method: .post, url: url,
                headers: [
                    ("Content-Type", "application/json"), ("webhook-id", id), ("webhook-timestamp", String(timestamp)),
                    ("webhook-signature", signer.signature(id: id, timestamp: timestamp, body: callback.body)),
                ], body: callback.body)
            var delivered = false
            do {
                let response = try http.send(request)
                delivered = (200..<300).contains(response.status)
            } catch {
                delivered = false
            }
            let attempts = callback.attempts + 1
            let done = delivered
            do {
                try writer.performAndWait { db in
                    if done || attempts >= Self.maxAttempts {
                        try db.statement("DELETE FROM status_callbacks WHERE id = ?").run([.int(callback.id)])
                    } else {
                        let delay = min(Int64(1000) << min(attempts, 12), 3_600_000)
                        try db.statement("UPDATE status_callbacks SET attempts = ?, due_at_ms = ? WHERE id = ?").run([
                            .int(attempts), .int(WallClock.nowMillis() + delay), .int(callback.id),
                        ])
                    }
                }
            } catch {
                logger.error("cannot record a status callback", metadata: ["error": "\(error)"])
            }
            if !delivered && attempts >= Self.maxAttempts {
                logger.warning(
                    "status callback dropped after retries",
                    metadata: ["callback_id": "\(id)", "session_id": "\(callback.session)"])
            }
        }
    }
}

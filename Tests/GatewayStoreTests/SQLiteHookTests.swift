import Testing

@testable import GatewayStore

private final class Token {}

/// Found by `scripts/test-sanitizers address` (LeakSanitizer): the WAL hook's callback
/// was retained for SQLite and never released, so a closed connection leaked it and all
/// it captured (a StoreWriter's checkpointer with its own connection).
@Test func walHookIsReleasedWithTheConnection() throws {
    let temp = TempDatabase()
    weak var released: Token?
    var commits = 0
    do {
        let token = Token()
        released = token
        let db = try Database(path: temp.path)
        try db.execute("PRAGMA journal_mode=WAL;")
        db.onWALCommit { [token] _ in
            withExtendedLifetime(token) { commits += 1 }
        }
        try db.execute("CREATE TABLE t(x INTEGER);")
        #expect(released != nil)
    }
    #expect(commits == 1)
    #expect(released == nil)
}

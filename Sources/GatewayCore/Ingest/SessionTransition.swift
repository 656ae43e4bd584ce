/// Export status of a session (SPEC §5): does the athlete's device reflect the
/// session's latest revision (for a deleted session, its removal)?
public enum ExportStatus: String, Sendable, CaseIterable {
    case notConnected = "NOT_CONNECTED"
    case pending = "PENDING"
    case sent = "SENT"
    case failed = "FAILED"
}

/// What a stored session looks like to the ingest decision.
public struct StoredSessionState: Sendable, Equatable {
    public var revision: Int64
    public var isEndurance: Bool
    public var deleted: Bool
    /// Set once the workout exists at a provider.
    public var hasExternalWorkout: Bool

    public init(revision: Int64, isEndurance: Bool, deleted: Bool, hasExternalWorkout: Bool) {
        self.revision = revision
        self.isEndurance = isEndurance
        self.deleted = deleted
        self.hasExternalWorkout = hasExternalWorkout
    }
}

/// The ingest decision for one session event, before any I/O.
public enum SessionTransition: Equatable, Sendable {
    /// The stored revision is the same or newer: nothing changes (webhooks arrive out of order).
    case stale
    /// Store the new revision. `needsPush` writes the outbox job; `status` is the new
    /// export status (nil: the session is not exported at all).
    case apply(status: ExportStatus?, needsPush: Bool)

    /// - Parameter hasConnection: whether the athlete has a connected provider.
    ///
    /// Any applied change to a session that is, or was, an ENDURANCE session (or whose
    /// workout may be at a provider) writes an outbox job; the dispatcher decides whether
    /// the provider needs a call. A push may be in flight when a deletion arrives, so
    /// "never exported" is not known for sure at ingest time.
    public static func decide(
        stored: StoredSessionState?, incomingRevision: Int64, incomingIsEndurance: Bool, isDelete: Bool,
        hasConnection: Bool
    ) -> SessionTransition {
        if let stored, incomingRevision <= stored.revision { return .stale }
        let touchesDevice =
            (incomingIsEndurance && !isDelete) || (stored?.isEndurance ?? false)
            || (stored?.hasExternalWorkout ?? false)
        guard touchesDevice else { return .apply(status: nil, needsPush: false) }
        return .apply(status: hasConnection ? .pending : .notConnected, needsPush: true)
    }
}

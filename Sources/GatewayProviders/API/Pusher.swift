import GatewayCore
import GatewayHTTP

/// What the gateway knows it has created at a provider for one session. Persisted
/// (sessions.remote_*) after every step, so a retry after a crash or an unknown
/// outcome continues from there instead of creating a second copy.
public struct RemoteWorkout: Sendable, Equatable {
    /// Garmin workoutId / Wahoo workout id.
    public var workoutID: String?
    /// Garmin schedule id.
    public var scheduleID: String?
    /// Wahoo plan id.
    public var planID: String?
    /// The date the workout is scheduled on (Garmin schedule date / Wahoo starts date).
    public var scheduledDate: String?

    public init(
        workoutID: String? = nil, scheduleID: String? = nil, planID: String? = nil, scheduledDate: String? = nil
    ) {
        self.workoutID = workoutID
        self.scheduleID = scheduleID
        self.planID = planID
        self.scheduledDate = scheduledDate
    }

    public var isEmpty: Bool { workoutID == nil && scheduleID == nil && planID == nil }
}

/// An authenticated call to the provider's API (the token manager supplies the
/// token, refreshes on 401 and retries once). `path` is relative to api_base_url.
public typealias ProviderCall =
    @Sendable (
        _ method: HTTPMethod, _ path: String, _ body: [UInt8], _ contentType: String?
    ) throws(ProviderCallError) -> HTTPClientResponse

/// Makes a provider hold exactly one copy of a session's workout, scheduled on its
/// date — or none (SPEC §4, §5). Errors are `ProviderCallError`s from `call`, or
/// whatever `checkpoint` throws (then the attempt stops and is retried).
public protocol ProviderPusher: Sendable {
    var kind: ProviderKind { get }

    /// Creates the workout, or updates it in place and moves its schedule when the date
    /// changed. `checkpoint` must durably store the state it is given before it returns;
    /// it is called after every call that created something, so an unknown outcome
    /// later is reconciled, never duplicated. Returns the final state.
    func upsert(
        _ session: ExportSession, workout: NormalizedWorkout, existing: RemoteWorkout, call: ProviderCall,
        checkpoint: (RemoteWorkout) throws -> Void
    ) throws -> RemoteWorkout

    /// Removes the workout and its schedule (404s count as already gone).
    func remove(
        sessionID: String, existing: RemoteWorkout, call: ProviderCall, checkpoint: (RemoteWorkout) throws -> Void
    ) throws
}

/// A webhook from the plan app, decoded as far as ingest needs (SPEC §2).
///
/// Ingest checks the envelope and the session's identity fields only; the workout
/// itself is validated when it is pushed, so a structurally valid event whose
/// workout is wrong is still accepted and the session becomes FAILED later.
public enum PlanEvent: Sendable, Equatable {
    case sessionUpsert(SessionUpsert)
    case sessionDeleted(SessionRef)
    case athleteDeleted(athleteID: String)
    /// A type this gateway does not know: accepted (202), logged and counted, ignored.
    case unknown(type: String)

    public var typeName: String {
        switch self {
        case .sessionUpsert(let s): return s.isCreate ? "session.created" : "session.updated"
        case .sessionDeleted: return "session.deleted"
        case .athleteDeleted: return "athlete.deleted"
        case .unknown(let type): return type
        }
    }
}

public struct SessionUpsert: Sendable, Equatable {
    public var isCreate: Bool
    public var id: String
    public var athleteID: String
    public var revision: Int64
    public var sessionType: String
    /// `YYYY-MM-DD`, a real calendar date.
    public var date: String
    public var startTime: String?

    public var isEndurance: Bool { sessionType == "ENDURANCE" }

    public init(
        isCreate: Bool, id: String, athleteID: String, revision: Int64, sessionType: String, date: String,
        startTime: String?
    ) {
        self.isCreate = isCreate
        self.id = id
        self.athleteID = athleteID
        self.revision = revision
        self.sessionType = sessionType
        self.date = date
        self.startTime = startTime
    }
}

public struct SessionRef: Sendable, Equatable {
    public var id: String
    public var athleteID: String
    public var revision: Int64

    public init(id: String, athleteID: String, revision: Int64) {
        self.id = id
        self.athleteID = athleteID
        self.revision = revision
    }
}

/// Why a body is not an acceptable event: 400 `malformed_json` or 400 `invalid_event`.
public enum PlanEventError: Error, Equatable, Sendable {
    case malformedJSON(String)
    /// `path` is the JSON path of the offending field (`data.session.revision`).
    case invalidEvent(path: String, problem: String)

    public var code: String {
        switch self {
        case .malformedJSON: return "malformed_json"
        case .invalidEvent: return "invalid_event"
        }
    }

    public var message: String {
        switch self {
        case .malformedJSON(let why): return why
        case .invalidEvent(let path, let problem): return "\(path): \(problem)"
        }
    }
}

extension PlanEvent {
    public static func decode(_ body: UnsafeBufferPointer<UInt8>) throws(PlanEventError) -> PlanEvent {
        let root: JSONValue
        do {
            // The envelope, data and the session/athlete object are built; the workout and
            // athlete thresholds (depth 4) are validated as JSON but decoded at push time.
            root = try JSONParser.parse(buffer: body, materializeDepth: 3)
        } catch {
            throw .malformedJSON(error.description)
        }
        return try decode(root)
    }

    public static func decode(_ root: JSONValue) throws(PlanEventError) -> PlanEvent {
        let fields = try EnvelopeFields(root, path: "")
        let type = try fields.string("type")
        let timestamp = try fields.string("timestamp")
        guard ISODateTime.isValid(timestamp) else {
            throw .invalidEvent(path: "timestamp", problem: "must be an ISO-8601 date-time")
        }
        let data = try fields.object("data")
        switch type {
        case "session.created", "session.updated":
            let session = try data.object("session")
            let id = try session.nonEmptyString("id")
            let athleteID = try session.nonEmptyString("athleteId")
            let revision = try session.revision()
            let sessionType = try session.nonEmptyString("sessionType")
            let date = try session.string("date")
            guard CalendarDate(date) != nil else {
                throw .invalidEvent(path: session.path("date"), problem: "must be a date YYYY-MM-DD")
            }
            let startTime = try session.optionalString("startTime")
            if let startTime, !ISODateTime.isValid(startTime) {
                throw .invalidEvent(path: session.path("startTime"), problem: "must be an ISO-8601 date-time")
            }
            _ = try session.optionalString("title")
            _ = try session.optionalString("description")
            _ = try session.optionalObject("athlete")
            if sessionType == "ENDURANCE" {
                _ = try session.object("workout")
            } else {
                _ = try session.optionalObject("workout")
            }
            return .sessionUpsert(
                SessionUpsert(
                    isCreate: type == "session.created", id: id, athleteID: athleteID, revision: revision,
                    sessionType: sessionType, date: date, startTime: startTime))
        case "session.deleted":
            let session = try data.object("session")
            return .sessionDeleted(
                SessionRef(
                    id: try session.nonEmptyString("id"), athleteID: try session.nonEmptyString("athleteId"),
                    revision: try session.revision()))
        case "athlete.deleted":
            let athlete = try data.object("athlete")
            return .athleteDeleted(athleteID: try athlete.nonEmptyString("id"))
        default:
            return .unknown(type: type)
        }
    }
}

/// Reads typed members of one JSON object, naming the full path in every error.
struct EnvelopeFields {
    let object: JSONObject
    /// The path of the enclosing object and this object's key in it; the full path is
    /// only built for an error message (most nested objects are only type-checked).
    private let parent: String
    private let key: String?

    init(_ value: JSONValue, path: String) throws(PlanEventError) {
        try self.init(value, parent: path, key: nil)
    }

    private init(_ value: JSONValue, parent: String, key: String?) throws(PlanEventError) {
        self.parent = parent
        self.key = key
        guard case .object(let object) = value else {
            let path = Self.join(parent, key)
            throw .invalidEvent(path: path.isEmpty ? "$" : path, problem: "must be an object, got \(value.typeName)")
        }
        self.object = object
    }

    private static func join(_ parent: String, _ key: String?) -> String {
        guard let key else { return parent }
        return parent.isEmpty ? key : parent + "." + key
    }

    var prefix: String { Self.join(parent, key) }

    func path(_ key: String) -> String { Self.join(prefix, key) }

    func required(_ key: String) throws(PlanEventError) -> JSONValue {
        guard let value = object[key], value != .null else {
            throw .invalidEvent(path: path(key), problem: "is required")
        }
        return value
    }

    func string(_ key: String) throws(PlanEventError) -> String {
        let value = try required(key)
        guard case .string(let s) = value else {
            throw .invalidEvent(path: path(key), problem: "must be a string, got \(value.typeName)")
        }
        return s
    }

    func nonEmptyString(_ key: String) throws(PlanEventError) -> String {
        let s = try string(key)
        guard !s.isEmpty else { throw .invalidEvent(path: path(key), problem: "must not be empty") }
        guard s.utf8.count <= 200 else { throw .invalidEvent(path: path(key), problem: "must be at most 200 bytes") }
        return s
    }

    func optionalString(_ key: String) throws(PlanEventError) -> String? {
        guard let value = object[key], value != .null else { return nil }
        guard case .string(let s) = value else {
            throw .invalidEvent(path: path(key), problem: "must be a string, got \(value.typeName)")
        }
        return s
    }

    func object(_ key: String) throws(PlanEventError) -> EnvelopeFields {
        let value = try required(key)
        guard case .object = value else {
            throw .invalidEvent(path: path(key), problem: "must be an object, got \(value.typeName)")
        }
        return try EnvelopeFields(value, parent: prefix, key: key)
    }

    func optionalObject(_ key: String) throws(PlanEventError) -> EnvelopeFields? {
        guard let value = object[key], value != .null else { return nil }
        guard case .object = value else {
            throw .invalidEvent(path: path(key), problem: "must be an object, got \(value.typeName)")
        }
        return try EnvelopeFields(value, parent: prefix, key: key)
    }

    func revision() throws(PlanEventError) -> Int64 {
        let value = try required("revision")
        guard case .int(let revision) = value else {
            throw .invalidEvent(path: path("revision"), problem: "must be an integer, got \(value.typeName)")
        }
        guard revision >= 0 else { throw .invalidEvent(path: path("revision"), problem: "must be >= 0") }
        return revision
    }
}

/// A parsed JSON document.
///
/// The gateway parses untrusted bytes itself rather than through Foundation: it
/// needs exact error offsets, a strict RFC 8259 grammar (no trailing commas, no
/// duplicate keys, valid UTF-8), integers kept exact, and speed on the ingest
/// hot path.
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    /// An integer literal (no fraction, no exponent) that fits in 64 bits.
    case int(Int64)
    /// Any other number.
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    /// A short name of the JSON type, for error messages ("expected an integer, got string").
    public var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "boolean"
        case .int, .double: return "number"
        case .string: return "string"
        case .array: return "array"
        case .object: return "object"
        }
    }

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    public var objectValue: JSONObject? {
        if case .object(let o) = self { return o }
        return nil
    }

    public var arrayValue: [JSONValue]? {
        if case .array(let a) = self { return a }
        return nil
    }

    public var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    /// The value as an exact integer: an integer literal, or a double with no fraction
    /// (`3.0`) that fits in 64 bits.
    public var intValue: Int64? {
        switch self {
        case .int(let i): return i
        case .double(let d):
            guard d.rounded(.towardZero) == d, d >= -9.2e18, d <= 9.2e18 else { return nil }
            return Int64(d)
        default: return nil
        }
    }

    /// The value as a number, integer or not.
    public var doubleValue: Double? {
        switch self {
        case .int(let i): return Double(i)
        case .double(let d): return d
        default: return nil
        }
    }

    public subscript(key: String) -> JSONValue? {
        objectValue?[key]
    }
}

/// A JSON object that keeps its members in document order. Objects in this
/// product are small, so lookup is a linear scan.
public struct JSONObject: Sendable, Equatable {
    /// One member. A struct rather than a tuple: arrays of it are destroyed by the type's
    /// own code, not by the runtime's generic tuple witnesses.
    struct Member: Sendable, Equatable {
        var key: String
        var value: JSONValue
    }

    private(set) var storage: [Member]

    /// The members in document order.
    public var members: [(key: String, value: JSONValue)] {
        storage.map { (key: $0.key, value: $0.value) }
    }

    public init(_ members: [(key: String, value: JSONValue)] = []) {
        storage = members.map { Member(key: $0.key, value: $0.value) }
    }

    /// An object of members already checked for duplicate keys (the parser's).
    init(storage: [Member]) {
        self.storage = storage
    }

    public subscript(key: String) -> JSONValue? {
        get {
            for member in storage where member.key == key { return member.value }
            return nil
        }
        set {
            if let index = storage.firstIndex(where: { $0.key == key }) {
                if let newValue { storage[index].value = newValue } else { storage.remove(at: index) }
            } else if let newValue {
                storage.append(Member(key: key, value: newValue))
            }
        }
    }

    /// An empty object with room for `capacity` members.
    public init(capacity: Int) {
        storage = []
        storage.reserveCapacity(capacity)
    }

    /// Appends a member without looking for an existing one, for encoders that build a
    /// fresh object: the caller guarantees that `key` is not already a member.
    public mutating func append(key: String, value: JSONValue) {
        assert(self[key] == nil, "duplicate JSON key \(key)")
        storage.append(Member(key: key, value: value))
    }

    public mutating func reserveCapacity(_ capacity: Int) {
        storage.reserveCapacity(capacity)
    }

    public var keys: [String] { storage.map(\.key) }
    public var count: Int { storage.count }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral,
    ExpressibleByBooleanLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral,
    ExpressibleByNilLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(JSONObject(storage: elements.map { JSONObject.Member(key: $0.0, value: $0.1) }))
    }
    public init(nilLiteral: ()) { self = .null }
}

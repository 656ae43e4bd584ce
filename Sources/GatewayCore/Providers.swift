/// The device providers the gateway pushes to (SPEC §4).
public enum ProviderKind: String, Sendable, CaseIterable, Equatable, Hashable {
    case garmin = "GARMIN"
    case wahoo = "WAHOO"

    /// The lower-case name used in URLs and config sections (`garmin`, `wahoo`).
    public var slug: String { rawValue.lowercased() }

    public init?(slug: String) {
        self.init(rawValue: slug.uppercased())
    }
}

/// A provider connection's state (SPEC §6).
public enum ConnectionStatus: String, Sendable {
    case connected = "CONNECTED"
    case revoked = "REVOKED"
}

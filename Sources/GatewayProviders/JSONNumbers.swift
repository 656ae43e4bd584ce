import GatewayCore

/// A number for provider JSON: an integer literal when whole (`600`, not `600.0`).
@inline(__always)
func jsonNumber(_ value: Double) -> JSONValue {
    if value.rounded(.towardZero) == value, abs(value) < 1e15 {
        return .int(Int64(value))
    }
    return .double(value)
}

/// At most `limit` characters of `text` (grapheme clusters, never a split scalar).
func truncated(_ text: String, to limit: Int) -> String {
    // Never more characters than UTF-8 bytes: short texts skip counting graphemes.
    guard text.utf8.count > limit, text.count > limit else { return text }
    return String(text.prefix(limit))
}

/// At most `limit` characters of `text` (grapheme clusters, never a split scalar).
func truncated(_ text: String, to limit: Int) -> String {
    // Never more characters than UTF-8 bytes: short texts skip counting graphemes.
    guard text.utf8.count > limit, text.count > limit else { return text }
    return String(text.prefix(limit))
}

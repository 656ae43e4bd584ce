/// The small amount of calendar arithmetic exporters need, without Foundation: session
/// dates (`2026-12-01`) and ISO-8601 start times (`2026-12-01T06:30:00+01:00`).
public enum SessionTime {
    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
    public static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// The civil date of a day count since 1970-01-01.
    public static func civilFromDays(_ days: Int) -> (year: Int, month: Int, day: Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    /// Unix seconds of `YYYY-MM-DD` at 00:00 UTC, or nil when it is not a valid date.
    public static func unixSeconds(date: String) -> Int64? {
        withUTF8(date) { b in
            guard b.count == 10 else { return nil }
            return parseDate(b)
        }
    }

    /// Unix seconds of an ISO-8601 date-time with `Z` or a `±HH:MM` offset and optional
    /// fraction (dropped), or nil.
    public static func unixSeconds(dateTime: String) -> Int64? {
        withUTF8(dateTime) { b in
            guard b.count >= 20, let day = parseDate(UnsafeBufferPointer(rebasing: b[0..<10])),
                b[10] == UInt8(ascii: "T")
                    || b[10] == UInt8(ascii: "t"),
                b[13] == UInt8(ascii: ":"), b[16] == UInt8(ascii: ":"),
                let hour = digits(b, 11, 2), let minute = digits(b, 14, 2), let second = digits(b, 17, 2),
                hour < 24, minute < 60, second < 61
            else { return nil }
            var index = 19
            if b[index] == UInt8(ascii: ".") {
                index += 1
                let start = index
                while index < b.count, isDigit(b[index]) { index += 1 }
                guard index > start else { return nil }
            }
            guard index < b.count else { return nil }
            var offset = 0
            switch b[index] {
            case UInt8(ascii: "Z"), UInt8(ascii: "z"):
                guard index + 1 == b.count else { return nil }
            case UInt8(ascii: "+"), UInt8(ascii: "-"):
                guard index + 6 == b.count, b[index + 3] == UInt8(ascii: ":"),
                    let oh = digits(b, index + 1, 2), let om = digits(b, index + 4, 2), oh < 24, om < 60
                else { return nil }
                offset = (oh * 3600 + om * 60) * (b[index] == UInt8(ascii: "-") ? -1 : 1)
            default:
                return nil
            }
            return day + Int64(hour * 3600 + minute * 60 + second - offset)
        }
    }

    /// `YYYY-MM-DDTHH:MM:SSZ` of Unix seconds.
    public static func formatUTC(unixSeconds: Int64) -> String {
        let days = Int((Double(unixSeconds) / 86_400).rounded(.down))
        let rest = Int(unixSeconds - Int64(days) * 86_400)
        let (year, month, day) = civilFromDays(days)
        guard (0...9999).contains(year) else {
            return pad(year, 4) + "-" + pad(month, 2) + "-" + pad(day, 2) + "T" + pad(rest / 3600, 2)
                + ":" + pad(rest / 60 % 60, 2) + ":" + pad(rest % 60, 2) + "Z"
        }
        // Four-digit years (all of them in practice): the 20 characters written in place.
        return String(unsafeUninitializedCapacity: 20) { buffer in
            func put(_ value: Int, _ width: Int, at offset: Int) {
                var value = value
                for position in stride(from: offset + width - 1, through: offset, by: -1) {
                    buffer[position] = UInt8(ascii: "0") + UInt8(value % 10)
                    value /= 10
                }
            }
            put(year, 4, at: 0)
            buffer[4] = UInt8(ascii: "-")
            put(month, 2, at: 5)
            buffer[7] = UInt8(ascii: "-")
            put(day, 2, at: 8)
            buffer[10] = UInt8(ascii: "T")
            put(rest / 3600, 2, at: 11)
            buffer[13] = UInt8(ascii: ":")
            put(rest / 60 % 60, 2, at: 14)
            buffer[16] = UInt8(ascii: ":")
            put(rest % 60, 2, at: 17)
            buffer[19] = UInt8(ascii: "Z")
            return 20
        }
    }

    private static func pad(_ value: Int, _ width: Int) -> String {
        let text = String(value)
        return text.count >= width ? text : String(repeating: "0", count: width - text.count) + text
    }

    /// Calls `body` with the UTF-8 bytes of `text`, without copying a native string.
    private static func withUTF8<R>(_ text: String, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
        if let result = text.utf8.withContiguousStorageIfAvailable(body) { return result }
        var text = text
        return text.withUTF8(body)
    }

    private static func isDigit(_ byte: UInt8) -> Bool {
        byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
    }

    private static func digits(_ bytes: UnsafeBufferPointer<UInt8>, _ start: Int, _ count: Int) -> Int? {
        guard start + count <= bytes.count else { return nil }
        var value = 0
        for index in start..<(start + count) {
            guard isDigit(bytes[index]) else { return nil }
            value = value * 10 + Int(bytes[index] - UInt8(ascii: "0"))
        }
        return value
    }

    private static func parseDate(_ b: UnsafeBufferPointer<UInt8>) -> Int64? {
        guard b.count == 10, b[4] == UInt8(ascii: "-"), b[7] == UInt8(ascii: "-"),
            let year = digits(b, 0, 4), let month = digits(b, 5, 2), let day = digits(b, 8, 2),
            (1...12).contains(month), day >= 1, day <= daysInMonth(year: year, month: month)
        else { return nil }
        return Int64(daysFromCivil(year: year, month: month, day: day)) * 86_400
    }

    private static func daysInMonth(year: Int, month: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }
}

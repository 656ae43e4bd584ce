/// FIT base types used by the workout file (FIT protocol, "Base Types").
enum FITBaseType: UInt8 {
    case enumeration = 0x00
    case string = 0x07
    case uint16 = 0x84
    case uint32 = 0x86
    case uint32z = 0x8C

    /// The "invalid" (absent) value of the type, as an unsigned integer.
    var invalid: UInt32 {
        switch self {
        case .enumeration: return 0xFF
        case .string, .uint32z: return 0
        case .uint16: return 0xFFFF
        case .uint32: return 0xFFFF_FFFF
        }
    }
}

/// One field of a definition message.
struct FITFieldDefinition {
    var number: UInt8
    var size: UInt8
    var baseType: FITBaseType
}

/// The CRC-16 of the FIT protocol (polynomial 0x8005 reflected, initial value 0), computed
/// four bits at a time.
public enum FITCRC {
    private static let table: [UInt16] = [
        0x0000, 0xCC01, 0xD801, 0x1400, 0xF001, 0x3C00, 0x2800, 0xE401,
        0xA001, 0x6C00, 0x7800, 0xB401, 0x5000, 0x9C01, 0x8801, 0x4400,
    ]

    public static func update(_ crc: UInt16, byte: UInt8) -> UInt16 {
        var crc = crc
        var tmp = table[Int(crc & 0xF)]
        crc = (crc >> 4) & 0x0FFF
        crc = crc ^ tmp ^ table[Int(byte & 0xF)]
        tmp = table[Int(crc & 0xF)]
        crc = (crc >> 4) & 0x0FFF
        crc = crc ^ tmp ^ table[Int((byte >> 4) & 0xF)]
        return crc
    }

    public static func compute(_ bytes: some Sequence<UInt8>, initial: UInt16 = 0) -> UInt16 {
        var crc = initial
        for byte in bytes { crc = update(crc, byte: byte) }
        return crc
    }

    /// Slicing-by-8 tables of the same CRC (CRC-16/ARC, reflected polynomial 0xA001):
    /// entry `k * 256 + v` is the CRC of the byte `v` followed by `k` zero bytes, so that
    /// eight bytes take eight independent lookups instead of eight dependent ones.
    private static let sliceTables: [UInt16] = {
        var tables = [UInt16](repeating: 0, count: 8 * 256)
        for value in 0..<256 {
            var crc = UInt16(value)
            for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0xA001 : crc >> 1 }
            tables[value] = crc
        }
        for k in 1..<8 {
            for value in 0..<256 {
                let previous = tables[(k - 1) * 256 + value]
                tables[k * 256 + value] = (previous >> 8) ^ tables[Int(previous & 0xFF)]
            }
        }
        return tables
    }()

    /// Zero runs: level `k` maps the CRC register to its value after `8 << k` zero bytes,
    /// `lo[k * 256 + low byte] ^ hi[k * 256 + high byte]` (the update is linear in the
    /// register). The NUL padding of the string fields is skipped this way.
    private static let zeroLevels = 16
    private static let zeroTables: (lo: [UInt16], hi: [UInt16]) = {
        let t = sliceTables
        var lo = [UInt16](repeating: 0, count: zeroLevels * 256)
        var hi = [UInt16](repeating: 0, count: zeroLevels * 256)
        for value in 0..<256 {
            // Eight zero bytes: only the register's two bytes look anything up.
            lo[value] = t[7 * 256 + value]
            hi[value] = t[6 * 256 + value]
        }
        for k in 1..<zeroLevels {
            func previous(_ crc: UInt16) -> UInt16 {
                lo[(k - 1) * 256 + Int(crc & 0xFF)] ^ hi[(k - 1) * 256 + Int(crc >> 8)]
            }
            for value in 0..<256 {
                lo[k * 256 + value] = previous(previous(UInt16(value)))
                hi[k * 256 + value] = previous(previous(UInt16(value) << 8))
            }
        }
        return (lo, hi)
    }()

    /// The same CRC over contiguous bytes (the file CRC covers every byte of the file).
    public static func compute(_ bytes: UnsafeBufferPointer<UInt8>, initial: UInt16 = 0) -> UInt16 {
        let zeros = zeroTables
        return sliceTables.withUnsafeBufferPointer { t in
            zeros.lo.withUnsafeBufferPointer { lo in
                zeros.hi.withUnsafeBufferPointer { hi in
                    var crc = initial
                    var i = 0
                    let n = bytes.count
                    if let base = bytes.baseAddress {
                        let raw = UnsafeRawPointer(base)
                        while i + 8 <= n {
                            // Eight bytes, little-endian: the CRC register folds into the first two.
                            let word = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i, as: UInt64.self))
                            if word == 0 {
                                // A run of zero words: advanced by powers of two.
                                var end = i &+ 8
                                while n &- end >= 8, raw.loadUnaligned(fromByteOffset: end, as: UInt64.self) == 0 {
                                    end &+= 8
                                }
                                var run = (end &- i) >> 3
                                i = end
                                var level = 0
                                while run > 0 {
                                    if level == zeroLevels - 1 {
                                        // Longer than the tables reach: the top level, repeated.
                                        let top = level * 256
                                        let steps = run
                                        for _ in 0..<steps { crc = lo[top + Int(crc & 0xFF)] ^ hi[top + Int(crc >> 8)] }
                                        break
                                    }
                                    if run & 1 != 0 {
                                        crc = lo[level * 256 + Int(crc & 0xFF)] ^ hi[level * 256 + Int(crc >> 8)]
                                    }
                                    run >>= 1
                                    level += 1
                                }
                                continue
                            }
                            let x = word ^ UInt64(crc)
                            // A zero byte adds nothing (its entries are 0).
                            crc = t[7 * 256 + Int(x & 0xFF)] ^ t[6 * 256 + Int((x >> 8) & 0xFF)]
                            if x >> 16 != 0 {
                                crc ^=
                                    t[5 * 256 + Int((x >> 16) & 0xFF)] ^ t[4 * 256 + Int((x >> 24) & 0xFF)]
                                    ^ t[3 * 256 + Int((x >> 32) & 0xFF)] ^ t[2 * 256 + Int((x >> 40) & 0xFF)]
                                    ^ t[256 + Int((x >> 48) & 0xFF)] ^ t[Int(x >> 56)]
                            }
                            i += 8
                        }
                    }
                    while i < n {
                        crc = (crc >> 8) ^ t[Int((crc ^ UInt16(bytes[i])) & 0xFF)]
                        i += 1
                    }
                    return crc
                }
            }
        }
    }
}

/// Writes FIT records (little-endian) into a buffer sized in advance (every write is
/// bounds-checked), after room for the 14-byte header; ``finish()`` frames the file with
/// the header and the file CRC.
struct FITWriter: ~Copyable {
    static let headerSize = 14
    /// Protocol 1.0: the file uses no 2.0 feature, so every device reads it.
    static let protocolVersion: UInt8 = 0x10
    /// Profile 21.32.
    static let profileVersion: UInt16 = 2132

    private let base: UnsafeMutablePointer<UInt8>
    private let capacity: Int
    private(set) var count: Int

    /// The size of a file whose records (definitions and data) take `recordBytes` bytes.
    static func fileSize(recordBytes: Int) -> Int { headerSize + recordBytes + 2 }

    /// A writer over `buffer`, which must have room for the whole file.
    init(_ buffer: UnsafeMutableBufferPointer<UInt8>) {
        precondition(buffer.count >= Self.headerSize + 2, "FIT buffer too small")
        base = buffer.baseAddress!
        capacity = buffer.count
        count = Self.headerSize
    }

    /// Room for `n` more bytes, checked: returns where they go.
    @inline(__always)
    private mutating func take(_ n: Int) -> UnsafeMutablePointer<UInt8> {
        precondition(n <= capacity - count, "FIT buffer overflow")
        defer { count += n }
        return base + count
    }

    @inline(__always)
    mutating func u8(_ value: UInt8) { take(1).pointee = value }

    @inline(__always)
    mutating func u16(_ value: UInt16) {
        let p = take(2)
        p[0] = UInt8(truncatingIfNeeded: value)
        p[1] = UInt8(truncatingIfNeeded: value >> 8)
    }

    @inline(__always)
    mutating func u32(_ value: UInt32) {
        let p = take(4)
        p[0] = UInt8(truncatingIfNeeded: value)
        p[1] = UInt8(truncatingIfNeeded: value >> 8)
        p[2] = UInt8(truncatingIfNeeded: value >> 16)
        p[3] = UInt8(truncatingIfNeeded: value >> 24)
    }

    /// A fixed-size, NUL-terminated and NUL-padded UTF-8 string, cut at a scalar boundary.
    mutating func string(_ text: String, size: Int) {
        Self.write(text, size: size, at: take(size))
    }

    /// `text` as a string field of `size` bytes at `p`.
    static func write(_ text: String, size: Int, at p: UnsafeMutablePointer<UInt8>) {
        if let written = text.utf8.withContiguousStorageIfAvailable({ copy($0, to: p, size: size) }) {
            (p + written).initialize(repeating: 0, count: size - written)
        } else {
            var text = text
            let written = text.withUTF8 { copy($0, to: p, size: size) }
            (p + written).initialize(repeating: 0, count: size - written)
        }
    }

    /// A data message of `size` bytes (its header included), checked once; its fields are
    /// written through the returned record, which must be filled exactly.
    mutating func record(size: Int) -> FITRecord {
        FITRecord(base: take(size), size: size)
    }

    /// Copies at most `size - 1` bytes of `utf8`, never half a scalar; returns how many.
    private static func copy(_ utf8: UnsafeBufferPointer<UInt8>, to p: UnsafeMutablePointer<UInt8>, size: Int)
        -> Int
    {
        var count = min(utf8.count, size - 1)
        // Cut before the scalar that does not fit: back off over its continuation bytes.
        if count < utf8.count {
            while count > 0, utf8[count] & 0xC0 == 0x80 { count -= 1 }
        }
        if count > 0, let source = utf8.baseAddress { p.update(from: source, count: count) }
        return count
    }

    /// The header of a definition message with `fieldCount` fields (written next, with
    /// ``field(_:)``).
    mutating func definition(local: UInt8, global: UInt16, fieldCount: Int) {
        let p = take(6)
        p[0] = 0x40 | local
        p[1] = 0  // reserved
        p[2] = 0  // little-endian
        p[3] = UInt8(truncatingIfNeeded: global)
        p[4] = UInt8(truncatingIfNeeded: global >> 8)
        p[5] = UInt8(fieldCount)
    }

    @inline(__always)
    mutating func field(_ field: FITFieldDefinition) {
        let p = take(3)
        p[0] = field.number
        p[1] = field.size
        p[2] = field.baseType.rawValue
    }

    @inline(__always)
    mutating func dataHeader(local: UInt8) { u8(local & 0x0F) }

    /// Fills in the header and appends the file CRC; returns the file's size. The
    /// buffer must be exactly full then.
    mutating func finish() -> Int {
        precondition(count + 2 == capacity, "FIT size mismatch: \(count + 2) written, \(capacity) planned")
        let dataSize = UInt32(count - Self.headerSize)
        let header = base
        header[0] = UInt8(Self.headerSize)
        header[1] = Self.protocolVersion
        header[2] = UInt8(Self.profileVersion & 0xFF)
        header[3] = UInt8(Self.profileVersion >> 8)
        header[4] = UInt8(dataSize & 0xFF)
        header[5] = UInt8((dataSize >> 8) & 0xFF)
        header[6] = UInt8((dataSize >> 16) & 0xFF)
        header[7] = UInt8(dataSize >> 24)
        header[8] = UInt8(ascii: ".")
        header[9] = UInt8(ascii: "F")
        header[10] = UInt8(ascii: "I")
        header[11] = UInt8(ascii: "T")
        let headerCRC = FITCRC.compute(UnsafeBufferPointer(start: base, count: 12))
        header[12] = UInt8(headerCRC & 0xFF)
        header[13] = UInt8(headerCRC >> 8)
        let fileCRC = FITCRC.compute(UnsafeBufferPointer(start: base, count: count))
        u16(fileCRC)
        return count
    }
}

/// The fields of one data message, written in order into room the writer checked.
struct FITRecord {
    private let base: UnsafeMutablePointer<UInt8>
    private let size: Int
    private var offset = 0

    init(base: UnsafeMutablePointer<UInt8>, size: Int) {
        self.base = base
        self.size = size
    }

    /// Room for `n` more bytes of the message.
    @inline(__always)
    private mutating func next(_ n: Int) -> UnsafeMutableRawPointer {
        precondition(n <= size - offset, "FIT record overflow")
        defer { offset += n }
        return UnsafeMutableRawPointer(base + offset)
    }

    @inline(__always)
    mutating func u8(_ value: UInt8) { next(1).storeBytes(of: value, as: UInt8.self) }

    @inline(__always)
    mutating func u16(_ value: UInt16) { next(2).storeBytes(of: value.littleEndian, as: UInt16.self) }

    @inline(__always)
    mutating func u32(_ value: UInt32) { next(4).storeBytes(of: value.littleEndian, as: UInt32.self) }

    mutating func string(_ text: String, size: Int) {
        FITWriter.write(text, size: size, at: next(size).assumingMemoryBound(to: UInt8.self))
    }

    /// Checks that the message is complete.
    func finish() {
        precondition(offset == size, "FIT record size mismatch: \(offset) written, \(size) planned")
    }
}

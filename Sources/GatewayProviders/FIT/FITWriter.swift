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

    /// Byte-wise table of the same CRC (CRC-16/ARC, reflected polynomial 0xA001):
    /// one lookup per byte instead of two nibble steps.
    private static let byteTable: [UInt16] = (0..<256).map { value in
        var crc = UInt16(value)
        for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0xA001 : crc >> 1 }
        return crc
    }

    /// The same CRC over contiguous bytes (the file CRC covers every byte of the file).
    public static func compute(_ bytes: UnsafeBufferPointer<UInt8>, initial: UInt16 = 0) -> UInt16 {
        byteTable.withUnsafeBufferPointer { t in
            var crc = initial
            for byte in bytes { crc = (crc >> 8) ^ t[Int((crc ^ UInt16(byte)) & 0xFF)] }
            return crc
        }
    }
}

/// Appends FIT records (little-endian) to one byte buffer, then frames it with the
/// 14-byte header and the file CRC.
struct FITWriter {
    static let headerSize = 14
    /// Protocol 1.0: the file uses no 2.0 feature, so every device reads it.
    static let protocolVersion: UInt8 = 0x10
    /// Profile 21.32.
    static let profileVersion: UInt16 = 2132

    private(set) var bytes: [UInt8]

    init(capacity: Int) {
        bytes = []
        bytes.reserveCapacity(capacity + Self.headerSize + 2)
        bytes.append(contentsOf: repeatElement(0, count: Self.headerSize))
    }

    mutating func u8(_ value: UInt8) { bytes.append(value) }

    mutating func u16(_ value: UInt16) {
        bytes.append(UInt8(value & 0xFF))
        bytes.append(UInt8(value >> 8))
    }

    mutating func u32(_ value: UInt32) {
        bytes.append(UInt8(value & 0xFF))
        bytes.append(UInt8((value >> 8) & 0xFF))
        bytes.append(UInt8((value >> 16) & 0xFF))
        bytes.append(UInt8(value >> 24))
    }

    /// A fixed-size, NUL-terminated and NUL-padded UTF-8 string, cut at a scalar boundary.
    mutating func string(_ text: String, size: Int) {
        var text = text
        let written = text.withUTF8 { utf8 in
            var count = min(utf8.count, size - 1)
            // Cut before the scalar that does not fit: back off over its continuation bytes.
            if count < utf8.count {
                while count > 0, utf8[count] & 0xC0 == 0x80 { count -= 1 }
            }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[..<count]))
            return count
        }
        bytes.append(contentsOf: repeatElement(0, count: size - written))
    }

    /// A value of an integer field of `size` bytes.
    mutating func value(_ value: UInt32, size: UInt8) {
        switch size {
        case 1: u8(UInt8(truncatingIfNeeded: value))
        case 2: u16(UInt16(truncatingIfNeeded: value))
        default: u32(value)
        }
    }

    mutating func definition(local: UInt8, global: UInt16, fields: [FITFieldDefinition]) {
        u8(0x40 | local)
        u8(0)  // reserved
        u8(0)  // little-endian
        u16(global)
        u8(UInt8(fields.count))
        for field in fields {
            u8(field.number)
            u8(field.size)
            u8(field.baseType.rawValue)
        }
    }

    mutating func dataHeader(local: UInt8) { u8(local & 0x0F) }

    /// Fills in the header and appends the file CRC.
    mutating func finish() -> [UInt8] {
        let dataSize = UInt32(bytes.count - Self.headerSize)
        bytes[0] = UInt8(Self.headerSize)
        bytes[1] = Self.protocolVersion
        bytes[2] = UInt8(Self.profileVersion & 0xFF)
        bytes[3] = UInt8(Self.profileVersion >> 8)
        bytes[4] = UInt8(dataSize & 0xFF)
        bytes[5] = UInt8((dataSize >> 8) & 0xFF)
        bytes[6] = UInt8((dataSize >> 16) & 0xFF)
        bytes[7] = UInt8(dataSize >> 24)
        bytes[8] = UInt8(ascii: ".")
        bytes[9] = UInt8(ascii: "F")
        bytes[10] = UInt8(ascii: "I")
        bytes[11] = UInt8(ascii: "T")
        let headerCRC = bytes.withUnsafeBufferPointer { FITCRC.compute(UnsafeBufferPointer(rebasing: $0[0..<12])) }
        bytes[12] = UInt8(headerCRC & 0xFF)
        bytes[13] = UInt8(headerCRC >> 8)
        let fileCRC = bytes.withUnsafeBufferPointer { FITCRC.compute($0) }
        u16(fileCRC)
        return bytes
    }
}

import Foundation
import GatewayCore
import GatewayProviders

/// Loading fixtures and comparing JSON structurally.
enum Fixtures {
    static var root: URL {
        Bundle.module.url(forResource: "Fixtures", withExtension: nil)!
    }

    /// Source directory of the fixtures, to rewrite goldens with `UPDATE_GOLDENS=1`.
    static func sourceRoot(file: String = #filePath) -> URL {
        URL(fileURLWithPath: file).deletingLastPathComponent().appendingPathComponent("Fixtures")
    }

    static func names(_ folder: String) -> [String] {
        let url = root.appendingPathComponent(folder)
        let files = (try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? []
        return files.filter { $0.hasSuffix(".json") }.map { String($0.dropLast(5)) }.sorted()
    }

    static func load(_ folder: String, _ name: String) throws -> JSONObject {
        let url = root.appendingPathComponent(folder).appendingPathComponent(name + ".json")
        let data = try Data(contentsOf: url)
        return try JSONParser.parse(Array(data)).objectValue!
    }

    static var updating: Bool { ProcessInfo.processInfo.environment["UPDATE_GOLDENS"] == "1" }

    /// Replaces one member of a fixture file in the source tree (compact JSON; reformat after).
    static func update(_ folder: String, _ name: String, key: String, value: JSONValue) throws {
        let url = sourceRoot().appendingPathComponent(folder).appendingPathComponent(name + ".json")
        var object = try JSONParser.parse(Array(try Data(contentsOf: url))).objectValue!
        object[key] = value
        try Data(JSONValue.object(object).serialized.utf8).write(to: url)
    }
}

/// The first structural difference between two JSON values (object member order ignored,
/// numbers compared by value), or nil when they are equal.
func jsonDifference(_ actual: JSONValue, _ expected: JSONValue, path: String = "$") -> String? {
    switch (actual, expected) {
    case (.object(let a), .object(let e)):
        for key in e.keys where a[key] == nil { return "\(path).\(key): missing" }
        for key in a.keys where e[key] == nil { return "\(path).\(key): unexpected" }
        for key in e.keys {
            if let diff = jsonDifference(a[key]!, e[key]!, path: path + "." + key) { return diff }
        }
        return nil
    case (.array(let a), .array(let e)):
        guard a.count == e.count else { return "\(path): \(a.count) elements, expected \(e.count)" }
        for (index, (x, y)) in zip(a, e).enumerated() {
            if let diff = jsonDifference(x, y, path: "\(path)[\(index)]") { return diff }
        }
        return nil
    default:
        if let x = actual.doubleValue, let y = expected.doubleValue {
            return x == y ? nil : "\(path): \(x), expected \(y)"
        }
        return actual == expected
            ? nil : "\(path): \(actual.serialized), expected \(expected.serialized)"
    }
}

/// A small FIT reader for the tests: checks both CRCs and returns the data messages.
struct FITMessage {
    var global: UInt16
    var fields: [UInt8: [UInt8]]

    func uint(_ number: UInt8) -> UInt32? {
        guard let bytes = fields[number] else { return nil }
        var value: UInt32 = 0
        for (index, byte) in bytes.enumerated() { value |= UInt32(byte) << (8 * UInt32(index)) }
        let invalid: UInt32 =
            bytes.count == 1 ? 0xFF : bytes.count == 2 ? 0xFFFF : 0xFFFF_FFFF
        return value == invalid ? nil : value
    }

    func string(_ number: UInt8) -> String? {
        guard let bytes = fields[number] else { return nil }
        let text = bytes.prefix { $0 != 0 }
        return text.isEmpty ? nil : String(decoding: text, as: UTF8.self)
    }
}

enum FITReadError: Error, Equatable {
    case badHeader, badHeaderCRC, badFileCRC, truncated
    case unknownLocal(UInt8)
    case unsupported
}

func readFIT(_ bytes: [UInt8]) throws(FITReadError) -> [FITMessage] {
    guard bytes.count >= 16, bytes[0] == 14, Array(bytes[8..<12]) == Array(".FIT".utf8) else {
        throw .badHeader
    }
    let headerCRC = UInt16(bytes[12]) | UInt16(bytes[13]) << 8
    guard FITCRC.compute(bytes[0..<12]) == headerCRC else { throw .badHeaderCRC }
    let dataSize = Int(bytes[4]) | Int(bytes[5]) << 8 | Int(bytes[6]) << 16 | Int(bytes[7]) << 24
    guard bytes.count == 14 + dataSize + 2 else { throw .truncated }
    guard FITCRC.compute(bytes) == 0 else { throw .badFileCRC }
    var definitions: [UInt8: (UInt16, [(UInt8, Int)])] = [:]
    var messages: [FITMessage] = []
    var index = 14
    let end = 14 + dataSize
    while index < end {
        let header = bytes[index]
        index += 1
        guard header & 0x80 == 0 else { throw .unsupported }
        let local = header & 0x0F
        if header & 0x40 != 0 {
            guard index + 5 <= end, bytes[index + 1] == 0 else { throw .unsupported }
            let global = UInt16(bytes[index + 2]) | UInt16(bytes[index + 3]) << 8
            let count = Int(bytes[index + 4])
            index += 5
            var fields: [(UInt8, Int)] = []
            for _ in 0..<count {
                guard index + 3 <= end else { throw .truncated }
                fields.append((bytes[index], Int(bytes[index + 1])))
                index += 3
            }
            definitions[local] = (global, fields)
        } else {
            guard let (global, fields) = definitions[local] else { throw .unknownLocal(local) }
            var message = FITMessage(global: global, fields: [:])
            for (number, size) in fields {
                guard index + size <= end else { throw .truncated }
                message.fields[number] = Array(bytes[index..<(index + size)])
                index += size
            }
            messages.append(message)
        }
    }
    return messages
}

/// Total time (ms) and distance (cm) of a decoded FIT workout, repeats executed.
func fitTotals(_ steps: [FITMessage]) -> (milliseconds: UInt64, centimeters: UInt64, count: Int) {
    var ms: UInt64 = 0
    var cm: UInt64 = 0
    var count = 0
    var remaining: [Int: UInt32] = [:]
    var index = 0
    var guardCounter = 0
    while index < steps.count, guardCounter < 10_000_000 {
        guardCounter += 1
        let step = steps[index]
        switch step.uint(1) {
        case 0?:
            ms += UInt64(step.uint(2) ?? 0)
            count += 1
        case 1?:
            cm += UInt64(step.uint(2) ?? 0)
            count += 1
        case 6?:
            let left = remaining[index] ?? (step.uint(4) ?? 1)
            if left > 1 {
                remaining[index] = left - 1
                index = Int(step.uint(2) ?? 0)
                continue
            }
            remaining[index] = nil
        default: count += 1
        }
        index += 1
    }
    return (ms, cm, count)
}

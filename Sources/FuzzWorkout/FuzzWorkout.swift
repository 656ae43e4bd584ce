// Fuzz target: the exporters (docs/TESTING.md): JSON parser -> workout decoder ->
// validator/normalizer per provider -> Garmin, Wahoo and FIT encoders, called the way
// the pusher (and ExporterBench) calls them.
//
// Input: JSON bytes. The session is `data.session` of a webhook envelope, else the
// `session` member (the fixture format of Tests/GatewayProvidersTests), else the root.
import FuzzSupport
import GatewayCore
import GatewayProviders

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzWorkoutEntry(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    fuzzWorkout(UnsafeBufferPointer(start: data, count: size))
    return 0
}

func fuzzWorkout(_ input: UnsafeBufferPointer<UInt8>) {
    guard let root = try? JSONParser.parse(buffer: input) else { return }
    // The writer's output parses back to the same value.
    let reparsed = try? JSONParser.parse(root.serializedBytes)
    fuzzCheck(reparsed.map { sameJSON($0, root) } == true, "JSON round trip changed the value: \(root.serialized)")

    let sessionValue = root["data"]?["session"] ?? root["session"] ?? root
    guard let session = try? ExportSession.decode(from: sessionValue) else { return }

    if let workout = try? session.prepare(for: .garmin) {
        let body = GarminWorkoutEncoder.body(workout, session: session)
        let parsed = try? JSONParser.parse(body)
        fuzzCheck(parsed?["workoutName"]?.stringValue != nil, "Garmin body is not a JSON workout")
    }
    if let workout = try? session.prepare(for: .wahoo) {
        let plan = WahooPlanEncoder.planJSON(workout, session: session)
        fuzzCheck((try? JSONParser.parse(plan))?.objectValue != nil, "plan.json is not a JSON object")
        // The streamed data URL carries exactly the bytes of plan.json.
        let form = WahooPlanEncoder.planFormFields(workout, session: session, providerUpdatedAt: "2026-11-25T08:00:00Z")
        let url = form.first { $0.0 == "plan[file]" }?.1 ?? ""
        let prefix = "data:application/json;base64,"
        fuzzCheck(url.hasPrefix(prefix), "plan[file] is not a JSON data URL")
        fuzzCheck(Base64.decode(url.dropFirst(prefix.count)) == plan, "plan[file] does not decode to plan.json")
        let fields = WahooPlanEncoder.workoutFormFields(workout, session: session, planID: "1")
        let minutes = fields.first { $0.0 == "workout[minutes]" }.flatMap { Int($0.1) }
        fuzzCheck((minutes ?? 0) >= 1, "workout[minutes] is not a positive integer")
    }
    if let workout = try? session.prepare(for: .fit) {
        checkFIT(FITWorkoutEncoder.encode(workout, session: session))
    }
}

/// Structural equality with numbers compared by value: `1e3` parses as a double and is
/// written back as `1000`, which parses as an integer.
func sameJSON(_ a: JSONValue, _ b: JSONValue) -> Bool {
    switch (a, b) {
    case (.int(let x), .int(let y)): return x == y
    case (.int, .double), (.double, .int), (.double, .double): return a.doubleValue == b.doubleValue
    case (.array(let x), .array(let y)): return x.count == y.count && zip(x, y).allSatisfy { sameJSON($0, $1) }
    case (.object(let x), .object(let y)):
        return x.count == y.count
            && zip(x.members, y.members).allSatisfy { $0.key == $1.key && sameJSON($0.value, $1.value) }
    default: return a == b
    }
}

/// A FIT file frames itself: 14-byte header with the data size, ".FIT" and the header
/// CRC; records; the file CRC, so that the CRC of the whole file is 0.
func checkFIT(_ file: [UInt8]) {
    fuzzCheck(file.count >= 16 && file[0] == 14, "FIT header size byte \(file.first ?? 0), file \(file.count) bytes")
    let dataSize = Int(file[4]) | Int(file[5]) << 8 | Int(file[6]) << 16 | Int(file[7]) << 24
    fuzzCheck(dataSize == file.count - 16, "FIT data size \(dataSize) in a \(file.count)-byte file")
    fuzzCheck(file[8..<12].elementsEqual(".FIT".utf8), "FIT signature missing")
    let headerCRC = UInt16(file[12]) | UInt16(file[13]) << 8
    fuzzCheck(FITCRC.compute(file[0..<12]) == headerCRC, "FIT header CRC mismatch")
    fuzzCheck(FITCRC.compute(file) == 0, "FIT file CRC mismatch")
}

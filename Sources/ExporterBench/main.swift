// Exporter benchmark (issue 3): one 50-step bike session through everything a push
// does before any I/O — JSON decode, workout decode, normalize + validate per
// provider, Garmin JSON, Wahoo plan + forms, FIT file. Run by `scripts/bench exporters`.
//
// usage: ExporterBench [iterations] [rounds] [all|exporters|decode]
import GatewayCore
import GatewayProviders

#if canImport(Glibc)
    import Glibc
#endif

/// A 50-step BIKE session: warm-up, 12 × (interval, recovery) at mixed targets,
/// 3 × (3 cadence drills), 15 tempo steps, cool-down; 50 steps once repeats expand.
func sessionJSON() -> String {
    var steps: [String] = [
        #"{"kind":"WARMUP","name":"Warm up","duration":{"type":"TIME","seconds":900},"target":{"type":"POWER_ZONE","zone":2}}"#
    ]
    steps.append(
        #"{"repeat":12,"steps":[{"kind":"INTERVAL","name":"On","notes":"Seated, smooth","duration":{"type":"TIME","seconds":60},"target":{"type":"POWER_PERCENT_FTP","min":110,"max":120},"secondaryTarget":{"type":"CADENCE","minRpm":90,"maxRpm":100}},{"kind":"RECOVERY","duration":{"type":"TIME","seconds":60},"target":{"type":"HEART_RATE","minBpm":110,"maxBpm":130}}]}"#
    )
    steps.append(
        #"{"repeat":3,"steps":[{"kind":"ACTIVE","duration":{"type":"TIME","seconds":30},"target":{"type":"CADENCE","minRpm":110,"maxRpm":120}},{"kind":"ACTIVE","duration":{"type":"TIME","seconds":30},"target":{"type":"POWER","minWatts":200,"maxWatts":230}},{"kind":"REST","duration":{"type":"TIME","seconds":60}}]}"#
    )
    for i in 0..<15 {
        steps.append(
            #"{"kind":"ACTIVE","name":"Tempo \#(i)","duration":{"type":"DISTANCE","meters":\#(2000 + i * 100)},"target":{"type":"HEART_RATE_ZONE","zone":3}}"#
        )
    }
    steps.append(#"{"kind":"COOLDOWN","duration":{"type":"TIME","seconds":600}}"#)
    return
        #"{"id":"ses_bench","athleteId":"ath_bench","revision":7,"sessionType":"ENDURANCE","date":"2026-12-01","startTime":"2026-12-01T06:30:00+01:00","title":"Threshold and cadence","description":"Bench session","athlete":{"ftpWatts":260,"maxHr":188,"thresholdHr":170},"workout":{"sport":"BIKE","steps":["#
        + steps.joined(separator: ",") + "]}}"
}

struct Output {
    var bytes = 0
}

@inline(never)
func runOnce(_ json: [UInt8], _ out: inout Output) {
    do {
        let value = try JSONParser.parse(json)
        let session = try ExportSession.decode(from: value)
        // Each provider normalizes and validates with its own limits, once.
        let garmin = GarminWorkoutEncoder.body(try session.prepare(for: .garmin), session: session)
        let wahooWorkout = try session.prepare(for: .wahoo)
        let plan = WahooPlanEncoder.planFormFields(
            wahooWorkout, session: session, providerUpdatedAt: "2026-11-25T08:00:00Z")
        let workout = WahooPlanEncoder.workoutFormFields(wahooWorkout, session: session, planID: "1")
        let fit = FITWorkoutEncoder.encode(try session.prepare(for: .fit), session: session)
        out.bytes &+= garmin.count &+ plan[0].1.utf8.count &+ workout.count &+ fit.count
    } catch {
        fatalError("bench session failed: \(error)")
    }
}

func nanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

let arguments = CommandLine.arguments
let iterations = arguments.count > 1 ? Int(arguments[1]) ?? 2000 : 2000
let rounds = arguments.count > 2 ? Int(arguments[2]) ?? 7 : 7
let which = arguments.count > 3 ? arguments[3] : "all"
let json = Array(sessionJSON().utf8)

// Sanity: the session has 50 steps once expanded, and every encoder accepts it.
do {
    let session = try ExportSession.decode(from: try JSONParser.parse(json))
    let steps = try session.prepare(for: .garmin).steps.count
    let fitSize = FITWorkoutEncoder.encode(try session.prepare(for: .fit), session: session).count
    print("session: \(json.count) bytes JSON, \(steps) steps expanded, FIT \(fitSize) bytes")
    precondition(steps == 50, "the bench session must have 50 steps, has \(steps)")
} catch {
    fatalError("bench session invalid: \(error)")
}

var out = Output()

/// µs per call of `body` in each of `rounds` timed rounds of `iterations` calls, sorted,
/// after min(200, iterations) warm-up calls.
func timedRounds(_ body: () -> Void) -> [Double] {
    for _ in 0..<min(200, iterations) { body() }
    var times: [Double] = []
    for _ in 0..<rounds {
        let start = nanos()
        for _ in 0..<iterations { body() }
        times.append(Double(nanos() - start) / Double(iterations) / 1000)
    }
    return times.sorted()
}

if which != "decode" {
    let perIteration = timedRounds { runOnce(json, &out) }
    let median = perIteration[perIteration.count / 2]
    print(
        "exporters: median \(String(format2(median))) µs per workout (min \(format2(perIteration.first!)), "
            + "max \(format2(perIteration.last!))) over \(rounds) rounds of \(iterations); checksum \(out.bytes % 997)")
}

func format2(_ x: Double) -> String {
    let scaled = (x * 100).rounded() / 100
    return String(scaled)
}

// Ingest decode (issue 2): what the event loop does with a webhook body before it is
// handed to the writer — the envelope and session fields decoded, the rest validated.
let envelope = Array(
    (#"{"type":"session.updated","timestamp":"2026-11-25T08:00:00.000Z","data":{"session":"#
        + sessionJSON() + "}}").utf8)
@inline(never)
func decodeOnce(_ body: [UInt8], _ out: inout Output) {
    body.withUnsafeBufferPointer { buffer in
        guard case .sessionUpsert(let session) = try? PlanEvent.decode(buffer) else {
            fatalError("bench envelope invalid")
        }
        out.bytes &+= session.id.utf8.count
    }
}
if which != "exporters" {
    let decodeTimes = timedRounds { decodeOnce(envelope, &out) }
    print(
        "ingest decode: median \(format2(decodeTimes[decodeTimes.count / 2])) µs per \(envelope.count)-byte webhook "
            + "(min \(format2(decodeTimes.first!)), max \(format2(decodeTimes.last!)))")
}

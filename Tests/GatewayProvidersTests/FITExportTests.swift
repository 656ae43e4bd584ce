import Foundation
import GatewayCore
import GatewayProviders
import Testing

/// FIT files of every valid fixture, checked with the test's own FIT reader. With
/// `FIT_OUT_DIR=<dir>` the files are also written there as `<fixture>.fit` for
/// Tests/e2e/test_fit_decode.py, which decodes them with Garmin's FIT SDK.
struct FITExportTests {
    static let validNames = Fixtures.names("valid")

    @Test(arguments: validNames)
    func fixtureFIT(name: String) throws {
        let fixture = try Fixtures.load("valid", name)
        let session = try ExportSession.decode(from: fixture["session"]!)
        let bytes = try FITWorkoutEncoder.encode(session)
        if let dir = ProcessInfo.processInfo.environment["FIT_OUT_DIR"], !dir.isEmpty {
            let url = URL(fileURLWithPath: dir).appendingPathComponent(name + ".fit")
            try FileManager.default.createDirectory(
                at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(bytes).write(to: url)
        }
        let messages = try readFIT(bytes)
        #expect(messages.map(\.global).prefix(2) == [0, 26])
        #expect(messages[0].uint(0) == 5)  // file_id.type = workout
        let steps = messages.filter { $0.global == 27 }
        let normalized = WorkoutNormalizer.normalize(session.workout)
        #expect(steps.count == normalized.treeStepCount)
        #expect(messages[1].uint(6) == UInt32(normalized.treeStepCount))
        #expect(messages[1].string(8) == session.title)
        for (index, step) in steps.enumerated() {
            #expect(step.uint(254) == UInt32(index))
        }
        let totals = fitTotals(steps)
        #expect(totals.count == normalized.steps.count)
        #expect(totals.milliseconds == UInt64((normalized.totalSeconds * 1000).rounded()))
        #expect(totals.centimeters == UInt64((normalized.totalMeters * 100).rounded()))
    }

    @Test func thresholdFileFields() throws {
        let fixture = try Fixtures.load("valid", "07-bike-threshold-5x5")
        let session = try ExportSession.decode(from: fixture["session"]!)
        let messages = try readFIT(try FITWorkoutEncoder.encode(session))
        // time_created: 2026-12-01T05:30:00Z in FIT seconds.
        #expect(messages[0].uint(4) == UInt32(1_796_103_000 - 631_065_600))
        #expect(messages[0].uint(1) == 255)
        #expect(messages[1].uint(4) == 2)  // cycling
        #expect(messages[1].string(17) == "optional text")
        let steps = messages.filter { $0.global == 27 }
        #expect(steps.count == 5)
        // warmup 50–65 %FTP
        #expect(steps[0].uint(1) == 0)
        #expect(steps[0].uint(2) == 900_000)
        #expect(steps[0].uint(3) == 4)
        #expect(steps[0].uint(4) == 0)
        #expect(steps[0].uint(5) == 50)
        #expect(steps[0].uint(6) == 65)
        #expect(steps[0].uint(7) == 2)  // warmup
        // threshold interval: name, 95–105 %FTP, cadence 85–95 as secondary
        #expect(steps[1].string(0) == "Threshold")
        #expect(steps[1].uint(5) == 95)
        #expect(steps[1].uint(6) == 105)
        #expect(steps[1].uint(7) == 5)  // interval
        #expect(steps[1].uint(19) == 3)
        #expect(steps[1].uint(21) == 85)
        #expect(steps[1].uint(22) == 95)
        // repeat: back to step 1, 5 times
        #expect(steps[3].uint(1) == 6)
        #expect(steps[3].uint(2) == 1)
        #expect(steps[3].uint(4) == 5)
        #expect(steps[3].uint(3) == nil)
        #expect(steps[4].uint(7) == 3)  // cooldown
    }

    @Test func customTargetEncodings() {
        let hr = FITWorkoutEncoder.encodeTarget(.heartRate(minBpm: 140, maxBpm: 155))
        #expect([hr.type, hr.value, hr.low, hr.high] == [1, 0, 240, 255])
        let watts = FITWorkoutEncoder.encodeTarget(.power(minWatts: 200, maxWatts: 230))
        #expect([watts.type, watts.value, watts.low, watts.high] == [4, 0, 1200, 1230])
        let ftp = FITWorkoutEncoder.encodeTarget(.powerPercentFTP(min: 95, max: 105))
        #expect([ftp.low, ftp.high] == [95, 105])
        let pace = FITWorkoutEncoder.encodeTarget(.pacePerKm(minSeconds: 240, maxSeconds: 250))
        #expect([pace.type, pace.value, pace.low, pace.high] == [0, 0, 4000, 4167])
        let swim = FITWorkoutEncoder.encodeTarget(.pacePer100m(minSeconds: 95, maxSeconds: 100))
        #expect([swim.low, swim.high] == [1000, 1053])
        let cadence = FITWorkoutEncoder.encodeTarget(.cadence(minRpm: 85, maxRpm: 95))
        #expect([cadence.type, cadence.low, cadence.high] == [3, 85, 95])
        let zone = FITWorkoutEncoder.encodeTarget(.heartRateZone(3))
        #expect([zone.type, zone.value, zone.low] == [1, 3, 0xFFFF_FFFF])
        let powerZone = FITWorkoutEncoder.encodeTarget(.powerZone(6))
        #expect([powerZone.type, powerZone.value] == [4, 6])
        #expect(FITWorkoutEncoder.encodeTarget(.open).type == 2)
    }

    @Test func crcOfKnownInput() {
        // CRC-16/ARC check value of "123456789".
        #expect(FITCRC.compute(Array("123456789".utf8)) == 0xBB3D)
    }

    @Test func longStringsAreCutAtScalarBoundaries() throws {
        let title = String(repeating: "é", count: 100)
        let session = ExportSession(
            id: "s", title: title, date: "2026-01-01",
            workout: Workout(sport: .run, items: [.step(WorkoutStep(kind: .active, duration: .open))]))
        let messages = try readFIT(try FITWorkoutEncoder.encode(session))
        #expect(messages[1].string(8) == String(repeating: "é", count: 31))
        // 4-byte scalars, and ASCII around the 63-byte limit (64 bytes with the NUL).
        let cases = [
            ("a" + String(repeating: "😀", count: 20), "a" + String(repeating: "😀", count: 15)),
            (String(repeating: "x", count: 63), String(repeating: "x", count: 63)),
            (String(repeating: "x", count: 64), String(repeating: "x", count: 63)),
            (String(repeating: "x", count: 62) + "é", String(repeating: "x", count: 62)),
            ("", ""),
        ]
        for (title, expected) in cases {
            let session = ExportSession(
                id: "s", title: title, date: "2026-01-01",
                workout: Workout(sport: .run, items: [.step(WorkoutStep(kind: .active, duration: .open))]))
            let messages = try readFIT(try FITWorkoutEncoder.encode(session))
            #expect((messages[1].string(8) ?? "") == expected)
        }
    }
}

@Test func byteTableCRCMatchesTheNibbleCRC() {
    var generator = SystemRandomNumberGenerator()
    for length in Array(0...40) + [100, 5000] {
        // Random bytes, then the same with runs of zeros (the FIT string padding).
        let random = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let padded = random.enumerated().map { $0.offset % 23 < 15 ? 0 : $0.element }
        // Long zero runs (string fields of 64 and 128 bytes, mostly padding).
        let runs = random.enumerated().map { $0.offset % 300 < 270 ? 0 : $0.element }
        for bytes in [random, padded, runs, [UInt8](repeating: 0, count: length * 97)] {
            for initial: UInt16 in [0, 0xBEEF] {
                let table = bytes.withUnsafeBufferPointer { FITCRC.compute($0, initial: initial) }
                #expect(table == FITCRC.compute(bytes.lazy.map { $0 }, initial: initial), "length \(length)")
            }
        }
    }
    // The FIT SDK's check value: CRC of "123456789" is 0xBB3D (CRC-16/ARC).
    #expect(Array("123456789".utf8).withUnsafeBufferPointer { FITCRC.compute($0) } == 0xBB3D)
}

import GatewayCore
import Testing

private func workout(_ json: String) throws -> Workout {
    try Workout.decode(from: try JSONParser.parse(json))
}

private func problems(_ json: String) -> [String] {
    do {
        _ = try Workout.decode(from: try JSONParser.parse(json))
        return []
    } catch let error as WorkoutDecodingError {
        return error.problems.map(\.description)
    } catch {
        return ["\(error)"]
    }
}

struct WorkoutDecodingTests {
    @Test func decodesEveryShape() throws {
        let decoded = try workout(
            """
            {"sport":"BIKE","steps":[
              {"kind":"WARMUP","name":"wu","notes":"easy","duration":{"type":"TIME","seconds":600},
               "target":{"type":"POWER_PERCENT_FTP","min":50,"max":60.5}},
              {"repeat":3,"steps":[
                {"kind":"INTERVAL","duration":{"type":"DISTANCE","meters":2000},
                 "target":{"type":"POWER","minWatts":250,"maxWatts":270},
                 "secondaryTarget":{"type":"CADENCE","minRpm":90,"maxRpm":100}},
                {"kind":"REST","duration":{"type":"OPEN"},"target":{"type":"OPEN"}}]},
              {"kind":"COOLDOWN","duration":{"type":"TIME","seconds":300},
               "target":{"type":"HEART_RATE_ZONE","zone":2},"secondaryTarget":null,"future":1}]}
            """)
        #expect(decoded.sport == .bike)
        #expect(
            decoded.items == [
                .step(
                    WorkoutStep(
                        kind: .warmup, name: "wu", notes: "easy", duration: .time(seconds: 600),
                        target: .powerPercentFTP(min: 50, max: 60.5))),
                .repeatBlock(
                    RepeatBlock(
                        count: 3,
                        items: [
                            .step(
                                WorkoutStep(
                                    kind: .interval, duration: .distance(meters: 2000),
                                    target: .power(minWatts: 250, maxWatts: 270),
                                    secondaryTarget: .cadence(minRpm: 90, maxRpm: 100))),
                            .step(WorkoutStep(kind: .rest, duration: .open, target: .open)),
                        ])),
                .step(
                    WorkoutStep(kind: .cooldown, duration: .time(seconds: 300), target: .heartRateZone(2))),
            ])
    }

    @Test func paceVariants() throws {
        let run = try workout(
            """
            {"sport":"RUN","steps":[{"kind":"ACTIVE","duration":{"type":"TIME","seconds":60},
              "target":{"type":"PACE","minSecondsPerKm":240,"maxSecondsPerKm":250}}]}
            """)
        #expect(
            run.items == [
                .step(
                    WorkoutStep(
                        kind: .active, duration: .time(seconds: 60),
                        target: .pacePerKm(minSeconds: 240, maxSeconds: 250)))
            ])
        let swim = try workout(
            """
            {"sport":"SWIM","steps":[{"kind":"ACTIVE","duration":{"type":"DISTANCE","meters":100},
              "target":{"type":"PACE","minSecondsPer100m":90,"maxSecondsPer100m":95}}]}
            """)
        #expect(
            swim.items == [
                .step(
                    WorkoutStep(
                        kind: .active, duration: .distance(meters: 100),
                        target: .pacePer100m(minSeconds: 90, maxSeconds: 95)))
            ])
    }

    @Test func collectsAllStructuralProblemsWithPaths() {
        #expect(
            problems(
                """
                {"sport":7,"steps":[{"kind":"JOG","duration":{"type":"TIME"}},
                  {"repeat":2,"steps":[{"kind":"ACTIVE","duration":{"type":"DISTANCE","meters":true},
                    "target":{"type":"HEART_RATE","minBpm":120}}]},
                  {"kind":"ACTIVE","duration":{"type":"OPEN"},"target":{"type":"HEART_RATE_ZONE","zone":2.5}},
                  {"kind":"ACTIVE","name":3,"duration":"long"}]}
                """) == [
                    "workout.sport: must be one of RUN, BIKE, SWIM, got number",
                    "workout.steps[0].kind: must be one of WARMUP, ACTIVE, INTERVAL, RECOVERY, REST, COOLDOWN, got \"JOG\"",
                    "workout.steps[0].duration.seconds: is required",
                    "workout.steps[1].steps[0].duration.meters: must be a number, got boolean",
                    "workout.steps[1].steps[0].target.maxBpm: is required",
                    "workout.steps[2].target.zone: must be an integer",
                    "workout.steps[3].name: must be a string, got number",
                    "workout.steps[3].duration: must be an object, got string",
                ])
    }

    @Test func missingPieces() {
        #expect(problems("[]") == ["workout: must be an object, got array"])
        #expect(problems("{}") == ["workout.sport: is required", "workout.steps: is required"])
        #expect(
            problems(#"{"sport":"RUN","steps":[{"kind":"ACTIVE"}]}"#) == [
                "workout.steps[0].duration: is required"
            ])
    }

    @Test func athleteThresholds() throws {
        let athlete = try AthleteThresholds.decode(
            from: try JSONParser.parse(#"{"ftpWatts":260,"maxHr":188.5,"thresholdHr":null}"#))
        #expect(athlete == AthleteThresholds(ftpWatts: 260, maxHr: 188.5, thresholdHr: nil))
        #expect(throws: WorkoutDecodingError.self) {
            try AthleteThresholds.decode(from: try JSONParser.parse(#"{"maxHr":"x"}"#))
        }
    }
}

struct WorkoutNormalizerTests {
    static let step30 = WorkoutStep(kind: .interval, duration: .time(seconds: 30))
    static let rest30 = WorkoutStep(kind: .recovery, duration: .time(seconds: 30))

    @Test func sixtyByThirtyThirty() {
        let workout = Workout(
            sport: .run,
            items: [
                .step(WorkoutStep(kind: .warmup, duration: .distance(meters: 2000))),
                .repeatBlock(RepeatBlock(count: 60, items: [.step(Self.step30), .step(Self.rest30)])),
                .step(WorkoutStep(kind: .cooldown, duration: .open)),
            ])
        let normalized = WorkoutNormalizer.normalize(workout)
        #expect(normalized.steps.count == 122)
        #expect(normalized.treeStepCount == 5)
        #expect(normalized.totalSeconds == 3600)
        #expect(normalized.totalMeters == 2000)
        #expect(normalized.openStepCount == 1)
        #expect(normalized.steps[1] == Self.step30)
        #expect(normalized.steps[2] == Self.rest30)
        #expect(normalized.steps[120] == Self.rest30)
        // 3600 s + 2000 m at the RUN default of 5:00/km.
        #expect(normalized.estimatedSeconds == 4200)
        #expect(WorkoutValidator.validate(workout, athlete: nil, for: .garmin) == [])
    }

    @Test func repeatOfOneUnwrapsRecursively() {
        let inner = RepeatBlock(count: 3, items: [.step(Self.step30)])
        let workout = Workout(
            sport: .bike,
            items: [
                .repeatBlock(
                    RepeatBlock(
                        count: 1,
                        items: [
                            .repeatBlock(RepeatBlock(count: 1, items: [.step(Self.rest30), .repeatBlock(inner)]))
                        ]))
            ])
        let normalized = WorkoutNormalizer.normalize(workout)
        #expect(normalized.tree == [.step(Self.rest30), .repeatBlock(inner)])
        #expect(normalized.treeStepCount == 3)
        #expect(normalized.steps == [Self.rest30, Self.step30, Self.step30, Self.step30])
        #expect(normalized.totalSeconds == 120)
    }

    @Test func nestedExpansionOrder() {
        let a = WorkoutStep(kind: .interval, name: "a", duration: .time(seconds: 10))
        let b = WorkoutStep(kind: .rest, name: "b", duration: .time(seconds: 20))
        let c = WorkoutStep(kind: .recovery, name: "c", duration: .distance(meters: 100))
        let workout = Workout(
            sport: .run,
            items: [
                .repeatBlock(
                    RepeatBlock(
                        count: 2,
                        items: [.repeatBlock(RepeatBlock(count: 2, items: [.step(a), .step(b)])), .step(c)]))
            ])
        let normalized = WorkoutNormalizer.normalize(workout)
        #expect(
            normalized.steps.compactMap(\.name) == ["a", "b", "a", "b", "c", "a", "b", "a", "b", "c"])
        #expect(normalized.totalSeconds == 120)
        #expect(normalized.totalMeters == 200)
        #expect(WorkoutNormalizer.expandedCount(workout.items) == 10)
    }

    @Test func expandedCountSaturates() {
        let huge = RepeatBlock(count: Int.max, items: [.step(Self.step30), .step(Self.rest30)])
        #expect(WorkoutNormalizer.expandedCount([.repeatBlock(huge)]) == Int.max)
    }
}

struct WorkoutConversionTests {
    @Test func paceToSpeed() {
        #expect(WorkoutConversions.metersPerSecond(secondsPerKm: 250) == 4)
        #expect(WorkoutConversions.metersPerSecond(secondsPer100m: 100) == 1)
        let run = WorkoutConversions.speedRange(.pacePerKm(minSeconds: 240, maxSeconds: 250))
        #expect(run?.low == 4.0)
        #expect(run?.high == 4.1667)
        let swim = WorkoutConversions.speedRange(.pacePer100m(minSeconds: 80, maxSeconds: 120))
        #expect(swim?.low == 0.8333)
        #expect(swim?.high == 1.25)
        #expect(WorkoutConversions.speedRange(.open) == nil)
    }

    @Test func ftpFractions() {
        #expect(WorkoutConversions.ftpFraction(percent: 95) == 0.95)
        #expect(WorkoutConversions.ftpFraction(percent: 105) == 1.05)
        #expect(WorkoutConversions.ftpFraction(percent: 33.33333) == 0.3333)
    }

    @Test func cogganZonesInWatts() {
        let zones = (1...7).compactMap { WorkoutConversions.powerZoneWatts(zone: $0, ftpWatts: 260) }
        #expect(zones.map(\.low) == [0, 146, 198, 237, 276, 315, 393])
        #expect(zones.map(\.high) == [143, 195, 234, 273, 312, 390, 520])
        #expect(WorkoutConversions.powerZoneWatts(zone: 8, ftpWatts: 260) == nil)
        #expect(WorkoutConversions.powerZoneWatts(zone: 0, ftpWatts: 260) == nil)
    }

    @Test func heartRateZonesInBpm() {
        let zones = (1...5).compactMap { WorkoutConversions.heartRateZoneBpm(zone: $0, maxHr: 188) }
        #expect(zones.map(\.low) == [94, 113, 132, 150, 169])
        #expect(zones.map(\.high) == [113, 132, 150, 169, 188])
        #expect(WorkoutConversions.heartRateZoneBpm(zone: 6, maxHr: 188) == nil)
    }
}

struct SessionTimeTests {
    @Test func datesAndTimes() {
        #expect(SessionTime.unixSeconds(date: "1970-01-01") == 0)
        #expect(SessionTime.unixSeconds(date: "2026-12-01") == 1_796_083_200)
        #expect(SessionTime.unixSeconds(date: "2024-02-29") == 1_709_164_800)
        #expect(SessionTime.unixSeconds(date: "2026-02-29") == nil)
        #expect(SessionTime.unixSeconds(date: "2026-13-01") == nil)
        #expect(SessionTime.unixSeconds(date: "2026-1-01") == nil)
        #expect(SessionTime.unixSeconds(dateTime: "2026-12-01T06:30:00+01:00") == 1_796_103_000)
        #expect(SessionTime.unixSeconds(dateTime: "2026-12-01T05:30:00Z") == 1_796_103_000)
        #expect(SessionTime.unixSeconds(dateTime: "2026-12-01T05:30:00.250Z") == 1_796_103_000)
        #expect(SessionTime.unixSeconds(dateTime: "2026-12-01T00:30:00-05:00") == 1_796_103_000)
        #expect(SessionTime.unixSeconds(dateTime: "2026-12-01T05:30:00") == nil)
        #expect(SessionTime.unixSeconds(dateTime: "2026-12-01 05:30:00Z") == nil)
        #expect(SessionTime.formatUTC(unixSeconds: 1_796_103_000) == "2026-12-01T05:30:00Z")
        #expect(SessionTime.formatUTC(unixSeconds: -1) == "1969-12-31T23:59:59Z")
        #expect(SessionTime.formatUTC(unixSeconds: 0) == "1970-01-01T00:00:00Z")
        #expect(SessionTime.formatUTC(unixSeconds: 253_402_300_799) == "9999-12-31T23:59:59Z")
        #expect(SessionTime.formatUTC(unixSeconds: -62_135_596_801) == "0000-12-31T23:59:59Z")
        // Past four-digit years: as many digits as needed.
        #expect(SessionTime.formatUTC(unixSeconds: 253_402_300_800) == "10000-01-01T00:00:00Z")
    }

    @Test func formatParsesBack() {
        for seconds: Int64 in stride(from: -86_400 * 800, to: 86_400 * 800 * 40, by: 86_399 * 37 + 4_321) {
            #expect(SessionTime.unixSeconds(dateTime: SessionTime.formatUTC(unixSeconds: seconds)) == seconds)
        }
    }
}

struct ValidationFormatTests {
    @Test func formatterJoinsWithSemicolons() {
        let failure = ValidationFailure(problems: [
            ValidationProblem(
                path: "workout.steps[2].steps[0].target.maxBpm", message: "must be >= minBpm"),
            ValidationProblem(path: "workout.steps", message: "must contain at least one step"),
        ])
        #expect(
            failure.message
                == "Validation failed: workout.steps[2].steps[0].target.maxBpm: must be >= minBpm; workout.steps: must contain at least one step"
        )
    }

    @Test func sessionDecodeAndPrepare() throws {
        let json = try JSONParser.parse(
            """
            {"id":"ses_1","athleteId":"ath_1","revision":3,"sessionType":"ENDURANCE",
             "date":"2026-12-01","startTime":"2026-12-01T06:30:00+01:00",
             "title":"Threshold 5x5","description":"optional text",
             "athlete":{"ftpWatts":260,"maxHr":188,"thresholdHr":170},
             "workout":{"sport":"BIKE","steps":[{"kind":"ACTIVE","duration":{"type":"TIME","seconds":60},
               "target":{"type":"POWER_ZONE","zone":3}}]}}
            """)
        let session = try ExportSession.decode(from: json)
        #expect(session.id == "ses_1")
        #expect(session.title == "Threshold 5x5")
        #expect(session.athlete == AthleteThresholds(ftpWatts: 260, maxHr: 188, thresholdHr: 170))
        #expect(session.startUnixSeconds == 1_796_103_000)
        #expect(try session.prepare(for: .wahoo).totalSeconds == 60)
        #expect(ExportSession.validationError(session: json, for: .garmin) == nil)
        var noAthlete = session
        noAthlete.athlete = nil
        #expect(
            throws: ValidationFailure(problems: [
                ValidationProblem(
                    path: "workout.steps[0].target",
                    message: "POWER_ZONE needs the athlete's FTP (athlete.ftpWatts)")
            ])
        ) {
            try noAthlete.prepare(for: .wahoo)
        }
        #expect(
            ExportSession.validationError(session: "x", for: .generic)
                == "Validation failed: session: must be an object, got string")
    }
}

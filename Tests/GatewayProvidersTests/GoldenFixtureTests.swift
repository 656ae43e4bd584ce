import Foundation
import GatewayCore
import GatewayProviders
import Testing

/// Golden fixtures: each `Fixtures/valid/*.json` holds a session and the Garmin body and
/// Wahoo plan.json expected from it (or `{"error": ...}`); each `Fixtures/invalid/*.json`
/// holds a session, an export target and the exact validation message.
/// `UPDATE_GOLDENS=1 swift test ...` rewrites the expectations (review the diff!).
struct GoldenFixtureTests {
    static let validNames = Fixtures.names("valid")
    static let invalidNames = Fixtures.names("invalid")

    @Test func enoughFixtures() {
        #expect(Self.validNames.count >= 15)
        #expect(Self.invalidNames.count >= 15)
    }

    static func outcome(_ body: () throws(ValidationFailure) -> JSONValue) -> JSONValue {
        do {
            return try body()
        } catch {
            return ["error": .string(error.message)]
        }
    }

    @Test(arguments: validNames)
    func garminGolden(name: String) throws {
        let fixture = try Fixtures.load("valid", name)
        let session = try ExportSession.decode(from: fixture["session"]!)
        let actual = Self.outcome { () throws(ValidationFailure) in
            try GarminWorkoutEncoder.encode(session)
        }
        if Fixtures.updating {
            try Fixtures.update("valid", name, key: "garmin", value: actual)
            return
        }
        let expected = try #require(fixture["garmin"])
        #expect(
            jsonDifference(actual, expected) == nil, "\(name): \(jsonDifference(actual, expected) ?? "")")
    }

    @Test(arguments: validNames)
    func wahooGolden(name: String) throws {
        let fixture = try Fixtures.load("valid", name)
        let session = try ExportSession.decode(from: fixture["session"]!)
        let actual = Self.outcome { () throws(ValidationFailure) in try WahooPlanEncoder.plan(session) }
        if Fixtures.updating {
            try Fixtures.update("valid", name, key: "wahoo", value: actual)
            return
        }
        let expected = try #require(fixture["wahoo"])
        #expect(
            jsonDifference(actual, expected) == nil, "\(name): \(jsonDifference(actual, expected) ?? "")")
    }

    /// The bodies are written straight into bytes: they must be the goldens' compact form
    /// byte for byte, member order included (the structural comparison above ignores it).
    @Test(arguments: validNames)
    func bodiesAreTheGoldensByteForByte(name: String) throws {
        let fixture = try Fixtures.load("valid", name)
        let session = try ExportSession.decode(from: fixture["session"]!)
        let garmin = try #require(fixture["garmin"])
        if garmin["error"] == nil {
            let body = GarminWorkoutEncoder.body(try session.prepare(for: .garmin), session: session)
            #expect(body == garmin.serializedBytes, "\(name): \(String(decoding: body, as: UTF8.self))")
        }
        let wahoo = try #require(fixture["wahoo"])
        if wahoo["error"] == nil {
            let workout = try session.prepare(for: .wahoo)
            let plan = WahooPlanEncoder.planJSON(workout, session: session)
            #expect(plan == wahoo.serializedBytes, "\(name): \(String(decoding: plan, as: UTF8.self))")
            // The form's data URL carries the same bytes.
            let form = WahooPlanEncoder.planFormFields(workout, session: session, providerUpdatedAt: "x")
            let prefix = "data:application/json;base64,"
            #expect(Base64.decode(form[0].1.dropFirst(prefix.count)) == plan)
        }
    }

    @Test(arguments: invalidNames)
    func invalidFixture(name: String) throws {
        let fixture = try Fixtures.load("invalid", name)
        let target = try #require(ExportTarget(rawValue: fixture["target"]?.stringValue ?? ""))
        let message = ExportSession.validationError(session: fixture["session"]!, for: target)
        if Fixtures.updating {
            try Fixtures.update(
                "invalid", name, key: "error", value: message.map { .string($0) } ?? .null)
            return
        }
        let expected = try #require(fixture["error"]?.stringValue)
        #expect(message == expected)
        // Every invalid fixture also fails through the exporter entry points of its target.
        if let session = try? ExportSession.decode(from: fixture["session"]!) {
            switch target {
            case .garmin:
                #expect(throws: ValidationFailure.self) { try GarminWorkoutEncoder.encode(session) }
            case .wahoo: #expect(throws: ValidationFailure.self) { try WahooPlanEncoder.plan(session) }
            case .fit, .generic:
                #expect(throws: ValidationFailure.self) { try FITWorkoutEncoder.encode(session) }
            }
        }
    }
}

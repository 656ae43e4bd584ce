import GatewayCore

/// Builds a FIT workout file (file_id type 5 "workout", one workout message, one
/// workout_step per step and per repeat block) that Garmin's FIT SDK decodes.
public enum FITWorkoutEncoder {
    /// Seconds between the Unix epoch and the FIT epoch (1989-12-31T00:00:00Z).
    public static let fitEpochOffset: Int64 = 631_065_600
    /// `manufacturer` = development.
    public static let manufacturerDevelopment: UInt16 = 255
    /// String field sizes in bytes, terminating NUL included.
    public static let workoutNameSize = 64
    public static let descriptionSize = 255
    public static let stepNameSize = 64
    public static let notesSize = 128

    /// Offsets of the FIT `workout_hr` and `workout_power` types: values above them are
    /// absolute (bpm + 100, W + 1000); values below are percentages.
    public static let heartRateOffset: UInt32 = 100
    public static let powerOffset: UInt32 = 1000

    // Global message numbers and enum values of the FIT profile.
    static let fileIDMessage: UInt16 = 0
    static let workoutMessage: UInt16 = 26
    static let workoutStepMessage: UInt16 = 27
    static let fileTypeWorkout: UInt32 = 5
    static let durationTime: UInt32 = 0
    static let durationDistance: UInt32 = 1
    static let durationOpen: UInt32 = 5
    static let durationRepeatUntilStepsComplete: UInt32 = 6
    static let targetSpeed: UInt32 = 0
    static let targetHeartRate: UInt32 = 1
    static let targetOpen: UInt32 = 2
    static let targetCadence: UInt32 = 3
    static let targetPower: UInt32 = 4

    /// Validates the session for FIT and returns the file's bytes.
    public static func encode(_ session: ExportSession) throws(ValidationFailure) -> [UInt8] {
        let workout = try session.prepare(for: .fit)
        return encode(workout, session: session)
    }

    /// The file of an already validated and normalized workout.
    public static func encode(_ workout: NormalizedWorkout, session: ExportSession) -> [UInt8] {
        let texts = stepTexts(workout.tree)
        let layout = Layout(
            swim: workout.sport == .swim, description: session.description != nil,
            stepNames: texts.names, stepNotes: texts.notes)
        let size = FITWriter.fileSize(recordBytes: layout.recordBytes(steps: workout.treeStepCount))
        return [UInt8](unsafeUninitializedCapacity: size) { buffer, initialized in
            var writer = FITWriter(buffer)
            write(workout, session: session, layout: layout, into: &writer)
            initialized = writer.finish()
        }
    }

    /// The fields of the three definition messages: which optional ones are present.
    struct Layout {
        var swim: Bool
        var description: Bool
        var stepNames: Bool
        var stepNotes: Bool

        static let fileIDFields = [
            FITFieldDefinition(number: 0, size: 1, baseType: .enumeration),  // type
            FITFieldDefinition(number: 1, size: 2, baseType: .uint16),  // manufacturer
            FITFieldDefinition(number: 2, size: 2, baseType: .uint16),  // product
            FITFieldDefinition(number: 3, size: 4, baseType: .uint32z),  // serial_number
            FITFieldDefinition(number: 4, size: 4, baseType: .uint32),  // time_created
        ]
        static let workoutFields = [
            FITFieldDefinition(number: 4, size: 1, baseType: .enumeration),  // sport
            FITFieldDefinition(number: 11, size: 1, baseType: .enumeration),  // sub_sport
            FITFieldDefinition(number: 6, size: 2, baseType: .uint16),  // num_valid_steps
            FITFieldDefinition(number: 8, size: UInt8(workoutNameSize), baseType: .string),  // wkt_name
        ]
        static let poolFields = [
            FITFieldDefinition(number: 14, size: 2, baseType: .uint16),  // pool_length
            FITFieldDefinition(number: 15, size: 1, baseType: .enumeration),  // pool_length_unit
        ]
        static let descriptionField = FITFieldDefinition(
            number: 17, size: UInt8(descriptionSize), baseType: .string)  // wkt_description
        static let messageIndexField = FITFieldDefinition(number: 254, size: 2, baseType: .uint16)
        static let stepNameField = FITFieldDefinition(number: 0, size: UInt8(stepNameSize), baseType: .string)
        static let stepFields = [
            FITFieldDefinition(number: 1, size: 1, baseType: .enumeration),  // duration_type
            FITFieldDefinition(number: 2, size: 4, baseType: .uint32),  // duration_value
            FITFieldDefinition(number: 3, size: 1, baseType: .enumeration),  // target_type
            FITFieldDefinition(number: 4, size: 4, baseType: .uint32),  // target_value
            FITFieldDefinition(number: 5, size: 4, baseType: .uint32),  // custom_target_value_low
            FITFieldDefinition(number: 6, size: 4, baseType: .uint32),  // custom_target_value_high
            FITFieldDefinition(number: 7, size: 1, baseType: .enumeration),  // intensity
        ]
        static let notesField = FITFieldDefinition(number: 8, size: UInt8(notesSize), baseType: .string)
        static let secondaryFields = [
            FITFieldDefinition(number: 19, size: 1, baseType: .enumeration),  // secondary_target_type
            FITFieldDefinition(number: 20, size: 4, baseType: .uint32),  // secondary_target_value
            FITFieldDefinition(number: 21, size: 4, baseType: .uint32),  // secondary_custom_..._low
            FITFieldDefinition(number: 22, size: 4, baseType: .uint32),  // secondary_custom_..._high
        ]

        /// Bytes of a workout_step data message, its header included.
        var stepRecordSize: Int {
            1 + Int(Self.messageIndexField.size) + (stepNames ? stepNameSize : 0) + Self.stepFieldBytes
                + (stepNotes ? notesSize : 0) + Self.secondaryFieldBytes
        }

        static let stepFieldBytes = stepFields.reduce(0) { $0 + Int($1.size) }
        static let secondaryFieldBytes = secondaryFields.reduce(0) { $0 + Int($1.size) }

        /// Bytes of the definition messages plus the data messages for `steps` workout steps.
        func recordBytes(steps: Int) -> Int {
            func sum(_ fields: [FITFieldDefinition]) -> Int { fields.reduce(0) { $0 + Int($1.size) } }
            var workout = sum(Self.workoutFields)
            var workoutCount = Self.workoutFields.count
            if swim {
                workout += sum(Self.poolFields)
                workoutCount += Self.poolFields.count
            }
            if description {
                workout += descriptionSize
                workoutCount += 1
            }
            let stepCount =
                1 + Self.stepFields.count + Self.secondaryFields.count + (stepNames ? 1 : 0) + (stepNotes ? 1 : 0)
            let definitions = 3 * 6 + 3 * (Self.fileIDFields.count + workoutCount + stepCount)
            return definitions + (1 + sum(Self.fileIDFields)) + (1 + workout) + steps * stepRecordSize
        }
    }

    static func write(
        _ workout: NormalizedWorkout, session: ExportSession, layout: Layout, into writer: inout FITWriter
    ) {
        // file_id
        writer.definition(local: 0, global: fileIDMessage, fieldCount: Layout.fileIDFields.count)
        for field in Layout.fileIDFields { writer.field(field) }
        writer.dataHeader(local: 0)
        writer.u8(UInt8(fileTypeWorkout))
        writer.u16(manufacturerDevelopment)
        writer.u16(0)
        writer.u32(serialNumber(session.id))
        writer.u32(UInt32(clamping: max(0, session.startUnixSeconds - fitEpochOffset)))

        // workout
        let workoutFieldCount =
            Layout.workoutFields.count + (layout.swim ? Layout.poolFields.count : 0) + (layout.description ? 1 : 0)
        writer.definition(local: 1, global: workoutMessage, fieldCount: workoutFieldCount)
        for field in Layout.workoutFields { writer.field(field) }
        if layout.swim {
            for field in Layout.poolFields { writer.field(field) }
        }
        if layout.description { writer.field(Layout.descriptionField) }
        writer.dataHeader(local: 1)
        let (sport, subSport) = sportValues(workout.sport)
        writer.u8(sport)
        writer.u8(subSport)
        writer.u16(UInt16(clamping: workout.treeStepCount))
        writer.string(session.title, size: workoutNameSize)
        if layout.swim {
            writer.u16(2500)  // pool_length 25 m, scale 100
            writer.u8(0)  // pool_length_unit metric
        }
        if let description = session.description {
            writer.string(description, size: descriptionSize)
        }

        // workout_step
        let stepFieldCount =
            1 + Layout.stepFields.count + Layout.secondaryFields.count + (layout.stepNames ? 1 : 0)
            + (layout.stepNotes ? 1 : 0)
        writer.definition(local: 2, global: workoutStepMessage, fieldCount: stepFieldCount)
        writer.field(Layout.messageIndexField)
        if layout.stepNames { writer.field(Layout.stepNameField) }
        for field in Layout.stepFields { writer.field(field) }
        if layout.stepNotes { writer.field(Layout.notesField) }
        for field in Layout.secondaryFields { writer.field(field) }
        var index: UInt32 = 0
        writeItems(workout.tree, writer: &writer, index: &index, layout: layout)
    }

    /// FIT `sport` and `sub_sport` of a sport.
    static func sportValues(_ sport: Sport) -> (UInt8, UInt8) {
        switch sport {
        case .run: return (1, 0)  // running, generic
        case .bike: return (2, 0)  // cycling, generic
        case .swim: return (5, 17)  // swimming, lap_swimming
        }
    }

    /// A stable non-zero serial number derived from the session id (FNV-1a).
    static func serialNumber(_ id: String) -> UInt32 {
        var hash: UInt32 = 0x811C_9DC5
        for byte in id.utf8 {
            hash = (hash ^ UInt32(byte)) &* 0x0100_0193
        }
        return hash == 0 ? 1 : hash
    }

    /// Whether any step of the tree has a non-empty name, and a non-empty note.
    static func stepTexts(_ items: [WorkoutItem]) -> (names: Bool, notes: Bool) {
        var names = false
        var notes = false
        func visit(_ items: [WorkoutItem]) {
            for index in items.indices {
                switch items[index] {
                case .step(let step):
                    if let name = step.name, !name.isEmpty { names = true }
                    if let text = step.notes, !text.isEmpty { notes = true }
                case .repeatBlock(let block):
                    visit(block.items)
                }
                if names && notes { return }
            }
        }
        visit(items)
        return (names, notes)
    }

    /// `target_type`, `target_value`, `custom_target_value_low/high` of one target.
    public struct EncodedTarget: Sendable, Equatable {
        public var type: UInt32
        public var value: UInt32
        public var low: UInt32
        public var high: UInt32

        static let none = EncodedTarget(
            type: FITBaseType.enumeration.invalid, value: FITBaseType.uint32.invalid,
            low: FITBaseType.uint32.invalid, high: FITBaseType.uint32.invalid)
    }

    static func writeItems(
        _ items: [WorkoutItem], writer: inout FITWriter, index: inout UInt32, layout: Layout
    ) {
        for position in items.indices {
            switch items[position] {
            case .step(let step):
                var durationType = durationOpen
                var durationValue = FITBaseType.uint32.invalid
                switch step.duration {
                case .time(let seconds):
                    durationType = durationTime
                    durationValue = UInt32(clamping: Int64((seconds * 1000).rounded()))
                case .distance(let meters):
                    durationType = durationDistance
                    durationValue = UInt32(clamping: Int64((meters * 100).rounded()))
                case .open:
                    break
                }
                var secondary = EncodedTarget.none
                if let target = step.secondaryTarget, target != .open {
                    secondary = encodeTarget(target)
                }
                writeStep(
                    writer: &writer, index: index, layout: layout, name: step.name, durationType: durationType,
                    durationValue: durationValue, target: encodeTarget(step.target ?? .open),
                    intensity: intensity(step.kind), notes: step.notes, secondary: secondary)
            case .repeatBlock(let block):
                let first = index
                writeItems(block.items, writer: &writer, index: &index, layout: layout)
                var target = EncodedTarget.none
                target.value = UInt32(clamping: block.count)
                writeStep(
                    writer: &writer, index: index, layout: layout, name: nil,
                    durationType: durationRepeatUntilStepsComplete, durationValue: first, target: target,
                    intensity: FITBaseType.enumeration.invalid, notes: nil, secondary: .none)
            }
            index += 1
        }
    }

    /// One workout_step data message, its fields in the order of the step definition.
    static func writeStep(
        writer: inout FITWriter, index: UInt32, layout: Layout, name: String?, durationType: UInt32,
        durationValue: UInt32, target: EncodedTarget, intensity: UInt32, notes: String?,
        secondary: EncodedTarget
    ) {
        var record = writer.record(size: layout.stepRecordSize)
        record.u8(2)  // data message header, local message 2
        record.u16(UInt16(truncatingIfNeeded: index))
        if layout.stepNames { record.string(name ?? "", size: stepNameSize) }
        record.u8(UInt8(truncatingIfNeeded: durationType))
        record.u32(durationValue)
        record.u8(UInt8(truncatingIfNeeded: target.type))
        record.u32(target.value)
        record.u32(target.low)
        record.u32(target.high)
        record.u8(UInt8(truncatingIfNeeded: intensity))
        if layout.stepNotes { record.string(notes ?? "", size: notesSize) }
        record.u8(UInt8(truncatingIfNeeded: secondary.type))
        record.u32(secondary.value)
        record.u32(secondary.low)
        record.u32(secondary.high)
        record.finish()
    }

    /// FIT `intensity` of a step kind.
    static func intensity(_ kind: StepKind) -> UInt32 {
        switch kind {
        case .active: return 0
        case .rest: return 1
        case .warmup: return 2
        case .cooldown: return 3
        case .recovery: return 4
        case .interval: return 5
        }
    }

    /// How a target is written: zones in `target_value`; ranges as custom values with
    /// `target_value` 0 — heart rate as bpm + 100, power as W + 1000, %FTP as the percent,
    /// speed in mm/s (m/s, scale 1000), cadence in rpm.
    public static func encodeTarget(_ target: WorkoutTarget) -> EncodedTarget {
        let invalid = FITBaseType.uint32.invalid
        func whole(_ value: Double) -> UInt32 { UInt32(clamping: Int64(value.rounded())) }
        switch target {
        case .heartRate(let low, let high):
            return EncodedTarget(
                type: targetHeartRate, value: 0, low: whole(low) + heartRateOffset,
                high: whole(high) + heartRateOffset)
        case .heartRateZone(let zone):
            return EncodedTarget(
                type: targetHeartRate, value: UInt32(clamping: zone), low: invalid, high: invalid)
        case .power(let low, let high):
            return EncodedTarget(
                type: targetPower, value: 0, low: whole(low) + powerOffset, high: whole(high) + powerOffset)
        case .powerZone(let zone):
            return EncodedTarget(
                type: targetPower, value: UInt32(clamping: zone), low: invalid, high: invalid)
        case .powerPercentFTP(let low, let high):
            return EncodedTarget(type: targetPower, value: 0, low: whole(low), high: whole(high))
        case .pacePerKm(let fast, let slow):
            return EncodedTarget(
                type: targetSpeed, value: 0,
                low: whole(WorkoutConversions.metersPerSecond(secondsPerKm: slow) * 1000),
                high: whole(WorkoutConversions.metersPerSecond(secondsPerKm: fast) * 1000))
        case .pacePer100m(let fast, let slow):
            return EncodedTarget(
                type: targetSpeed, value: 0,
                low: whole(WorkoutConversions.metersPerSecond(secondsPer100m: slow) * 1000),
                high: whole(WorkoutConversions.metersPerSecond(secondsPer100m: fast) * 1000))
        case .cadence(let low, let high):
            return EncodedTarget(type: targetCadence, value: 0, low: whole(low), high: whole(high))
        case .open:
            return EncodedTarget(type: targetOpen, value: invalid, low: invalid, high: invalid)
        }
    }
}

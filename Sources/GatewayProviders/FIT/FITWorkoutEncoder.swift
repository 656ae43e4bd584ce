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
        let stepNameSize = hasNonEmpty(workout.tree, \.name) ? self.stepNameSize : 0
        let notesSize = hasNonEmpty(workout.tree, \.notes) ? self.notesSize : 0
        let stepFields = stepDefinition(nameSize: stepNameSize, notesSize: notesSize)
        let stepRecordSize = 1 + stepFields.reduce(0) { $0 + Int($1.size) }
        var writer = FITWriter(capacity: 200 + workout.treeStepCount * stepRecordSize)

        // file_id
        let fileFields = [
            FITFieldDefinition(number: 0, size: 1, baseType: .enumeration),  // type
            FITFieldDefinition(number: 1, size: 2, baseType: .uint16),  // manufacturer
            FITFieldDefinition(number: 2, size: 2, baseType: .uint16),  // product
            FITFieldDefinition(number: 3, size: 4, baseType: .uint32z),  // serial_number
            FITFieldDefinition(number: 4, size: 4, baseType: .uint32),  // time_created
        ]
        writer.definition(local: 0, global: fileIDMessage, fields: fileFields)
        writer.dataHeader(local: 0)
        writer.u8(UInt8(fileTypeWorkout))
        writer.u16(manufacturerDevelopment)
        writer.u16(0)
        writer.u32(serialNumber(session.id))
        writer.u32(UInt32(clamping: max(0, session.startUnixSeconds - fitEpochOffset)))

        // workout
        var workoutFields = [
            FITFieldDefinition(number: 4, size: 1, baseType: .enumeration),  // sport
            FITFieldDefinition(number: 11, size: 1, baseType: .enumeration),  // sub_sport
            FITFieldDefinition(number: 6, size: 2, baseType: .uint16),  // num_valid_steps
            FITFieldDefinition(number: 8, size: UInt8(workoutNameSize), baseType: .string),  // wkt_name
        ]
        if workout.sport == .swim {
            workoutFields.append(FITFieldDefinition(number: 14, size: 2, baseType: .uint16))
            workoutFields.append(FITFieldDefinition(number: 15, size: 1, baseType: .enumeration))
        }
        if session.description != nil {
            workoutFields.append(
                FITFieldDefinition(number: 17, size: UInt8(descriptionSize), baseType: .string))
        }
        writer.definition(local: 1, global: workoutMessage, fields: workoutFields)
        writer.dataHeader(local: 1)
        let (sport, subSport) = sportValues(workout.sport)
        writer.u8(sport)
        writer.u8(subSport)
        writer.u16(UInt16(clamping: workout.treeStepCount))
        writer.string(session.title, size: workoutNameSize)
        if workout.sport == .swim {
            writer.u16(2500)  // pool_length 25 m, scale 100
            writer.u8(0)  // pool_length_unit metric
        }
        if let description = session.description {
            writer.string(description, size: descriptionSize)
        }

        // workout_step
        writer.definition(local: 2, global: workoutStepMessage, fields: stepFields)
        var index: UInt32 = 0
        writeItems(
            workout.tree, writer: &writer, index: &index, nameSize: stepNameSize, notesSize: notesSize)
        return writer.finish()
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

    static func hasNonEmpty(_ items: [WorkoutItem], _ field: KeyPath<WorkoutStep, String?>) -> Bool {
        for item in items {
            switch item {
            case .step(let step):
                if let text = step[keyPath: field], !text.isEmpty { return true }
            case .repeatBlock(let block):
                if hasNonEmpty(block.items, field) { return true }
            }
        }
        return false
    }

    static func stepDefinition(nameSize: Int, notesSize: Int) -> [FITFieldDefinition] {
        var fields = [FITFieldDefinition(number: 254, size: 2, baseType: .uint16)]  // message_index
        if nameSize > 0 {
            fields.append(FITFieldDefinition(number: 0, size: UInt8(nameSize), baseType: .string))
        }
        fields += [
            FITFieldDefinition(number: 1, size: 1, baseType: .enumeration),  // duration_type
            FITFieldDefinition(number: 2, size: 4, baseType: .uint32),  // duration_value
            FITFieldDefinition(number: 3, size: 1, baseType: .enumeration),  // target_type
            FITFieldDefinition(number: 4, size: 4, baseType: .uint32),  // target_value
            FITFieldDefinition(number: 5, size: 4, baseType: .uint32),  // custom_target_value_low
            FITFieldDefinition(number: 6, size: 4, baseType: .uint32),  // custom_target_value_high
            FITFieldDefinition(number: 7, size: 1, baseType: .enumeration),  // intensity
        ]
        if notesSize > 0 {
            fields.append(FITFieldDefinition(number: 8, size: UInt8(notesSize), baseType: .string))
        }
        fields += [
            FITFieldDefinition(number: 19, size: 1, baseType: .enumeration),  // secondary_target_type
            FITFieldDefinition(number: 20, size: 4, baseType: .uint32),  // secondary_target_value
            FITFieldDefinition(number: 21, size: 4, baseType: .uint32),  // secondary_custom_..._low
            FITFieldDefinition(number: 22, size: 4, baseType: .uint32),  // secondary_custom_..._high
        ]
        return fields
    }

    /// The values of a step message, in the order of ``stepDefinition(nameSize:notesSize:)``.
    struct StepRecord {
        var name = ""
        var durationType: UInt32 = FITBaseType.enumeration.invalid
        var durationValue: UInt32 = FITBaseType.uint32.invalid
        var target = EncodedTarget.none
        var intensity: UInt32 = FITBaseType.enumeration.invalid
        var notes = ""
        var secondary = EncodedTarget.none
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
        _ items: [WorkoutItem], writer: inout FITWriter, index: inout UInt32, nameSize: Int,
        notesSize: Int
    ) {
        for item in items {
            var record = StepRecord()
            switch item {
            case .step(let step):
                record.name = step.name ?? ""
                record.notes = step.notes ?? ""
                switch step.duration {
                case .time(let seconds):
                    record.durationType = durationTime
                    record.durationValue = UInt32(clamping: Int64((seconds * 1000).rounded()))
                case .distance(let meters):
                    record.durationType = durationDistance
                    record.durationValue = UInt32(clamping: Int64((meters * 100).rounded()))
                case .open:
                    record.durationType = durationOpen
                }
                record.target = encodeTarget(step.target ?? .open)
                if let secondary = step.secondaryTarget, secondary != .open {
                    record.secondary = encodeTarget(secondary)
                }
                record.intensity = intensity(step.kind)
            case .repeatBlock(let block):
                let first = index
                writeItems(
                    block.items, writer: &writer, index: &index, nameSize: nameSize, notesSize: notesSize)
                record.durationType = durationRepeatUntilStepsComplete
                record.durationValue = first
                record.target.value = UInt32(clamping: block.count)
            }
            writer.dataHeader(local: 2)
            writer.u16(UInt16(truncatingIfNeeded: index))
            if nameSize > 0 { writer.string(record.name, size: nameSize) }
            writer.u8(UInt8(truncatingIfNeeded: record.durationType))
            writer.u32(record.durationValue)
            writer.u8(UInt8(truncatingIfNeeded: record.target.type))
            writer.u32(record.target.value)
            writer.u32(record.target.low)
            writer.u32(record.target.high)
            writer.u8(UInt8(truncatingIfNeeded: record.intensity))
            if notesSize > 0 { writer.string(record.notes, size: notesSize) }
            writer.u8(UInt8(truncatingIfNeeded: record.secondary.type))
            writer.u32(record.secondary.value)
            writer.u32(record.secondary.low)
            writer.u32(record.secondary.high)
            index += 1
        }
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

/// Unit conversions shared by the exporters. Each one is tested on its numbers.
public enum WorkoutConversions {
    /// Coggan power zones 1–7 as percent of FTP. Zone 7 is open-ended in Coggan's table;
    /// 200 % is the ceiling used when a provider needs a range.
    public static let cogganPowerZones: [(low: Double, high: Double)] = [
        (0, 55), (56, 75), (76, 90), (91, 105), (106, 120), (121, 150), (151, 200),
    ]

    /// Heart-rate zones 1–5 as percent of max HR (the usual five-zone model).
    public static let heartRateZones: [(low: Double, high: Double)] = [
        (50, 60), (60, 70), (70, 80), (80, 90), (90, 100),
    ]

    /// Rounds to 4 decimals, the precision used for speeds and fractions in provider JSON.
    public static func round4(_ value: Double) -> Double {
        (value * 10_000).rounded() / 10_000
    }

    /// Run pace (s/km) to speed (m/s), unrounded.
    public static func metersPerSecond(secondsPerKm: Double) -> Double {
        1000 / secondsPerKm
    }

    /// Swim pace (s/100 m) to speed (m/s), unrounded.
    public static func metersPerSecond(secondsPer100m: Double) -> Double {
        100 / secondsPer100m
    }

    /// A pace target as a speed range in m/s, `low` the slower speed (from the max pace),
    /// rounded to 4 decimals: 240–250 s/km gives 4.0–4.1667.
    public static func speedRange(_ target: WorkoutTarget) -> (low: Double, high: Double)? {
        switch target {
        case .pacePerKm(let fast, let slow):
            return (
                round4(metersPerSecond(secondsPerKm: slow)), round4(metersPerSecond(secondsPerKm: fast))
            )
        case .pacePer100m(let fast, let slow):
            return (
                round4(metersPerSecond(secondsPer100m: slow)),
                round4(metersPerSecond(secondsPer100m: fast))
            )
        default:
            return nil
        }
    }

    /// Percent of FTP to a fraction (Wahoo `ftp` targets): 95 gives 0.95.
    public static func ftpFraction(percent: Double) -> Double {
        round4(percent / 100)
    }

    /// A Coggan power zone (1–7) as watts, rounded to whole watts; nil for a zone out of range.
    public static func powerZoneWatts(zone: Int, ftpWatts: Double) -> (low: Double, high: Double)? {
        guard (1...cogganPowerZones.count).contains(zone) else { return nil }
        let percents = cogganPowerZones[zone - 1]
        return ((ftpWatts * percents.low / 100).rounded(), (ftpWatts * percents.high / 100).rounded())
    }

    /// A heart-rate zone (1–5) as bpm of max HR, rounded; nil for a zone out of range.
    public static func heartRateZoneBpm(zone: Int, maxHr: Double) -> (low: Double, high: Double)? {
        guard (1...heartRateZones.count).contains(zone) else { return nil }
        let percents = heartRateZones[zone - 1]
        return ((maxHr * percents.low / 100).rounded(), (maxHr * percents.high / 100).rounded())
    }

    /// Default speeds (m/s) used to estimate how long a DISTANCE step lasts.
    public static func defaultSpeed(for sport: Sport) -> Double {
        switch sport {
        case .run: return 1000.0 / 300  // 5:00/km
        case .bike: return 30_000.0 / 3600  // 30 km/h
        case .swim: return 100.0 / 120  // 2:00/100 m
        }
    }

    /// The speed a DISTANCE step is estimated at: mid-range of its pace target, else the
    /// sport's default.
    public static func estimatedSpeed(for step: WorkoutStep, sport: Sport) -> Double {
        estimatedSpeed(target: step.target, secondaryTarget: step.secondaryTarget, sport: sport)
    }

    /// ``estimatedSpeed(for:sport:)`` of a step with these targets.
    static func estimatedSpeed(target: WorkoutTarget?, secondaryTarget: WorkoutTarget?, sport: Sport) -> Double {
        paceSpeed(target) ?? paceSpeed(secondaryTarget) ?? defaultSpeed(for: sport)
    }

    /// The mid-range speed of a pace target with positive bounds.
    static func paceSpeed(_ target: WorkoutTarget?) -> Double? {
        switch target {
        case .pacePerKm(let fast, let slow)? where fast > 0 && slow > 0:
            return metersPerSecond(secondsPerKm: (fast + slow) / 2)
        case .pacePer100m(let fast, let slow)? where fast > 0 && slow > 0:
            return metersPerSecond(secondsPer100m: (fast + slow) / 2)
        default:
            return nil
        }
    }
}

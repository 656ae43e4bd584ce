/// One thing wrong with a session's workout: where (a path into the session JSON, such as
/// `workout.steps[2].steps[0].target.maxBpm`) and what.
public struct ValidationProblem: Sendable, Equatable, CustomStringConvertible {
    public var path: String
    public var message: String

    public init(path: String, message: String) {
        self.path = path
        self.message = message
    }

    /// `<path>: <what is wrong>`.
    public var description: String { path + ": " + message }
}

/// Why a session cannot be exported: every problem found, not just the first.
///
/// Its ``message`` is the `lastExportError` of SPEC §3:
/// `Validation failed: <path>: <problem>; <path>: <problem>` — problems in document
/// order, separated by `"; "`.
public struct ValidationFailure: Error, Sendable, Equatable, CustomStringConvertible {
    public var problems: [ValidationProblem]

    public init(problems: [ValidationProblem]) {
        self.problems = problems
    }

    public var message: String { Self.format(problems) }
    public var description: String { message }

    /// The separator between two problems in ``message``.
    public static let separator = "; "

    /// The one formatter of validation errors.
    public static func format(_ problems: [ValidationProblem]) -> String {
        var out = "Validation failed: "
        for (index, problem) in problems.enumerated() {
            if index > 0 { out += separator }
            out += problem.description
        }
        return out
    }
}

/// Formats a number for a message: `20`, `20.5`.
@usableFromInline
func formatNumber(_ value: Double) -> String {
    if value.rounded(.towardZero) == value, abs(value) < 1e15 {
        return String(Int64(value))
    }
    return "\(value)"
}

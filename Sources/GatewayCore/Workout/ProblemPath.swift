/// Where the decoder or the validator is in the session JSON, kept as a stack of
/// components while walking and rendered as a string (`workout.steps[2].target.maxBpm`)
/// only when a problem is recorded: a valid workout builds no path strings at all.
struct ProblemPath {
    enum Component {
        case key(String)
        case index(Int)
    }

    /// The first component, written as is (`workout`, `athlete`, or any prefix).
    var root: String
    private(set) var components: [Component] = []

    init(root: String, capacity: Int = 0) {
        self.root = root
        if capacity > 0 { components.reserveCapacity(capacity) }
    }

    mutating func push(_ key: String) { components.append(.key(key)) }
    mutating func push(index: Int) { components.append(.index(index)) }
    mutating func pop() { components.removeLast() }

    /// The current path: `root`, `.key` per key and `[i]` per index.
    var rendered: String {
        var out = root
        for component in components {
            switch component {
            case .key(let key):
                out += "."
                out += key
            case .index(let index):
                out += "["
                out += String(index)
                out += "]"
            }
        }
        return out
    }

    /// The current path followed by `.key`.
    func rendered(_ key: String) -> String { rendered + "." + key }
}

/// Where the validator and the decoder report problems. A valid workout is walked once
/// with ``ProblemFlag``, which keeps no path and builds no message; only when it finds a
/// problem is the walk repeated with ``ProblemList`` for the paths and messages.
protocol ProblemRecorder {
    /// Whether a problem was recorded.
    var failed: Bool { get }
    /// Makes `root` the current path, with no component.
    mutating func start(at root: String)
    mutating func push(_ key: String)
    mutating func push(index: Int)
    mutating func pop()
    /// A problem at the current path.
    mutating func fail(_ message: @autoclosure () -> String)
    /// A problem at the member `key` of the current path.
    mutating func fail(_ key: String, _ message: @autoclosure () -> String)
    /// A problem at an explicit path.
    mutating func fail(path: String, _ message: @autoclosure () -> String)
}

/// Only whether there is a problem.
struct ProblemFlag: ProblemRecorder {
    private(set) var failed = false

    init() {}

    @inline(__always) mutating func start(at root: String) {}
    @inline(__always) mutating func push(_ key: String) {}
    @inline(__always) mutating func push(index: Int) {}
    @inline(__always) mutating func pop() {}
    mutating func fail(_ message: @autoclosure () -> String) { failed = true }
    mutating func fail(_ key: String, _ message: @autoclosure () -> String) { failed = true }
    mutating func fail(path: String, _ message: @autoclosure () -> String) { failed = true }
}

/// Every problem, with its path, in the order found.
struct ProblemList: ProblemRecorder {
    private(set) var problems: [ValidationProblem] = []
    private var path: ProblemPath

    init(root: String) {
        path = ProblemPath(root: root, capacity: 8)
    }

    var failed: Bool { !problems.isEmpty }

    mutating func start(at root: String) { path = ProblemPath(root: root, capacity: 8) }
    mutating func push(_ key: String) { path.push(key) }
    mutating func push(index: Int) { path.push(index: index) }
    mutating func pop() { path.pop() }

    mutating func fail(_ message: @autoclosure () -> String) {
        problems.append(ValidationProblem(path: path.rendered, message: message()))
    }

    mutating func fail(_ key: String, _ message: @autoclosure () -> String) {
        problems.append(ValidationProblem(path: path.rendered(key), message: message()))
    }

    mutating func fail(path: String, _ message: @autoclosure () -> String) {
        problems.append(ValidationProblem(path: path, message: message()))
    }
}

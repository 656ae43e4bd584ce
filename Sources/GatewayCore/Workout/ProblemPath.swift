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

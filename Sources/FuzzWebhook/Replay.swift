import FuzzSupport

#if canImport(Glibc)
    import Glibc
#endif

/// A normal build replays the files or directories given as arguments through the fuzz
/// function, once each; a fuzzing build (`-D FUZZING`, scripts/fuzz) hands the arguments
/// to libFuzzer, which calls `LLVMFuzzerTestOneInput`.
@main
enum Replay {
    static func main() {
        #if FUZZING
            exit(runLibFuzzer(fuzzWebhookEntry))
        #else
            exit(replayFuzzInputs(CommandLine.arguments.dropFirst(), tool: "FuzzWebhook") { fuzzWebhook($0) })
        #endif
    }
}

// Shared by the fuzz targets (docs/TESTING.md). In a normal build each target's `main`
// replays files through the same function libFuzzer calls; in a fuzzing build
// (`-sanitize=fuzzer,address -D FUZZING`, see scripts/fuzz) it runs libFuzzer's driver.
#if FUZZING
    import CLibFuzzer
#endif
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A broken invariant: prints what and where, then aborts, so that libFuzzer records the
/// input as a crash (and the file replay exits non-zero).
public func fuzzCheck(
    _ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String,
    file: StaticString = #fileID, line: UInt = #line
) {
    if !condition() {
        printError("fuzz invariant failed at \(file):\(line): \(message())")
        abort()
    }
}

#if FUZZING
    /// Runs libFuzzer with this process's arguments (`-max_total_time=60 CORPUS_DIR`, …) on
    /// `entry` (the target's `LLVMFuzzerTestOneInput`); returns its exit status.
    public func runLibFuzzer(_ entry: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> Int32 {
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        return LLVMFuzzerRunDriver(&argc, &argv, entry)
    }
#endif

/// Runs `body` on the contents of each file named in `paths` (directories: every regular
/// file directly inside, in name order). Returns the process exit status: 0, or 1 when a
/// path cannot be read or there is no path at all.
public func replayFuzzInputs(
    _ paths: some Sequence<String>, tool: String, _ body: (UnsafeBufferPointer<UInt8>) -> Void
) -> Int32 {
    var files: [String] = []
    for path in paths {
        guard let entries = directoryEntries(path) else {
            files.append(path)
            continue
        }
        files.append(contentsOf: entries.sorted().map { path + "/" + $0 })
    }
    guard !files.isEmpty else {
        printError("usage: \(tool) FILE|DIR...  (runs each input once; build with scripts/fuzz to fuzz)")
        return 1
    }
    for file in files {
        guard let bytes = readFile(file) else {
            printError("\(tool): cannot read \(file)")
            return 1
        }
        bytes.withUnsafeBufferPointer { body($0) }
    }
    print("\(tool): \(files.count) input(s) ran without failure")
    return 0
}

/// Writes one line to stderr (unbuffered, so it is out before an abort).
private func printError(_ message: String) {
    var line = message + "\n"
    line.withUTF8 { bytes in _ = write(STDERR_FILENO, bytes.baseAddress, bytes.count) }
}

/// The names of the regular files in `path`, or nil when `path` is not a directory.
private func directoryEntries(_ path: String) -> [String]? {
    guard let dir = opendir(path) else { return nil }
    defer { closedir(dir) }
    var names: [String] = []
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        var info = stat()
        if stat(path + "/" + name, &info) == 0, info.st_mode & S_IFMT == S_IFREG { names.append(name) }
    }
    return names
}

private func readFile(_ path: String) -> [UInt8]? {
    guard let file = fopen(path, "rb") else { return nil }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, file) }
        if n == 0 { break }
        bytes.append(contentsOf: chunk[0..<n])
    }
    return ferror(file) == 0 ? bytes : nil
}

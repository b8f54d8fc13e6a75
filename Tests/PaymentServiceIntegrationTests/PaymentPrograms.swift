import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Where the built `consumer` and `producer` executables are.
enum PaymentPrograms {
    /// The directories searched, in order: `PAYMENT_BIN_DIR` alone when it is set; otherwise the build products
    /// directory of whatever configuration runs the tests (the directory holding the `.xctest` bundle on macOS, the
    /// main bundle's directory on Linux, and its parent), then `.build/debug` under the package root.
    static var searchDirectories: [URL] {
        if let override = ProcessInfo.processInfo.environment["PAYMENT_BIN_DIR"], !override.isEmpty {
            return [URL(fileURLWithPath: override, isDirectory: true)]
        }
        let testBundle = Bundle(for: BundleMarker.self).bundleURL
        let main = Bundle.main.bundleURL
        let packageRoot = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent()  // PaymentServiceIntegrationTests
            .deletingLastPathComponent()  // Tests
            .deletingLastPathComponent()
        return [
            testBundle.deletingLastPathComponent(), main, main.deletingLastPathComponent(),
            packageRoot.appendingPathComponent(".build/debug", isDirectory: true),
        ]
    }

    /// A class of this test bundle, to find the bundle.
    private final class BundleMarker {}

    /// The executable named `program`.
    static func executable(_ program: String) throws -> URL {
        let candidates = searchDirectories.map { $0.appendingPathComponent(program, isDirectory: false) }
        guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0.path) }) else {
            throw ProgramNotFound(program: program, searched: candidates.map(\.path))
        }
        return found
    }
}

/// An executable was not built where the tests look for it.
struct ProgramNotFound: Error, CustomStringConvertible {
    let program: String
    let searched: [String]
    var description: String {
        "no executable \(program) in \(searched.joined(separator: ", ")); build it (swift build) or set PAYMENT_BIN_DIR"
    }
}

/// How a program ended.
struct ProgramResult: Sendable {
    /// The exit status, or the signal number when it was killed by a signal.
    let status: Int32
    /// Whether it exited by itself (rather than being killed by a signal).
    let exited: Bool
    let stdout: String
    let stderr: String

    /// The non-empty lines of stdout.
    var stdoutLines: [String] {
        stdout.split(whereSeparator: \.isNewline).map(String.init)
    }

    /// The last lines of stderr, to put in a failure message.
    var stderrTail: String {
        stderr.split(whereSeparator: \.isNewline).suffix(15).joined(separator: "\n")
    }
}

/// A program started as a process, its stdout and stderr going to files that tests read while it runs.
final class RunningProgram: Sendable {
    let name: String
    let process: Process
    private let outputDirectory: URL
    private let stdoutFile: URL
    private let stderrFile: URL

    /// Starts `program` with `arguments`.
    init(_ program: String, _ arguments: [String]) throws {
        let executable = try PaymentPrograms.executable(program)
        name = program
        outputDirectory = FileManager.default.temporaryDirectory
            .appendingPathComponent("payment-tests-\(program)-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: outputDirectory, withIntermediateDirectories: true)
        stdoutFile = outputDirectory.appendingPathComponent("stdout")
        stderrFile = outputDirectory.appendingPathComponent("stderr")
        for file in [stdoutFile, stderrFile] where !FileManager.default.createFile(atPath: file.path, contents: nil) {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: file.path])
        }
        let stdout = try FileHandle(forWritingTo: stdoutFile)
        let stderr = try FileHandle(forWritingTo: stderrFile)
        defer {
            // The child has its own copies now.
            try? stdout.close()
            try? stderr.close()
        }
        process = Process()
        process.executableURL = executable
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
    }

    var isRunning: Bool { process.isRunning }

    /// What the program wrote to stdout so far.
    var stdout: String { Self.read(stdoutFile) }

    /// What the program wrote to stderr so far (its log).
    var stderr: String { Self.read(stderrFile) }

    /// The lines of stderr so far.
    var stderrLines: [String] {
        stderr.split(whereSeparator: \.isNewline).map(String.init)
    }

    /// The last lines of stderr, to put in a failure message.
    var stderrTail: String {
        stderrLines.suffix(15).joined(separator: "\n")
    }

    /// How many lines of stderr contain every one of `fragments`.
    func logLines(containing fragments: String...) -> Int {
        stderrLines.filter { line in fragments.allSatisfy(line.contains) }.count
    }

    /// Sends SIGKILL: the process dies at once, without a chance to clean up (a crash, an OOM kill).
    func crash() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }

    /// Sends SIGTERM, the signal a service manager stops the consumer with. (`Process.interrupt()` sends SIGINT.)
    func terminate() {
        if process.isRunning { kill(process.processIdentifier, SIGTERM) }
    }

    /// Waits until the program has written a stderr line containing every one of `fragments`, `count` times; fails
    /// at once if the program exits first.
    func waitForLog(_ fragments: String..., count: Int = 1, seconds: Double = 10) async throws {
        try await eventually(seconds, "\(name) to log \(count) × \(fragments); its log ends with:\n\(stderrTail)") {
            () -> Void? in
            let lines = stderrLines.filter { line in fragments.allSatisfy(line.contains) }.count
            if lines >= count { return () }
            if !process.isRunning {
                throw ProgramExited(name: name, status: process.terminationStatus, stderrTail: stderrTail)
            }
            return nil
        }
    }

    /// Waits for the program to end. On timeout it is killed (SIGKILL) and the wait fails.
    func waitForExit(seconds: Double) async throws -> ProgramResult {
        do {
            try await eventually(seconds, "\(name) to exit") { process.isRunning ? nil : () }
        } catch let timeout as TestTimeout {
            kill(process.processIdentifier, SIGKILL)
            _ = try? await eventually(5, "\(name) to die") { process.isRunning ? nil : () }
            throw ProgramTimedOut(timeout: timeout, stderrTail: stderrTail)
        }
        return ProgramResult(
            status: process.terminationStatus, exited: process.terminationReason == .exit, stdout: stdout,
            stderr: stderr)
    }

    /// Where the files that hold the program's output are.
    var outputPath: String { outputDirectory.path }

    /// Deletes the files that hold the program's output.
    func removeOutput() {
        try? FileManager.default.removeItem(at: outputDirectory)
    }

    private static func read(_ file: URL) -> String {
        String(decoding: (try? Data(contentsOf: file)) ?? Data(), as: UTF8.self)
    }

    /// Runs a program to its end, at most `seconds`.
    static func run(_ program: String, _ arguments: [String], seconds: Double = 30) async throws -> ProgramResult {
        let running = try RunningProgram(program, arguments)
        defer { running.removeOutput() }
        return try await running.waitForExit(seconds: seconds)
    }
}

/// A program ended while a test waited for it to do something.
struct ProgramExited: Error, CustomStringConvertible {
    let name: String
    let status: Int32
    let stderrTail: String
    var description: String { "\(name) exited with status \(status); its log ends with:\n\(stderrTail)" }
}

/// A program did not end in time and was killed.
struct ProgramTimedOut: Error, CustomStringConvertible {
    let timeout: TestTimeout
    let stderrTail: String
    var description: String { "\(timeout) (killed it); its log ends with:\n\(stderrTail)" }
}

import Foundation

/// Runs `rabbitmqctl` on the local broker and returns what it printed; nil when it is not installed.
///
/// Tests use it for what an operator would do: list and close connections, raise alarms, stop the broker.
///
/// - Parameter arguments: The command and its arguments, such as `["list_connections", "name"]`.
/// - Returns: What it printed, standard output and standard error together, whatever its exit status (which is not
///   checked); nil when rabbitmqctl is not installed.
/// - Throws: What `Process.run()` throws when rabbitmqctl cannot be started. A command that fails does not throw.
public func runRabbitmqctl(_ arguments: [String]) throws -> String? {
    let candidates = ["/usr/sbin/rabbitmqctl", "/usr/local/sbin/rabbitmqctl", "/opt/homebrew/sbin/rabbitmqctl"]
    guard let path = candidates.first(where: FileManager.default.isExecutableFile(atPath:)) else { return nil }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    let output = Pipe()
    process.standardOutput = output
    process.standardError = output
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return String(decoding: data, as: UTF8.self)
}

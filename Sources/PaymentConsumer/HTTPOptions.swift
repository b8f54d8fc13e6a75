import ArgumentParser
import Foundation

/// Where the consumer serves its HTTP endpoints (/metrics, /health/live, /health/ready), if anywhere.
struct HTTPOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Serve /metrics (Prometheus), /health/live and /health/ready over HTTP on this port; 0 picks a free "
                + "port, logged as \"http endpoints listening\" (default: $HTTP_PORT, else no HTTP endpoints).",
            valueName: "port"))
    var httpPort: Int?

    @Option(
        help: ArgumentHelp(
            "The address the HTTP endpoints listen on: 0.0.0.0 for every interface (as a container needs), "
                + "127.0.0.1 for this host only.",
            valueName: "address"))
    var httpHost = "0.0.0.0"

    /// The port asked for, by `--http-port` or else `HTTP_PORT`; nil when neither is set: no HTTP endpoints.
    /// Read only after ``validate()`` accepted it.
    var port: Int? {
        httpPort ?? Self.environmentPort.flatMap(Int.init)
    }

    /// `HTTP_PORT`, when set to something other than blanks.
    private static var environmentPort: String? {
        let value = ProcessInfo.processInfo.environment["HTTP_PORT"]?.trimmingCharacters(in: .whitespaces) ?? ""
        return value.isEmpty ? nil : value
    }

    func validate() throws {
        if httpPort == nil, let text = Self.environmentPort, Int(text) == nil {
            throw ValidationError("HTTP_PORT must be a port number, not \"\(text)\"")
        }
        if let port, !(0...65535).contains(port) {
            throw ValidationError("the HTTP port must be between 0 and 65535, not \(port)")
        }
        if port != nil, httpHost.isEmpty {
            throw ValidationError("--http-host cannot be empty")
        }
    }
}

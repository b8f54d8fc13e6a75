import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The three-node RabbitMQ cluster that `scripts/start-cluster.sh` runs on loopback beside the default broker, for
/// tests of failover and replicated queues: nodes `cluster1@localhost` to `cluster3@localhost` (numbered 1 to 3),
/// AMQP on 127.0.0.1:5681, 5682 and 5683, user guest/guest, `cluster_partition_handling = pause_minority`.
///
/// ``kill(node:)`` and ``start(node:)`` run `scripts/cluster-node.sh`, which uses `sudo` unless the tests run as root
/// (as in CI). A test that needs the cluster calls ``requireCluster(skip:)`` first. Tests that kill a node start it
/// again before they end, so the next test finds three nodes.
public enum TestCluster {
    /// The nodes' AMQP ports on 127.0.0.1: node 1's first.
    public static let ports = [5681, 5682, 5683]

    /// The node numbers, 1 to 3.
    public static let nodes = [1, 2, 3]

    /// Whether the tests run in CI (the environment variable `CI` is set, as `.ci/run` does), where a missing cluster
    /// is a failure and not a reason to skip: the same rule as the integration tests' `TestBroker`.
    public static var isCI: Bool { ProcessInfo.processInfo.environment["CI"] != nil }

    /// The Erlang node name of a node, such as `cluster2@localhost`, as `rabbitmqctl -n` takes it.
    ///
    /// - Parameter node: The node number, 1 to 3.
    /// - Returns: `clusterN@localhost`.
    public static func name(node: Int) -> String {
        precondition(nodes.contains(node), "the cluster's nodes are numbered 1 to 3, not \(node)")
        return "cluster\(node)@localhost"
    }

    /// The AMQP port of a node on 127.0.0.1.
    ///
    /// - Parameter node: The node number, 1 to 3.
    /// - Returns: 5681, 5682 or 5683.
    public static func port(node: Int) -> Int {
        precondition(nodes.contains(node), "the cluster's nodes are numbered 1 to 3, not \(node)")
        return ports[node - 1]
    }

    /// The AMQP URL of a node, with the guest user.
    ///
    /// - Parameter node: The node number, 1 to 3.
    /// - Returns: `amqp://guest:guest@127.0.0.1:PORT/`.
    public static func url(node: Int) -> String {
        "amqp://guest:guest@127.0.0.1:\(port(node: node))/"
    }

    /// The three nodes' AMQP URLs, node 1's first.
    public static var urls: [String] { nodes.map { url(node: $0) } }

    /// Whether all three nodes accept TCP connections on their AMQP ports (a quick loopback connect, no AMQP). A node
    /// that is down, still booting, or paused by `pause_minority` refuses them.
    public static var isRunning: Bool { nodes.allSatisfy(isAccepting(node:)) }

    /// Whether one node accepts TCP connections on its AMQP port (a quick loopback connect, no AMQP).
    ///
    /// - Parameter node: The node number, 1 to 3.
    /// - Returns: true when a TCP connection to 127.0.0.1 on the node's port succeeds.
    public static func isAccepting(node: Int) -> Bool {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port(node: node)).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        return connected == 0
    }

    /// Returns when the cluster runs; otherwise throws what `skip` makes of the reason outside CI (so the test is
    /// skipped), and a ``TestClusterError`` in CI (so it fails). This library does not link XCTest, hence the closure:
    /// `try TestCluster.requireCluster { XCTSkip($0) }`.
    ///
    /// - Parameter skip: Makes the error that skips a test from a message, such as `{ XCTSkip($0) }`.
    /// - Throws: `skip(message)` outside CI and ``TestClusterError`` in CI, when a node does not accept connections.
    public static func requireCluster(skip: (String) -> any Error) throws {
        let down = nodes.filter { !isAccepting(node: $0) }
        guard !down.isEmpty else { return }
        let message = "the RabbitMQ test cluster does not run (no connection to "
            + down.map { "127.0.0.1:\(port(node: $0))" }.joined(separator: ", ")
            + "): start it with scripts/start-cluster.sh"
        if isCI { throw TestClusterError("\(message) (in CI, scripts/test.sh starts it)") }
        throw skip(message)
    }

    /// Crashes a node: `scripts/cluster-node.sh kill N` sends SIGKILL to its Erlang VM and waits until it is gone and
    /// its ports refuse connections (well under a second). The other nodes see it go at once; its clients' connections
    /// drop. Start it again with ``start(node:)``.
    ///
    /// - Parameter node: The node number, 1 to 3.
    /// - Throws: ``TestClusterError`` with the script's output when the node does not run or the script fails.
    public static func kill(node: Int) async throws {
        try await runClusterScript("kill", node: node)
    }

    /// Starts a node the way `scripts/start-cluster.sh` started it (`scripts/cluster-node.sh start N`) and returns once
    /// it runs, accepts connections and is back in the cluster: 11 to 18 s on two cores. A node that runs already is
    /// left as it is. The cluster scripts take a lock, so concurrent calls run one after the other.
    ///
    /// - Parameter node: The node number, 1 to 3.
    /// - Throws: ``TestClusterError`` with the script's output when the node has not booted or rejoined within the
    ///   script's limits (60 s for each wait).
    public static func start(node: Int) async throws {
        try await runClusterScript("start", node: node)
    }

    /// How many client connections a node holds, such as to find the node a client landed on. Asks
    /// `rabbitmqctl list_connections pid` on a running node, since the listing covers the whole cluster, and counts
    /// the connections whose process lives on `node`; a node that is down holds none.
    ///
    /// - Parameter node: The node number, 1 to 3.
    /// - Returns: The number of AMQP connections whose process runs on that node.
    /// - Throws: ``TestClusterError`` when no node answers `rabbitmqctl`; what `Process.run()` throws when rabbitmqctl
    ///   cannot be started.
    public static func connectionCount(node: Int) async throws -> Int {
        let prefix = "<\(name(node: node))."
        var failures: [String] = []
        for asked in [node] + nodes.filter({ $0 != node }) {
            let result = try await run(
                rabbitmqctlCommand(["-n", name(node: asked), "-q", "list_connections", "pid", "--no-table-headers"])
            )
            if result.status == 0 {
                return result.output.split(separator: "\n").filter { $0.hasPrefix(prefix) }.count
            }
            failures.append("\(name(node: asked)): \(result.output.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        throw TestClusterError("no cluster node listed its connections: " + failures.joined(separator: "; "))
    }

    /// The repository's root: three folders above this file (Tests/RabbitMQTestSupport/Cluster.swift).
    private static let repositoryRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    private static func runClusterScript(_ command: String, node: Int) async throws {
        precondition(nodes.contains(node), "the cluster's nodes are numbered 1 to 3, not \(node)")
        let script = repositoryRoot.appendingPathComponent("scripts/cluster-node.sh").path
        let result = try await run(["/bin/bash", script, command, String(node)])
        guard result.status == 0 else {
            throw TestClusterError(
                "scripts/cluster-node.sh \(command) \(node) failed (exit status \(result.status)): \(result.output)"
            )
        }
    }

    /// rabbitmqctl as root or, for another user, through `sudo -n` (which fails at once instead of asking for a
    /// password): Debian's rabbitmqctl refuses other users.
    private static func rabbitmqctlCommand(_ arguments: [String]) -> [String] {
        let candidates = ["/usr/sbin/rabbitmqctl", "/usr/local/sbin/rabbitmqctl", "/opt/homebrew/sbin/rabbitmqctl"]
        let path = candidates.first(where: FileManager.default.isExecutableFile(atPath:)) ?? "rabbitmqctl"
        return (getuid() == 0 ? [path] : ["/usr/bin/sudo", "-n", path]) + arguments
    }

    /// Runs a command and returns its exit status and its output (standard output and error together). The process
    /// is waited for on a thread of its own, not on one of the concurrency pool's few threads, which the client under
    /// test needs while a node boots.
    private static func run(_ command: [String]) async throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: command[0].hasPrefix("/") ? command[0] : "/usr/bin/env")
        process.arguments = command[0].hasPrefix("/") ? Array(command.dropFirst()) : command
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let finished = OneShot<(status: Int32, output: String)>()
        Thread {
            let data = output.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            finished.fulfil((process.terminationStatus, String(decoding: data, as: UTF8.self)))
        }.start()
        return await finished.value
    }
}

/// Why the test cluster could not be used or changed: it does not run (in CI), or a script or `rabbitmqctl` failed.
public struct TestClusterError: Error, CustomStringConvertible {
    /// What went wrong, with the output of the command that failed.
    public let message: String

    /// Creates the error.
    ///
    /// - Parameter message: What went wrong, as one or more sentences.
    public init(_ message: String) {
        self.message = message
    }

    /// The message.
    public var description: String { message }
}

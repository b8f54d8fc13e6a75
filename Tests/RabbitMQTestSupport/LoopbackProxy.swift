import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A TCP proxy on 127.0.0.1 in front of the local broker, for faults a real network has: it can stop forwarding
/// (the peer goes silent without closing anything, as behind a dead router) and stop accepting (the broker is
/// unreachable). Only loopback addresses are involved.
public final class LoopbackProxy: Sendable {
    private struct State {
        var forwarding = true
        var accepting = true
        var closed = false
        /// Bumped to make every pump end, dropping the connections it carries.
        var generation = 0
    }

    /// The port the proxy listens on (127.0.0.1).
    public let port: Int
    private let targetPort: Int
    private let listener: Int32
    private let state = Mutex(State())

    /// Starts a proxy on a free loopback port, forwarding to `targetPort` on 127.0.0.1.
    ///
    /// - Parameter targetPort: The port on 127.0.0.1 to forward to, normally the broker's.
    /// - Throws: ``TestTimeout`` (with `seconds` 0 and `what` "a listening socket") when the listening socket cannot be
    ///   bound or cannot listen. No time limit is involved: the type is only reused to report the failure.
    public init(targetPort: Int) throws {
        self.targetPort = targetPort
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var reuse: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &reuse, socklen_t(MemoryLayout<Int32>.size))
        var address = Self.loopback(port: 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0, listen(listener, 16) == 0 else { throw TestTimeout(seconds: 0, what: "a listening socket") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        self.listener = listener
        self.port = Int(UInt16(bigEndian: address.sin_port))
        let thread = Thread { [self] in acceptLoop() }
        thread.start()
    }

    /// Stops forwarding bytes in both directions; connections stay open and silent.
    public func pause() { state.withLock { $0.forwarding = false } }

    /// Forwards bytes again.
    public func resume() { state.withLock { $0.forwarding = true } }

    /// Refuses new connections (the listening socket closes), as if the broker were gone.
    public func stopAccepting() { state.withLock { $0.accepting = false } }

    /// Closes every proxied connection at once (the peers see the TCP connection end), and keeps accepting new ones.
    public func dropConnections() { state.withLock { $0.generation += 1 } }

    /// Ends everything: the listener and every proxied connection.
    public func close() { state.withLock { $0.closed = true } }

    private static func loopback(port: UInt16) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = port.bigEndian
        return address
    }

    private func acceptLoop() {
        defer { Glibc.close(listener) }
        while true {
            let (accepting, closed) = state.withLock { ($0.accepting, $0.closed) }
            if closed || !accepting { return }
            var descriptor = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, 50) > 0 else { continue }
            let client = accept(listener, nil, nil)
            guard client >= 0 else { continue }
            let upstream = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = Self.loopback(port: UInt16(targetPort))
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(upstream, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            guard connected == 0 else {
                Glibc.close(client)
                Glibc.close(upstream)
                continue
            }
            let generation = state.withLock { $0.generation }
            let thread = Thread { [self] in pump(client, upstream, generation: generation) }
            thread.start()
        }
    }

    private func pump(_ client: Int32, _ upstream: Int32, generation: Int) {
        defer {
            Glibc.close(client)
            Glibc.close(upstream)
        }
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let (forwarding, closed, current) = state.withLock { ($0.forwarding, $0.closed, $0.generation) }
            if closed || current != generation { return }
            guard forwarding else {
                usleep(20_000)
                continue
            }
            var descriptors = [
                pollfd(fd: client, events: Int16(POLLIN), revents: 0),
                pollfd(fd: upstream, events: Int16(POLLIN), revents: 0),
            ]
            guard poll(&descriptors, 2, 50) > 0 else { continue }
            for (index, from) in [client, upstream].enumerated() where descriptors[index].revents != 0 {
                let to = from == client ? upstream : client
                let count = read(from, &buffer, buffer.count)
                if count <= 0 { return }
                var written = 0
                while written < count {
                    let result = buffer.withUnsafeBytes { write(to, $0.baseAddress! + written, count - written) }
                    if result <= 0 { return }
                    written += result
                }
            }
        }
    }
}

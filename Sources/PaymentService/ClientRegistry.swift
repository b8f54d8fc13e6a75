import Synchronization

/// The clients this service instance knows, kept in memory.
///
/// A payment may only be processed once its client is registered. The registry is shared by every handler task.
public final class ClientRegistry: Sendable {
    private let clients = Mutex(Set<String>())

    /// Creates an empty registry.
    public init() {}

    /// Records a client; returns false when it was already known.
    @discardableResult
    public func register(_ clientID: String) -> Bool {
        clients.withLock { $0.insert(clientID).inserted }
    }

    /// Whether the client is registered.
    public func contains(_ clientID: String) -> Bool {
        clients.withLock { $0.contains(clientID) }
    }

    /// How many clients are registered.
    public var count: Int {
        clients.withLock { $0.count }
    }
}

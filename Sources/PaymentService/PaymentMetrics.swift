import Metrics
import Synchronization

/// The service's counters: reported through swift-metrics, and kept here too for the periodic summary line.
public final class PaymentMetrics: Sendable {
    /// The counters at one moment.
    public struct Snapshot: Sendable, Equatable, CustomStringConvertible {
        /// Messages received from the three queues.
        public var received = 0
        /// Payments processed.
        public var processed = 0
        /// Retries scheduled.
        public var retried = 0
        /// Payments parked (client never known).
        public var parked = 0
        /// Duplicate or redelivered payments acknowledged without a second outcome.
        public var duplicatesSkipped = 0
        /// Unreadable messages moved to the parking lot.
        public var unreadable = 0
        /// Clients registered.
        public var registered = 0
        /// Payments held for their registration and woken by it (no retry needed).
        public var woken = 0
        /// Expired claims of another instance (presumably dead) taken over.
        public var claimsTakenOver = 0

        /// One line: `received=… processed=… retried=… parked=… duplicates=… unreadable=… registered=…`.
        public var description: String {
            "received=\(received) processed=\(processed) retried=\(retried) parked=\(parked) "
                + "duplicates=\(duplicatesSkipped) unreadable=\(unreadable) registered=\(registered) woken=\(woken) "
                + "takeovers=\(claimsTakenOver)"
        }
    }

    /// What a counter counts: one case per field of ``Snapshot``.
    ///
    /// `received` a message from one of the three queues; `processed`, `retried` and `parked` a payment's fate;
    /// `duplicateSkipped` a copy acknowledged without a second outcome; `unreadable` a message parked unread;
    /// `registered` a new client; `woken` a held payment released by its registration; `claimTakenOver` an expired
    /// claim of another instance taken over.
    public enum Event: Sendable, CaseIterable {
        case received, processed, retried, parked, duplicateSkipped, unreadable, registered, woken, claimTakenOver

        var label: String {
            switch self {
            case .received: "payment_service_messages_received_total"
            case .processed: "payment_service_payments_processed_total"
            case .retried: "payment_service_payments_retried_total"
            case .parked: "payment_service_payments_parked_total"
            case .duplicateSkipped: "payment_service_duplicates_skipped_total"
            case .unreadable: "payment_service_unreadable_messages_total"
            case .registered: "payment_service_clients_registered_total"
            case .woken: "payment_service_payments_woken_total"
            case .claimTakenOver: "payment_service_claims_taken_over_total"
            }
        }
    }

    private let counts = Mutex(Snapshot())
    private let counters: [Event: Counter]

    /// Creates the counters (through whatever metrics backend is bootstrapped).
    public init() {
        counters = Dictionary(uniqueKeysWithValues: Event.allCases.map { ($0, Counter(label: $0.label)) })
    }

    /// Counts one event, in the swift-metrics counter and in ``snapshot``.
    ///
    /// - Parameter event: What happened.
    public func record(_ event: Event) {
        counters[event]?.increment()
        counts.withLock { snapshot in
            switch event {
            case .received: snapshot.received += 1
            case .processed: snapshot.processed += 1
            case .retried: snapshot.retried += 1
            case .parked: snapshot.parked += 1
            case .duplicateSkipped: snapshot.duplicatesSkipped += 1
            case .unreadable: snapshot.unreadable += 1
            case .registered: snapshot.registered += 1
            case .woken: snapshot.woken += 1
            case .claimTakenOver: snapshot.claimsTakenOver += 1
            }
        }
    }

    /// The counters now.
    public var snapshot: Snapshot {
        counts.withLock { $0 }
    }
}

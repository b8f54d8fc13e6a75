/// One walk over a configuration's endpoints: the order they are tried in, and why each one failed.
///
/// A connection attempt (the first connect, or one recovery attempt) tries the endpoints one after the other with no
/// pause between them; only when the whole round failed does recovery wait out its backoff before the next round.
struct EndpointRound {
    typealias Endpoint = AMQPConfiguration.Endpoint

    /// The endpoints in the order this round tries them.
    let endpoints: [Endpoint]
    private var position = 0
    private var failures: [(endpoint: Endpoint, error: AMQPError)] = []

    /// A round over `endpoints`, in their order or, with `shuffled`, in the order `shuffle` gives.
    init(_ endpoints: [Endpoint], shuffled: Bool, shuffle: ([Endpoint]) -> [Endpoint] = { $0.shuffled() }) {
        self.endpoints = shuffled ? shuffle(endpoints) : endpoints
    }

    /// The endpoint to try now, or nil once every one has failed.
    var current: Endpoint? {
        position < endpoints.count ? endpoints[position] : nil
    }

    /// Whether every endpoint of the round has failed.
    var isExhausted: Bool { current == nil }

    /// The current endpoint failed with `error`: the round moves on to the next.
    mutating func fail(_ error: AMQPError) {
        guard let endpoint = current else { return }
        failures.append((endpoint, error))
        position += 1
    }

    /// Why the round failed. One endpoint's error is passed on as it is; with several, the error names each
    /// endpoint and why it failed, and takes the first one's code (the preferred endpoint's, unless shuffled).
    var error: AMQPError {
        guard failures.count > 1, let first = failures.first else {
            return failures.first?.error ?? AMQPError(.invalidConfiguration, "no endpoint to connect to")
        }
        let reasons = failures.map { "\($0.endpoint): \($0.error.message)" }.joined(separator: "; ")
        return AMQPError(first.error.code, "could not connect to any of the \(failures.count) endpoints: \(reasons)")
    }
}

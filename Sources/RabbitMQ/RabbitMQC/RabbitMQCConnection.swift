internal import CRabbitMQ
import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Owns one rabbitmq-c connection and runs its I/O loop, on the connection's own thread.
///
/// rabbitmq-c is not thread-safe, so this class is deliberately not `Sendable`: it is created on the I/O thread,
/// every C call of the connection happens there, and it is never handed to another thread. Tasks reach it through
/// ``ConnectionCore/commands``; the loop answers them through the replies they wait on.
///
/// Whether the connection and each channel are usable is decided by ``machine``, a plain value fed the events the
/// loop sees; this class carries out the actions it returns (`+Lifecycle`), runs the loop (`+Loop`), sends what
/// tasks queue (`+Commands`, `+Requests`, `+Channels`) and dispatches what the broker sends (`RabbitMQCDispatch`).
final class RabbitMQCConnection {
    let core: ConnectionCore
    var logger: Logger
    /// The connection's and its channels' lifecycle.
    var machine: ConnectionStateMachine<OneShotResult<Void>>
    /// The current rabbitmq-c connection; recovery replaces it.
    var state: amqp_connection_state_t
    /// Scratch memory for the C structures of outgoing methods; recycled after each send.
    let pool: UnsafeMutablePointer<amqp_pool_t>
    /// What the I/O thread keeps per channel the machine holds; the same keys.
    var channels: [UInt16: RabbitMQCChannel] = [:]
    /// What the application declared, in order, for recovery to declare again.
    var topology = RabbitMQCTopology()
    var socketDescriptor: Int32
    var tick: Duration
    var nextHousekeeping: ContinuousClock.Instant
    /// When the socket last had something to read; a broker silent for too long is declared dead.
    var lastDataAt = ContinuousClock.now
    /// How long the broker may stay silent: RabbitMQ sends a heartbeat every half interval, so one and a half
    /// intervals is three missed heartbeats, and the broker is declared dead within two intervals (rabbitmq-c's own
    /// deadline, two intervals after the last byte, plus a poll tick, would come later). Nil without heartbeats.
    var silenceLimit: Duration?
    /// False between a failure that started recovery (which destroyed the C connection) and the next success.
    var hasLiveState = true
    /// Consumer tags, exchanges and routing keys of recent deliveries, reused rather than allocated per delivery.
    var names = RabbitMQCNameCache()
    /// The delivery buffers that received deliveries during this read pass, whose readers are woken once it ends.
    var readersToWake: [DeliveryBuffer] = []

    private init(
        core: ConnectionCore, state: amqp_connection_state_t, pool: UnsafeMutablePointer<amqp_pool_t>,
        endpoint: AMQPConfiguration.Endpoint
    ) {
        self.core = core
        self.logger = core.logger
        self.state = state
        self.pool = pool
        self.socketDescriptor = amqp_get_sockfd(state)
        self.machine = ConnectionStateMachine(
            channelMax: UInt16(clamping: amqp_get_channel_max(state)), recovery: core.configuration.recovery,
            endpoints: core.configuration.endpoints, shuffleEndpoints: core.configuration.shuffleEndpoints,
            connectedTo: endpoint)
        self.tick = Self.tick(for: state)
        self.nextHousekeeping = .now + tick
        self.silenceLimit = Self.silenceLimit(for: state)
    }

    static func silenceLimit(for state: amqp_connection_state_t) -> Duration? {
        let heartbeat = amqp_get_heartbeat(state)
        return heartbeat > 0 ? .milliseconds(Int(heartbeat) * 1500) : nil
    }

    /// A quarter of the heartbeat keeps sends well inside the broker's patience; without heartbeats the tick only
    /// paces deadlines (graceful close, recovery attempts).
    static func tick(for state: amqp_connection_state_t) -> Duration {
        let heartbeat = amqp_get_heartbeat(state)
        return heartbeat > 0 ? .milliseconds(max(50, min(1000, Int(heartbeat) * 250))) : .seconds(1)
    }

    var encoder: RabbitMQCEncoder { RabbitMQCEncoder(pool: pool) }

    var isConnected: Bool { machine.isConnected }
    var isRecovering: Bool { machine.isRecovering }
    var isEnded: Bool { machine.isEnded }

    // MARK: - Thread entry

    /// The body of a connection's I/O thread: connects, reports the outcome, then runs the loop until the end.
    static func run(core: ConnectionCore, name: String, opened: CheckedContinuation<Void, any Error>) {
        // Foundation on Linux does not hand Thread.name to the system.
        rmq_name_current_thread(String(decoding: name.utf8.prefix(15), as: UTF8.self))
        let connection: RabbitMQCConnection
        do {
            connection = try open(core: core)
        } catch {
            core.didEnd(with: error)
            for command in core.commands.shutdown(with: error) { command.fail(error) }
            opened.resume(throwing: error)
            return
        }
        opened.resume()
        connection.loop()
    }

    private static func open(core: ConnectionCore) throws(AMQPError) -> RabbitMQCConnection {
        let configuration = core.configuration
        let pool = UnsafeMutablePointer<amqp_pool_t>.allocate(capacity: 1)
        init_amqp_pool(pool, 4096)
        // One walk of the endpoints, with no pause between them; when each one failed, the error names them all.
        var round = EndpointRound(configuration.endpoints, shuffled: configuration.shuffleEndpoints)
        while let endpoint = round.current {
            do {
                let state = try establish(configuration, endpoint: endpoint, pool: pool)
                let connection = RabbitMQCConnection(core: core, state: state, pool: pool, endpoint: endpoint)
                connection.didEstablish()
                return connection
            } catch {
                if configuration.endpoints.count > 1 {
                    core.logger.info(
                        "could not connect to an endpoint",
                        metadata: ["amqp.endpoint": "\(endpoint)", "amqp.error": "\(error)"])
                }
                round.fail(error)
            }
        }
        empty_amqp_pool(pool)
        pool.deallocate()
        throw round.error
    }

    /// Records what a new rabbitmq-c connection negotiated, and where it is.
    func didEstablish() {
        logger[metadataKey: "amqp.connection"] = "\(machine.endpoint)"
        let parameters = AMQPConnection.Parameters(
            heartbeat: .seconds(Int(amqp_get_heartbeat(state))),
            frameMax: UInt32(clamping: amqp_get_frame_max(state)),
            channelMax: machine.channelMax)
        let serverProperties: AMQPTable
        if let properties = amqp_get_server_properties(state) {
            serverProperties = AMQPTable(decoding: properties.pointee)
        } else {
            serverProperties = AMQPTable()
        }
        core.didOpen(parameters: parameters, serverProperties: serverProperties, endpoint: machine.endpoint)
        logger.debug(
            "AMQP connection open",
            metadata: [
                "amqp.heartbeat": "\(parameters.heartbeat)", "amqp.frame_max": "\(parameters.frameMax)",
                "amqp.channel_max": "\(parameters.channelMax)",
            ])
    }
}

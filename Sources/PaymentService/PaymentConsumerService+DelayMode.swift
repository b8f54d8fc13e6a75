import Logging
import RabbitMQ

extension PaymentConsumerService {
    /// Picks the delay mechanism: the plugin's exchange when asked for or available, TTL queues otherwise.
    ///
    /// The probe runs on a connection of its own, because a broker without the plugin answers the declaration with
    /// 503 COMMAND_INVALID and closes the whole connection.
    func resolveDelayMode() async throws -> ResolvedDelayMode {
        switch configuration.delayMode {
        case .ttl:
            logTTLMode(reason: "as asked (--delay-mode ttl)")
            return .ttl
        case .pluginStandIn:
            logger.warning(
                "delay mode: plugin-stand-in (tests only: retries are not delayed)",
                metadata: ["exchange": "\(configuration.topology.delayedExchange)", "type": "direct"])
            warnIfPluginOnQuorum()
            return .pluginStandIn
        case .auto where configuration.topology.queueType == .quorum:
            // The plugin keeps a delayed message on the one node that received it: the replication quorum queues
            // were asked for would end at the delay. The TTL delay queues are quorum queues themselves.
            logTTLMode(reason: "--queue-type quorum: TTL delay queues are replicated, the plugin's delays are not")
            return .ttl
        case .auto, .plugin:
            break
        }
        var probing = configuration.connection
        probing.connectionName = "payment-consumer-probe"
        // Without the plugin the probe's connection is closed by the broker: expected, so not worth a log line.
        var quiet = logger
        quiet.logLevel = .warning
        let probe = try await AMQPConnection.connect(configuration: probing, logger: quiet)
        do {
            let channel = try await probe.openChannel()
            try await configuration.topology.declareDelayedExchange(on: channel)
            try await probe.close()
            logger.info(
                "delay mode: plugin",
                metadata: ["exchange": "\(configuration.topology.delayedExchange)", "type": "x-delayed-message"])
            warnIfPluginOnQuorum()
            return .plugin
        } catch let error as AMQPError where error.code == .delayedMessagePluginMissing {
            guard configuration.delayMode == .auto else {
                throw PaymentServiceError(
                    "--delay-mode plugin: the broker lacks the rabbitmq_delayed_message_exchange plugin "
                        + "(it answered 503 COMMAND_INVALID); enable it, or use --delay-mode ttl or auto")
            }
            logTTLMode(reason: "the broker lacks the delayed-message plugin")
            return .ttl
        } catch {
            try? await probe.close()
            throw error
        }
    }

    private func logTTLMode(reason: String) {
        let levels = configuration.policy.delayLevels.map { configuration.topology.delayQueue(for: $0) }
        logger.info(
            "delay mode: ttl",
            metadata: ["reason": "\(reason)", "delay_queues": "\(levels.joined(separator: ", "))"])
    }

    /// An explicit `--delay-mode plugin` with `--queue-type quorum` is honoured, but it gives up what quorum queues
    /// are for: a delayed message lives in the plugin's table on one node, and is lost with that node.
    private func warnIfPluginOnQuorum() {
        guard configuration.topology.queueType == .quorum else { return }
        logger.warning(
            "delay mode: the delayed-message plugin keeps each delayed payment on one node only, and loses it if that node is lost; with --queue-type quorum, use --delay-mode ttl or auto (replicated TTL delay queues)",
            metadata: ["exchange": "\(configuration.topology.delayedExchange)"])
    }
}

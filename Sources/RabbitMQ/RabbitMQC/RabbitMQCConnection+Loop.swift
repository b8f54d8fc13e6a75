internal import CRabbitMQ
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The I/O loop (see <doc:RabbitMQCBehaviour#The-polling-loop>): release rabbitmq-c's buffers, run the queued
/// commands, then `poll(2)` on the socket and on the command queue's wake-up pipe, read and dispatch every frame that
/// arrived, and every tick (a quarter of the heartbeat) let rabbitmq-c send a heartbeat or notice a silent broker.
/// The thread never sleeps on work: a command wakes the poll at once.
extension RabbitMQCConnection {
    func loop() {
        var descriptors = [
            pollfd(fd: socketDescriptor, events: Int16(POLLIN), revents: 0),
            pollfd(fd: core.commands.wakeReadDescriptor, events: Int16(POLLIN), revents: 0),
        ]
        let tickMilliseconds = Int32(clamping: tick.wholeMilliseconds)
        while !isEnded {
            descriptors[0].fd = socketDescriptor
            if isRecovering {
                recoverIfDue(descriptors: &descriptors[1], tickMilliseconds: tickMilliseconds)
                continue
            }
            amqp_maybe_release_buffers(state)
            let commands = core.commands.takeAll()
            var acknowledgements: [AcknowledgeRequest] = []
            for command in commands {
                if isEnded {
                    command.fail(endedError)
                } else if case .acknowledge(let request) = command, case .ack = request.kind, !request.multiple {
                    acknowledgements.append(request)
                } else {
                    // Acknowledgements keep their place relative to everything else on the connection.
                    sendAcknowledgements(&acknowledgements)
                    execute(command)
                }
            }
            sendAcknowledgements(&acknowledgements)
            if !isConnected { continue }

            // Frames rabbitmq-c already holds would not wake poll(2).
            var readable = amqp_frames_enqueued(state) != 0 || amqp_data_in_buffer(state) != 0
            if !readable {
                let mayBlock = commands.isEmpty && core.commands.prepareToSleep()
                descriptors[0].revents = 0
                descriptors[1].revents = 0
                let ready = poll(&descriptors, 2, mayBlock ? tickMilliseconds : 0)
                if mayBlock { core.commands.didWake(drain: descriptors[1].revents & Int16(POLLIN) != 0) }
                if ready < 0 && errno != EINTR {
                    fail(AMQPError(.connectionLost, "poll(2) failed: \(String(cString: strerror(errno)))"))
                    break
                }
                readable = descriptors[0].revents != 0
            }
            if readable {
                lastDataAt = .now
                if isConnected { readFrames() }
            }
            housekeepIfDue()
            wakeReaders()
            if isConnected { advanceClose() }
        }
        if hasLiveState { amqp_destroy_connection(state) }
        empty_amqp_pool(pool)
        pool.deallocate()
    }

    /// Reads and dispatches every frame that is ready, without blocking.
    private func readFrames() {
        // Bounded so that a flood of deliveries cannot starve queued acknowledgements and publishes.
        var budget = 2048
        while budget > 0 && isConnected {
            var frame = amqp_frame_t()
            var immediately = rmq_timeval(0, 0)
            let status = amqp_simple_wait_frame_noblock(state, &frame, &immediately)
            if status == AMQP_STATUS_TIMEOUT.rawValue { return }
            guard status == AMQP_STATUS_OK.rawValue else {
                fail(RabbitMQCErrors.connectionLost(status: status))
                return
            }
            dispatch(frame)
            budget -= 1
        }
    }

    /// Wakes the readers of the consumers that received deliveries in this pass, once each.
    private func wakeReaders() {
        guard !readersToWake.isEmpty else { return }
        for buffer in readersToWake { buffer.wakeReader() }
        readersToWake.removeAll(keepingCapacity: true)
    }

    /// Lets rabbitmq-c send a due heartbeat and check the receive deadline, once per tick.
    ///
    /// A zero timeout would skip the receive-deadline check (rabbitmq-c compares deadlines and an immediate one always
    /// wins), so this waits one microsecond: then a broker silent for two heartbeats yields HEARTBEAT_TIMEOUT.
    private func housekeepIfDue() {
        guard isConnected else { return }
        let now = ContinuousClock.now
        guard now >= nextHousekeeping else { return }
        nextHousekeeping = now + tick
        apply(machine.silenceObserved(now - lastDataAt, limit: silenceLimit, now: now))
        guard isConnected else { return }
        var frame = amqp_frame_t()
        var briefly = rmq_timeval(0, 1)
        let status = amqp_simple_wait_frame_noblock(state, &frame, &briefly)
        if status == AMQP_STATUS_OK.rawValue {
            dispatch(frame)
        } else if status != AMQP_STATUS_TIMEOUT.rawValue {
            fail(RabbitMQCErrors.connectionLost(status: status))
        }
    }
}

// Plain rabbitmq-c clients that the benchmark measures the Swift library against.
//
// This public header deliberately exposes plain C types only, so Swift can import it without seeing any
// rabbitmq-c type. The rabbitmq-c headers (0.11 top-level layout or 0.12+ rabbitmq-c/ layout) are included by
// the implementation files through the private header cbench_internal.h.
//
// Every function opens its own connection (frame_max 131072, heartbeat 60) on channel 1, does its work, then
// closes the channel and the connection cleanly. It returns 0 on success; otherwise non-zero with a message in
// out->error. `out` is always filled in (error is the empty string on success). The queue must exist already.
#ifndef CBENCHMARK_H
#define CBENCHMARK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    const char *host;
    int port;
    const char *user;
    const char *password;
    const char *vhost;
} cbench_target;

typedef struct {
    double seconds;     // wall time of the measured part only (after connect/declare, until the last message is done)
    int64_t start_ns;   // CLOCK_MONOTONIC when the measured part began, for a caller that times its end itself
    double cpu_seconds; // the whole process's CPU time (all threads) over the measured part
    uint64_t messages;  // messages completed
    char error[256];   // empty on success; otherwise a message (function returns non-zero)
} cbench_result;

// Publishes `count` messages of `size` bytes (transient, no properties) to the default exchange with routing
// key `queue`, no confirms. Measured (time and CPU) until the connection is closed: closing the channel is answered
// only after the broker took every publish before it. The caller then waits until the queue holds every message and
// times from start_ns: returning from a publish call says nothing about the broker having the message.
int cbench_publish(const cbench_target *t, const char *queue, uint64_t count, size_t size, cbench_result *out);

// Same with publisher confirms (confirm.select) and a sliding window of at most `window` unconfirmed messages:
// publish while fewer than `window` are outstanding, otherwise read frames (basic.ack / basic.nack, honouring
// `multiple`) until there is room. Measured until every message is confirmed. A nack is an error.
int cbench_publish_confirmed(const cbench_target *t, const char *queue, uint64_t count, size_t size,
                             uint32_t window, cbench_result *out);

// Consumes `count` messages already in `queue` with basic.qos prefetch `prefetch` and manual acks, via
// amqp_consume_message: with `ack_every` 1, one basic.ack (multiple=0) per message; with N > 1, one basic.ack
// multiple=1 every N-th message and one after the last. Measured from the basic.consume-ok to the last ack sent.
// Then cancels the consumer and closes cleanly.
int cbench_consume(const cbench_target *t, const char *queue, uint64_t count, uint16_t prefetch, uint32_t ack_every,
                   cbench_result *out);

// End-to-end latency at a fixed, low publish rate. Two connections, each owned by one thread: a publisher
// thread publishes `count` messages on schedule at `rate_per_second`, each body carrying its send time
// (CLOCK_MONOTONIC nanoseconds, 8 bytes in host byte order, zero-padded to `size`, which must be >= 8); the
// calling thread consumes `queue` (prefetch 100, manual ack) and stores receive_time - send_time in
// microseconds into latencies_us[i] for the i-th message received (the caller allocates `count` doubles).
// The queue must exist and be empty. `seconds` runs from the first scheduled publish to the last receive.
int cbench_latency(const cbench_target *t, const char *queue, uint64_t count, size_t size, double rate_per_second,
                   double *latencies_us, cbench_result *out);

#ifdef __cplusplus
}
#endif

#endif

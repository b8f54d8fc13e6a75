// Private to the CBenchmark implementation files: the rabbitmq-c includes and the helpers they share
// (connection setup and teardown, error reporting, clock). Not part of the public header, which must stay
// free of rabbitmq-c types.
#ifndef CBENCH_INTERNAL_H
#define CBENCH_INTERNAL_H

#include "CBenchmark.h"

// rabbitmq-c 0.12 moved its headers under rabbitmq-c/; 0.11 (Debian 12) installs them at the top level.
#if __has_include(<rabbitmq-c/amqp.h>)
#include <rabbitmq-c/amqp.h>
#include <rabbitmq-c/tcp_socket.h>
#else
#include <amqp.h>
#include <amqp_tcp_socket.h>
#endif

#include <stdint.h>
#include <sys/time.h> // struct timeval for the library's timeouts

// All benchmarks work on this one channel of their connection(s).
#define CB_CHANNEL ((amqp_channel_t)1)
// Negotiated with the broker at login.
#define CB_FRAME_MAX 131072
#define CB_HEARTBEAT_SECONDS 60
// How long a benchmark waits for the broker (a delivery, a confirm) before it gives up with an error.
#define CB_STALL_SECONDS 30

// One connection and what we know about its health, so teardown only does what the connection still allows.
typedef struct {
    amqp_connection_state_t state;
    int usable;       // a connection.close can still be sent and answered
    int channel_open; // channel CB_CHANNEL is open on our side and the broker's
} cb_conn;

// Monotonic clock in nanoseconds.
int64_t cb_now_ns(void);
// The process's CPU time (every thread's, user and system) in nanoseconds.
int64_t cb_cpu_ns(void);

// Clears `out` (called first by every entry point).
void cb_result_reset(cbench_result *out);
// Records an error in out->error unless one is recorded already (the first error is the interesting one).
void cb_fail(cbench_result *out, const char *format, ...) __attribute__((format(printf, 2, 3)));
// Records a failed library call (negative amqp_status_enum) and marks the connection unusable.
void cb_fail_status(cb_conn *c, cbench_result *out, const char *what, int status);

// Checks the reply of the RPC just made: returns 0 if it was normal; otherwise records the error, updates the
// connection's health (answering a broker channel.close / connection.close with close-ok) and returns -1.
int cb_check_rpc(cb_conn *c, cbench_result *out, const char *what);
// The same for a reply the caller holds (amqp_login returns its reply instead of recording it).
int cb_check_reply(cb_conn *c, cbench_result *out, const char *what, amqp_rpc_reply_t reply);

// Handles a frame that is neither a delivery nor a confirm (heartbeats, flow control, broker-side closes).
// Returns 0 if the benchmark can go on, -1 after recording an error.
int cb_handle_other_frame(cb_conn *c, const amqp_frame_t *frame, cbench_result *out);

// Opens a connection to `t`, logs in and opens channel CB_CHANNEL. On failure records the error, releases
// everything and returns -1 (c->state is then NULL).
int cb_connect(cb_conn *c, const cbench_target *t, cbench_result *out);

// Closes the channel (if open) and the connection (if usable), then destroys the connection state. Errors
// are recorded in `out` only if none was recorded before; returns -1 if closing failed.
int cb_close(cb_conn *c, cbench_result *out);

// Validates the arguments every entry point has in common.
int cb_check_common(const cbench_target *t, const char *queue, cbench_result *out);

// Sets *seconds from two monotonic timestamps.
double cb_seconds_between(int64_t start_ns, int64_t end_ns);

#endif

// End-to-end latency at a fixed publish rate.
//
// Design: two connections, each used by exactly one thread (rabbitmq-c connections are not thread-safe).
// - A publisher thread owns the publishing connection. It publishes message i at start + i / rate on an open-loop
//   schedule (a late message does not push the following ones back), sleeping with an absolute-deadline
//   clock_nanosleep so the schedule does not drift. It stamps CLOCK_MONOTONIC into the body immediately before
//   amqp_basic_publish. Long gaps (low rates) are spent in a timed amqp_simple_wait_frame_noblock instead, so
//   heartbeats and broker-side closes are handled while idle.
// - The calling thread owns the consuming connection (basic.qos 100, manual ack). It blocks in
//   amqp_consume_message and stamps the receive time the moment a delivery is returned, before acking.
// Why not one connection with publishing and consuming interleaved in one loop: there, a delivery that arrives
// while the loop is publishing (or sleeping until the next send) is only timestamped when the loop gets back to
// reading, and a publish is delayed while a delivery is being handled, so the two sides distort each other's
// timing; amqp_consume_message timeouts are also only millisecond-granular (poll(2)), which is too coarse to
// publish on a 1 ms schedule without busy-waiting. With two threads the receive timestamp is taken as soon as
// the kernel wakes the reader and the publisher keeps its schedule. Two connections rather than two channels of
// one connection is forced by the one-thread-per-connection rule, and it is also what RabbitMQ recommends
// (separate publishing and consuming connections, so flow control on the publisher cannot stall deliveries).
// Both threads read CLOCK_MONOTONIC of the same machine, so send and receive stamps are directly comparable.
// Connections are set up and torn down by the calling thread; the publisher connection is handed to the
// publisher thread by pthread_create and handed back by pthread_join.
#include "cbench_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

// How long one amqp_consume_message call may wait before the consumer checks on the publisher.
#define CB_LATENCY_POLL_MS 100
// Idle gaps longer than this are spent reading the publishing connection rather than sleeping.
#define CB_SERVICE_GAP_NS 2000000
// Upper bound of one such read, so a stop request from the consumer is noticed quickly.
#define CB_SERVICE_MAX_NS 100000000

typedef struct {
    cb_conn conn;            // the publishing connection, owned by the publisher thread while it runs
    amqp_bytes_t routing_key;
    unsigned char *body;     // `size` bytes; the first 8 carry the send time
    size_t size;
    uint64_t count;
    double rate;             // messages per second
    int64_t start_ns;        // send time of message 0
    atomic_int stop;         // set by the consumer to end publishing early
    atomic_int finished;     // set by the publisher when it is done (successfully or not)
    int failed;
    uint64_t published;
    cbench_result result;    // the publisher's own error
} cb_publisher;

// Sleeps until the monotonic clock reaches `deadline_ns`.
static void cb_sleep_until(int64_t deadline_ns) {
#if defined(__linux__)
    struct timespec deadline = {.tv_sec = (time_t)(deadline_ns / 1000000000),
                                .tv_nsec = (long)(deadline_ns % 1000000000)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline, NULL) == EINTR) {
    }
#else
    for (;;) { // no clock_nanosleep (macOS): sleep relative to now until the deadline has passed
        int64_t left = deadline_ns - cb_now_ns();
        if (left <= 0) {
            return;
        }
        struct timespec rest = {.tv_sec = (time_t)(left / 1000000000), .tv_nsec = (long)(left % 1000000000)};
        nanosleep(&rest, NULL);
    }
#endif
}

// Waits until `due_ns`, servicing the publishing connection during long gaps. Returns 0 when it is time to
// publish, 1 if the consumer asked to stop, -1 on error (recorded in p->result).
static int cb_publisher_wait(cb_publisher *p, int64_t due_ns) {
    for (;;) {
        if (atomic_load_explicit(&p->stop, memory_order_relaxed)) {
            return 1;
        }
        int64_t left = due_ns - cb_now_ns();
        if (left <= 0) {
            return 0;
        }
        if (left <= CB_SERVICE_GAP_NS) {
            cb_sleep_until(due_ns);
            return 0;
        }
        // Wake up a millisecond early (the library's waits have millisecond granularity) and sleep the rest.
        int64_t wait_ns = left - 1000000;
        if (wait_ns > CB_SERVICE_MAX_NS) {
            wait_ns = CB_SERVICE_MAX_NS;
        }
        struct timeval timeout = {.tv_sec = (time_t)(wait_ns / 1000000000),
                                  .tv_usec = (suseconds_t)((wait_ns % 1000000000) / 1000)};
        amqp_frame_t frame;
        amqp_maybe_release_buffers(p->conn.state);
        int status = amqp_simple_wait_frame_noblock(p->conn.state, &frame, &timeout);
        if (status == AMQP_STATUS_TIMEOUT) {
            continue;
        }
        if (status != AMQP_STATUS_OK) {
            cb_fail_status(&p->conn, &p->result, "publisher: waiting for the next send time", status);
            return -1;
        }
        if (cb_handle_other_frame(&p->conn, &frame, &p->result) != 0) {
            return -1;
        }
    }
}

static void *cb_publisher_main(void *argument) {
    cb_publisher *p = argument;
    const amqp_bytes_t body = {.len = p->size, .bytes = p->body};
    const double interval_ns = 1e9 / p->rate;
    for (uint64_t i = 0; i < p->count; i++) {
        // Computed from the start every time, so rounding does not accumulate into drift.
        int64_t due = p->start_ns + (int64_t)((double)i * interval_ns);
        int waited = cb_publisher_wait(p, due);
        if (waited != 0) {
            p->failed = waited < 0;
            break;
        }
        int64_t sent = cb_now_ns();
        memcpy(p->body, &sent, sizeof sent);
        int status = amqp_basic_publish(p->conn.state, CB_CHANNEL, amqp_empty_bytes, p->routing_key, 0, 0, NULL,
                                        body);
        if (status != AMQP_STATUS_OK) {
            cb_fail_status(&p->conn, &p->result, "publisher: basic.publish", status);
            p->failed = 1;
            break;
        }
        p->published++;
    }
    atomic_store_explicit(&p->finished, 1, memory_order_release);
    return NULL;
}

int cbench_latency(const cbench_target *t, const char *queue, uint64_t count, size_t size, double rate_per_second,
                   double *latencies_us, cbench_result *out) {
    cb_result_reset(out);
    if (cb_check_common(t, queue, out) != 0) {
        return -1;
    }
    if (size < sizeof(int64_t)) {
        cb_fail(out, "size must be at least %zu bytes to carry the send time", sizeof(int64_t));
        return -1;
    }
    if (!(rate_per_second > 0) || rate_per_second > 1e9) {
        cb_fail(out, "rate_per_second must be in (0, 1e9]");
        return -1;
    }
    if (latencies_us == NULL && count > 0) {
        cb_fail(out, "latencies_us is required");
        return -1;
    }

    cb_publisher *p = calloc(1, sizeof *p);
    unsigned char *body = calloc(size, 1); // zero padding after the timestamp
    if (p == NULL || body == NULL) {
        cb_fail(out, "out of memory");
        free(p);
        free(body);
        return -1;
    }
    p->routing_key = amqp_cstring_bytes(queue);
    p->body = body;
    p->size = size;
    p->count = count;
    p->rate = rate_per_second;
    atomic_init(&p->stop, 0);
    atomic_init(&p->finished, 0);
    cb_result_reset(&p->result);

    int failed = 0;
    int publisher_started = 0;
    pthread_t publisher;
    amqp_bytes_t consumer_tag = amqp_empty_bytes;
    cb_conn consumer = {.state = NULL, .usable = 0, .channel_open = 0};
    p->conn = consumer;

    // Consumer first, so nothing is published before the queue has a consumer.
    if (cb_connect(&consumer, t, out) != 0) {
        failed = 1;
        goto done;
    }
    amqp_basic_qos(consumer.state, CB_CHANNEL, 0, 100, 0);
    if (cb_check_rpc(&consumer, out, "basic.qos") != 0) {
        failed = 1;
        goto done;
    }
    amqp_basic_consume_ok_t *consume_ok = amqp_basic_consume(
        consumer.state, CB_CHANNEL, amqp_cstring_bytes(queue), amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
    if (cb_check_rpc(&consumer, out, "basic.consume") != 0) {
        failed = 1;
        goto done;
    }
    consumer_tag = amqp_bytes_malloc_dup(consume_ok->consumer_tag);
    if (consumer_tag.bytes == NULL) {
        cb_fail(out, "out of memory for the consumer tag");
        failed = 1;
        goto done;
    }
    if (cb_connect(&p->conn, t, out) != 0) {
        failed = 1;
        goto done;
    }

    const int64_t cpu_start = cb_cpu_ns();
    p->start_ns = cb_now_ns();
    int create_error = pthread_create(&publisher, NULL, cb_publisher_main, p);
    if (create_error != 0) {
        cb_fail(out, "pthread_create: %s", strerror(create_error));
        failed = 1;
        goto done;
    }
    publisher_started = 1;

    uint64_t received = 0;
    int64_t last_receive = p->start_ns;
    unsigned idle_polls = 0; // consecutive timeouts after the publisher finished
    while (received < count) {
        amqp_maybe_release_buffers(consumer.state);
        amqp_envelope_t envelope;
        struct timeval timeout = {.tv_sec = 0, .tv_usec = CB_LATENCY_POLL_MS * 1000};
        amqp_rpc_reply_t reply = amqp_consume_message(consumer.state, &envelope, &timeout, 0);

        if (reply.reply_type == AMQP_RESPONSE_NORMAL) {
            const int64_t now = cb_now_ns();
            int64_t sent = 0;
            int bad_body = envelope.message.body.len < sizeof sent;
            if (!bad_body) {
                memcpy(&sent, envelope.message.body.bytes, sizeof sent);
            }
            int status = amqp_basic_ack(consumer.state, envelope.channel, envelope.delivery_tag, 0);
            amqp_destroy_envelope(&envelope);
            if (bad_body) {
                cb_fail(out, "message %llu has a body shorter than 8 bytes (was the queue empty?)",
                        (unsigned long long)received);
                failed = 1;
                break;
            }
            if (status != AMQP_STATUS_OK) {
                cb_fail_status(&consumer, out, "basic.ack", status);
                failed = 1;
                break;
            }
            latencies_us[received] = (double)(now - sent) / 1e3;
            received++;
            last_receive = now;
            idle_polls = 0;
            continue;
        }
        if (reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && reply.library_error == AMQP_STATUS_TIMEOUT) {
            if (atomic_load_explicit(&p->finished, memory_order_acquire)) {
                if (p->failed) {
                    failed = 1; // the publisher's error is reported below
                    break;
                }
                if (++idle_polls >= CB_STALL_SECONDS * 1000 / CB_LATENCY_POLL_MS) {
                    cb_fail(out, "no delivery for %d s after the last publish (%llu of %llu received)",
                            CB_STALL_SECONDS, (unsigned long long)received, (unsigned long long)count);
                    failed = 1;
                    break;
                }
            }
            continue;
        }
        if (reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
            reply.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
            amqp_frame_t frame;
            int status = amqp_simple_wait_frame(consumer.state, &frame);
            if (status != AMQP_STATUS_OK) {
                cb_fail_status(&consumer, out, "reading a non-delivery frame", status);
                failed = 1;
                break;
            }
            if (cb_handle_other_frame(&consumer, &frame, out) != 0) {
                failed = 1;
                break;
            }
            continue;
        }
        (void)cb_check_reply(&consumer, out, "amqp_consume_message", reply);
        failed = 1;
        break;
    }
    // The publisher thread is done too by now (it sent the last message before it arrived here), so this is the
    // CPU of both connections' work.
    out->cpu_seconds = (double)(cb_cpu_ns() - cpu_start) / 1e9;
    out->seconds = cb_seconds_between(p->start_ns, last_receive);
    out->start_ns = p->start_ns;
    out->messages = received;

done:
    if (publisher_started) {
        atomic_store_explicit(&p->stop, 1, memory_order_relaxed);
        pthread_join(publisher, NULL);
        if (p->failed) {
            failed = 1;
            cb_fail(out, "%s", p->result.error);
        }
    }
    if (consumer.usable && consumer.channel_open && consumer_tag.bytes != NULL) {
        amqp_basic_cancel(consumer.state, CB_CHANNEL, consumer_tag);
        if (cb_check_rpc(&consumer, out, "basic.cancel") != 0) {
            failed = 1;
        }
    }
    amqp_bytes_free(consumer_tag);
    if (cb_close(&consumer, out) != 0) {
        failed = 1;
    }
    if (cb_close(&p->conn, out) != 0) {
        failed = 1;
    }
    free(body);
    free(p);
    return failed ? -1 : 0;
}

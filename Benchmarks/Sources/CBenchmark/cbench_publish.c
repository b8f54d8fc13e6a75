// Publishing throughput: plain (fire and forget) and with publisher confirms over a sliding window.
#include "cbench_internal.h"

#include <stdlib.h>
#include <string.h>

// A body of `size` bytes; calloc(0) may return NULL, so always ask for at least one byte.
static void *cb_new_body(size_t size, cbench_result *out) {
    unsigned char *body = malloc(size > 0 ? size : 1);
    if (body == NULL) {
        cb_fail(out, "out of memory for a %zu-byte body", size);
        return NULL;
    }
    memset(body, 'x', size);
    return body;
}

int cbench_publish(const cbench_target *t, const char *queue, uint64_t count, size_t size, cbench_result *out) {
    cb_result_reset(out);
    if (cb_check_common(t, queue, out) != 0) {
        return -1;
    }
    void *body_bytes = cb_new_body(size, out);
    if (body_bytes == NULL) {
        return -1;
    }
    cb_conn c;
    if (cb_connect(&c, t, out) != 0) {
        free(body_bytes);
        return -1;
    }

    const amqp_bytes_t exchange = amqp_empty_bytes; // the default exchange routes by queue name
    const amqp_bytes_t routing_key = amqp_cstring_bytes(queue);
    const amqp_bytes_t body = {.len = size, .bytes = body_bytes};

    int failed = 0;
    uint64_t published = 0;
    const int64_t cpu_start = cb_cpu_ns();
    const int64_t start = cb_now_ns();
    while (published < count) {
        // NULL properties: no flags set, so the message is transient and carries no properties.
        int status = amqp_basic_publish(c.state, CB_CHANNEL, exchange, routing_key, 0, 0, NULL, body);
        if (status != AMQP_STATUS_OK) {
            // Any publish failure may have left a partial message on the wire: the connection is done for.
            cb_fail_status(&c, out, "basic.publish", status);
            failed = 1;
            break;
        }
        published++;
    }
    // Closing the channel is an RPC, so an asynchronous error (a broker channel.close) still surfaces here; and
    // it is part of the measure, because the broker answers it only after taking every publish before it.
    if (cb_close(&c, out) != 0) {
        failed = 1;
    }
    out->cpu_seconds = (double)(cb_cpu_ns() - cpu_start) / 1e9;
    out->seconds = cb_seconds_between(start, cb_now_ns());
    out->start_ns = start;
    out->messages = published;
    free(body_bytes);
    return failed ? -1 : 0;
}

// Book-keeping of the confirm window. Delivery tags count from 1 on the channel after confirm.select; the
// pending flags of tags [oldest, next) live in a ring of `window` slots indexed by tag % window.
typedef struct {
    unsigned char *pending; // 1 while the tag's message is unconfirmed
    uint32_t window;
    uint64_t next;      // tag of the next message to publish
    uint64_t oldest;    // lowest tag not confirmed yet (== next when nothing is outstanding)
    uint64_t confirmed; // messages acked so far
} cb_confirms;

// Room for another message? The window is counted from the oldest unconfirmed tag, so the ring never wraps
// onto a live slot; with in-order confirms (what RabbitMQ sends for one queue) this is exactly "fewer than
// `window` outstanding".
static int cb_confirms_have_room(const cb_confirms *w) {
    return w->next - w->oldest < w->window;
}

static void cb_confirms_settle_one(cb_confirms *w, uint64_t tag) {
    unsigned char *slot = &w->pending[tag % w->window];
    if (*slot) {
        *slot = 0;
        w->confirmed++;
    }
}

// Applies a basic.ack. Returns -1 (after recording the error) for a tag that was never published.
static int cb_confirms_ack(cb_confirms *w, uint64_t tag, int multiple, cbench_result *out) {
    if (tag >= w->next || (tag < w->oldest && !multiple)) {
        cb_fail(out, "basic.ack for delivery tag %llu outside the window [%llu, %llu)", (unsigned long long)tag,
                (unsigned long long)w->oldest, (unsigned long long)w->next);
        return -1;
    }
    if (multiple) {
        for (uint64_t t = w->oldest; t <= tag; t++) {
            cb_confirms_settle_one(w, t);
        }
    } else {
        cb_confirms_settle_one(w, tag);
    }
    while (w->oldest < w->next && !w->pending[w->oldest % w->window]) {
        w->oldest++;
    }
    return 0;
}

// Reads and handles one frame on the confirm connection, waiting at most `timeout` ({0, 0}: only what is
// already buffered or readable). Returns 1 if a frame was handled, 0 on timeout, -1 on error (recorded).
static int cb_confirms_read(cb_conn *c, cb_confirms *w, struct timeval *timeout, cbench_result *out) {
    amqp_frame_t frame;
    amqp_maybe_release_buffers(c->state);
    int status = amqp_simple_wait_frame_noblock(c->state, &frame, timeout);
    if (status == AMQP_STATUS_TIMEOUT) {
        return 0;
    }
    if (status != AMQP_STATUS_OK) {
        cb_fail_status(c, out, "waiting for confirms", status);
        return -1;
    }
    if (frame.frame_type == AMQP_FRAME_METHOD && frame.channel == CB_CHANNEL) {
        if (frame.payload.method.id == AMQP_BASIC_ACK_METHOD) {
            const amqp_basic_ack_t *ack = frame.payload.method.decoded;
            return cb_confirms_ack(w, ack->delivery_tag, ack->multiple, out) == 0 ? 1 : -1;
        }
        if (frame.payload.method.id == AMQP_BASIC_NACK_METHOD) {
            const amqp_basic_nack_t *nack = frame.payload.method.decoded;
            cb_fail(out, "broker nacked delivery tag %llu%s", (unsigned long long)nack->delivery_tag,
                    nack->multiple ? " (multiple)" : "");
            return -1;
        }
    }
    return cb_handle_other_frame(c, &frame, out) == 0 ? 1 : -1;
}

int cbench_publish_confirmed(const cbench_target *t, const char *queue, uint64_t count, size_t size,
                             uint32_t window, cbench_result *out) {
    cb_result_reset(out);
    if (cb_check_common(t, queue, out) != 0) {
        return -1;
    }
    if (window == 0) {
        cb_fail(out, "window must be at least 1");
        return -1;
    }
    cb_confirms w = {.pending = calloc(window, 1), .window = window, .next = 1, .oldest = 1, .confirmed = 0};
    void *body_bytes = cb_new_body(size, out);
    if (w.pending == NULL || body_bytes == NULL) {
        cb_fail(out, "out of memory");
        free(w.pending);
        free(body_bytes);
        return -1;
    }
    cb_conn c;
    if (cb_connect(&c, t, out) != 0) {
        free(w.pending);
        free(body_bytes);
        return -1;
    }
    int failed = 0;
    amqp_confirm_select(c.state, CB_CHANNEL);
    if (cb_check_rpc(&c, out, "confirm.select") != 0) {
        failed = 1;
        goto done;
    }

    const amqp_bytes_t exchange = amqp_empty_bytes;
    const amqp_bytes_t routing_key = amqp_cstring_bytes(queue);
    const amqp_bytes_t body = {.len = size, .bytes = body_bytes};
    uint64_t published = 0;

    const int64_t cpu_start = cb_cpu_ns();
    const int64_t start = cb_now_ns();
    while (w.confirmed < count) {
        if (published < count && cb_confirms_have_room(&w)) {
            int status = amqp_basic_publish(c.state, CB_CHANNEL, exchange, routing_key, 0, 0, NULL, body);
            if (status != AMQP_STATUS_OK) {
                cb_fail_status(&c, out, "basic.publish", status);
                failed = 1;
                break;
            }
            w.pending[w.next % w.window] = 1;
            w.next++;
            published++;
            continue;
        }
        // The window is full (or everything is published): block until a frame arrives...
        struct timeval stall = {.tv_sec = CB_STALL_SECONDS, .tv_usec = 0};
        int got = cb_confirms_read(&c, &w, &stall, out);
        if (got == 0) {
            cb_fail(out, "no confirm within %d s (%llu of %llu confirmed)", CB_STALL_SECONDS,
                    (unsigned long long)w.confirmed, (unsigned long long)count);
        }
        if (got <= 0) {
            failed = 1;
            break;
        }
        // ...then take every confirm the library already holds in its input buffer (no waiting: a frame cut
        // off at the end of the buffer gets one non-blocking read), so the window is as empty as it can be
        // before publishing resumes.
        while (got > 0 && (amqp_frames_enqueued(c.state) || amqp_data_in_buffer(c.state))) {
            struct timeval now = {.tv_sec = 0, .tv_usec = 0};
            got = cb_confirms_read(&c, &w, &now, out);
        }
        if (got < 0) {
            failed = 1;
            break;
        }
    }
    const int64_t end = cb_now_ns();

    out->cpu_seconds = (double)(cb_cpu_ns() - cpu_start) / 1e9;
    out->seconds = cb_seconds_between(start, end);
    out->start_ns = start;
    out->messages = w.confirmed;

done:
    if (cb_close(&c, out) != 0) {
        failed = 1;
    }
    free(w.pending);
    free(body_bytes);
    return failed ? -1 : 0;
}

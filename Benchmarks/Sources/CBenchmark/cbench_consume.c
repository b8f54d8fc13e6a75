// Consuming throughput: basic.consume with a prefetch window, a basic.ack per message or a multiple one every N.
//
// Written like the obvious rabbitmq-c consumer (Benchmarks/Check/obvious.c) and checked against it: one
// amqp_consume_message per delivery and the acks sent as they are due; the only additions are a timeout, so a
// stalled queue ends in an error instead of a hang, and the handling of frames that are not deliveries.
#include "cbench_internal.h"

#include <stdlib.h>
#include <string.h>

// How long a single amqp_consume_message call may wait: short enough to notice a stalled queue promptly, long
// enough never to matter while messages flow.
#define CB_CONSUME_POLL_MS 250

int cbench_consume(const cbench_target *t, const char *queue, uint64_t count, uint16_t prefetch, uint32_t ack_every,
                   cbench_result *out) {
    cb_result_reset(out);
    if (cb_check_common(t, queue, out) != 0) {
        return -1;
    }
    if (ack_every == 0) {
        cb_fail(out, "ack_every must be at least 1");
        return -1;
    }
    cb_conn c;
    if (cb_connect(&c, t, out) != 0) {
        return -1;
    }
    int failed = 0;
    amqp_bytes_t consumer_tag = amqp_empty_bytes;

    amqp_basic_qos(c.state, CB_CHANNEL, 0, prefetch, 0);
    if (cb_check_rpc(&c, out, "basic.qos") != 0) {
        failed = 1;
        goto done;
    }
    amqp_basic_consume_ok_t *consume_ok = amqp_basic_consume(c.state, CB_CHANNEL, amqp_cstring_bytes(queue),
                                                             amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
    if (cb_check_rpc(&c, out, "basic.consume") != 0) {
        failed = 1;
        goto done;
    }
    const int64_t cpu_start = cb_cpu_ns();
    const int64_t start = cb_now_ns();
    // The reply lives in the connection's memory pool until the next amqp_maybe_release_buffers: keep a copy.
    consumer_tag = amqp_bytes_malloc_dup(consume_ok->consumer_tag);
    if (consumer_tag.bytes == NULL) {
        cb_fail(out, "out of memory for the consumer tag");
        failed = 1;
        goto done;
    }

    uint64_t received = 0;
    unsigned idle_polls = 0; // consecutive amqp_consume_message timeouts
    int64_t end = start;
    while (received < count) {
        amqp_maybe_release_buffers(c.state);
        amqp_envelope_t envelope;
        struct timeval timeout = {.tv_sec = 0, .tv_usec = CB_CONSUME_POLL_MS * 1000};
        amqp_rpc_reply_t reply = amqp_consume_message(c.state, &envelope, &timeout, 0);

        if (reply.reply_type == AMQP_RESPONSE_NORMAL) {
            received++;
            int status = AMQP_STATUS_OK;
            if (ack_every == 1) {
                status = amqp_basic_ack(c.state, envelope.channel, envelope.delivery_tag, 0);
            } else if (received % ack_every == 0 || received == count) {
                status = amqp_basic_ack(c.state, envelope.channel, envelope.delivery_tag, 1);
            }
            amqp_destroy_envelope(&envelope);
            if (status != AMQP_STATUS_OK) {
                cb_fail_status(&c, out, "basic.ack", status);
                failed = 1;
                break;
            }
            idle_polls = 0;
            if (received == count) {
                end = cb_now_ns();
            }
            continue;
        }
        if (reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && reply.library_error == AMQP_STATUS_TIMEOUT) {
            // Nothing arrived; the connection is fine. Give up only if the queue stays dry for long.
            if (++idle_polls >= CB_STALL_SECONDS * 1000 / CB_CONSUME_POLL_MS) {
                cb_fail(out, "no delivery for %d s after %llu of %llu messages (queue has fewer messages?)",
                        CB_STALL_SECONDS, (unsigned long long)received, (unsigned long long)count);
                failed = 1;
                break;
            }
            continue;
        }
        if (reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
            reply.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
            // A frame other than a delivery is waiting (for instance a broker channel.close): take it out of
            // the library's queue, or amqp_consume_message keeps returning it.
            amqp_frame_t frame;
            int status = amqp_simple_wait_frame(c.state, &frame);
            if (status != AMQP_STATUS_OK) {
                cb_fail_status(&c, out, "reading a non-delivery frame", status);
                failed = 1;
                break;
            }
            if (cb_handle_other_frame(&c, &frame, out) != 0) {
                failed = 1;
                break;
            }
            continue;
        }
        // Any other library error leaves the connection unusable; the server exception case does not happen
        // with amqp_consume_message (broker methods come back as UNEXPECTED_STATE), but report it if it does.
        (void)cb_check_reply(&c, out, "amqp_consume_message", reply);
        failed = 1;
        break;
    }
    out->cpu_seconds = (double)(cb_cpu_ns() - cpu_start) / 1e9;
    out->seconds = cb_seconds_between(start, received == count ? end : cb_now_ns());
    out->start_ns = start;
    out->messages = received;

    if (c.usable && c.channel_open) {
        // Deliveries that arrive before cancel-ok are queued by the library and simply dropped: with exactly
        // `count` messages in the queue there are none, and unacked ones go back to the queue at channel.close.
        amqp_basic_cancel(c.state, CB_CHANNEL, consumer_tag);
        if (cb_check_rpc(&c, out, "basic.cancel") != 0) {
            failed = 1;
        }
    }

done:
    amqp_bytes_free(consumer_tag);
    if (cb_close(&c, out) != 0) {
        failed = 1;
    }
    return failed ? -1 : 0;
}

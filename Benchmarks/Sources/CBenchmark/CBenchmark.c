// Shared helpers of the C benchmark: clock, error reporting, connection setup and clean teardown.
#include "cbench_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int64_t cb_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + (int64_t)ts.tv_nsec;
}

int64_t cb_cpu_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + (int64_t)ts.tv_nsec;
}

double cb_seconds_between(int64_t start_ns, int64_t end_ns) {
    return (double)(end_ns - start_ns) / 1e9;
}

void cb_result_reset(cbench_result *out) {
    out->seconds = 0;
    out->start_ns = 0;
    out->cpu_seconds = 0;
    out->messages = 0;
    out->error[0] = '\0';
}

void cb_fail(cbench_result *out, const char *format, ...) {
    if (out->error[0] != '\0') {
        return;
    }
    va_list args;
    va_start(args, format);
    vsnprintf(out->error, sizeof out->error, format, args);
    va_end(args);
    if (out->error[0] == '\0') { // never leave an error unreported because the format produced nothing
        snprintf(out->error, sizeof out->error, "unknown error");
    }
}

void cb_fail_status(cb_conn *c, cbench_result *out, const char *what, int status) {
    cb_fail(out, "%s: %s (%d)", what, amqp_error_string2(status), status);
    // A library error leaves the connection in an unknown state (possibly mid-frame): don't talk to it again.
    c->usable = 0;
    c->channel_open = 0;
}

// Answers a broker channel.close so the channel is really closed and the connection stays clean.
static void cb_answer_channel_close(cb_conn *c, amqp_channel_t channel) {
    amqp_channel_close_ok_t ok;
    memset(&ok, 0, sizeof ok);
    if (amqp_send_method(c->state, channel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok) != AMQP_STATUS_OK) {
        c->usable = 0;
    }
    if (channel == CB_CHANNEL) {
        c->channel_open = 0;
    }
}

// Answers a broker connection.close; the broker then closes the socket, so nothing more can be sent.
static void cb_answer_connection_close(cb_conn *c) {
    amqp_connection_close_ok_t ok;
    memset(&ok, 0, sizeof ok);
    (void)amqp_send_method(c->state, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
    c->usable = 0;
    c->channel_open = 0;
}

int cb_check_reply(cb_conn *c, cbench_result *out, const char *what, amqp_rpc_reply_t reply) {
    switch (reply.reply_type) {
    case AMQP_RESPONSE_NORMAL:
        return 0;
    case AMQP_RESPONSE_NONE:
        cb_fail(out, "%s: no reply from the broker", what);
        c->usable = 0;
        c->channel_open = 0;
        return -1;
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        cb_fail_status(c, out, what, reply.library_error);
        return -1;
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
            const amqp_channel_close_t *close = reply.reply.decoded;
            cb_fail(out, "%s: broker closed the channel: %u %.*s", what, (unsigned)close->reply_code,
                    (int)close->reply_text.len, (const char *)close->reply_text.bytes);
            cb_answer_channel_close(c, CB_CHANNEL);
        } else if (reply.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
            const amqp_connection_close_t *close = reply.reply.decoded;
            cb_fail(out, "%s: broker closed the connection: %u %.*s", what, (unsigned)close->reply_code,
                    (int)close->reply_text.len, (const char *)close->reply_text.bytes);
            cb_answer_connection_close(c);
        } else {
            cb_fail(out, "%s: unexpected server method 0x%08x", what, (unsigned)reply.reply.id);
            c->usable = 0;
            c->channel_open = 0;
        }
        return -1;
    }
    cb_fail(out, "%s: unknown reply type %d", what, (int)reply.reply_type);
    c->usable = 0;
    c->channel_open = 0;
    return -1;
}

int cb_check_rpc(cb_conn *c, cbench_result *out, const char *what) {
    return cb_check_reply(c, out, what, amqp_get_rpc_reply(c->state));
}

int cb_handle_other_frame(cb_conn *c, const amqp_frame_t *frame, cbench_result *out) {
    if (frame->frame_type == AMQP_FRAME_HEARTBEAT) {
        return 0; // heartbeats queued by amqp_basic_publish come out here; the library already noted them
    }
    if (frame->frame_type != AMQP_FRAME_METHOD) {
        cb_fail(out, "unexpected frame type %u on channel %u", (unsigned)frame->frame_type,
                (unsigned)frame->channel);
        return -1;
    }
    switch (frame->payload.method.id) {
    case AMQP_CONNECTION_BLOCKED_METHOD:
    case AMQP_CONNECTION_UNBLOCKED_METHOD:
        return 0; // only sent when announced; publishing just blocks in the kernel meanwhile
    case AMQP_CHANNEL_CLOSE_METHOD: {
        const amqp_channel_close_t *close = frame->payload.method.decoded;
        cb_fail(out, "broker closed channel %u: %u %.*s", (unsigned)frame->channel, (unsigned)close->reply_code,
                (int)close->reply_text.len, (const char *)close->reply_text.bytes);
        cb_answer_channel_close(c, frame->channel);
        return -1;
    }
    case AMQP_CONNECTION_CLOSE_METHOD: {
        const amqp_connection_close_t *close = frame->payload.method.decoded;
        cb_fail(out, "broker closed the connection: %u %.*s", (unsigned)close->reply_code,
                (int)close->reply_text.len, (const char *)close->reply_text.bytes);
        cb_answer_connection_close(c);
        return -1;
    }
    case AMQP_BASIC_CANCEL_METHOD:
        cb_fail(out, "broker cancelled the consumer on channel %u", (unsigned)frame->channel);
        return -1;
    default:
        cb_fail(out, "unexpected method 0x%08x on channel %u", (unsigned)frame->payload.method.id,
                (unsigned)frame->channel);
        return -1;
    }
}

int cb_connect(cb_conn *c, const cbench_target *t, cbench_result *out) {
    c->state = NULL;
    c->usable = 0;
    c->channel_open = 0;

    c->state = amqp_new_connection();
    if (c->state == NULL) {
        cb_fail(out, "amqp_new_connection: out of memory");
        return -1;
    }
    amqp_socket_t *socket = amqp_tcp_socket_new(c->state); // owned by the connection state
    if (socket == NULL) {
        cb_fail(out, "amqp_tcp_socket_new: out of memory");
        goto fail;
    }
    int status = amqp_socket_open(socket, t->host, t->port);
    if (status != AMQP_STATUS_OK) {
        cb_fail(out, "amqp_socket_open %s:%d: %s (%d)", t->host, t->port, amqp_error_string2(status), status);
        goto fail;
    }
    amqp_rpc_reply_t login = amqp_login(c->state, t->vhost, 0, CB_FRAME_MAX, CB_HEARTBEAT_SECONDS,
                                        AMQP_SASL_METHOD_PLAIN, t->user, t->password);
    if (login.reply_type != AMQP_RESPONSE_NORMAL) {
        // Whatever went wrong, the connection is not usable for a clean close afterwards (c->usable is 0).
        (void)cb_check_reply(c, out, "amqp_login", login);
        goto fail;
    }
    c->usable = 1;
    amqp_channel_open(c->state, CB_CHANNEL);
    if (cb_check_rpc(c, out, "channel.open") != 0) {
        goto fail;
    }
    c->channel_open = 1;
    return 0;

fail:
    (void)cb_close(c, out);
    return -1;
}

int cb_close(cb_conn *c, cbench_result *out) {
    if (c->state == NULL) {
        return 0;
    }
    int result = 0;
    if (c->usable && c->channel_open) {
        amqp_channel_close(c->state, CB_CHANNEL, AMQP_REPLY_SUCCESS);
        if (cb_check_rpc(c, out, "channel.close") != 0) {
            result = -1;
        }
        c->channel_open = 0;
    }
    if (c->usable) {
        amqp_connection_close(c->state, AMQP_REPLY_SUCCESS);
        if (cb_check_rpc(c, out, "connection.close") != 0) {
            result = -1;
        }
        c->usable = 0;
    }
    int status = amqp_destroy_connection(c->state);
    c->state = NULL;
    if (status != AMQP_STATUS_OK) {
        cb_fail(out, "amqp_destroy_connection: %s (%d)", amqp_error_string2(status), status);
        result = -1;
    }
    return result;
}

int cb_check_common(const cbench_target *t, const char *queue, cbench_result *out) {
    if (t == NULL || t->host == NULL || t->user == NULL || t->password == NULL || t->vhost == NULL) {
        cb_fail(out, "invalid target: host, user, password and vhost are required");
        return -1;
    }
    if (t->port <= 0 || t->port > 65535) {
        cb_fail(out, "invalid port %d", t->port);
        return -1;
    }
    if (queue == NULL || strlen(queue) > 255) {
        cb_fail(out, "invalid queue name (required, at most 255 bytes)");
        return -1;
    }
    return 0;
}

// The check program of amqp-bench's C side (issue 12): rabbitmq-c used the obvious way, with nothing measured but
// the loop, so that amqp-bench's C figures can be compared with what a plain program reaches on the same broker.
// Not part of any target; build and run by hand:
//
//     cc -O2 -o /tmp/obvious Benchmarks/Check/obvious.c -lrabbitmq
//     /tmp/obvious publish QUEUE 200000     # fills QUEUE; msgs/s until the last publish returned, and until the
//                                           # broker held them all (amqp-bench's rule for its publish measure)
//     /tmp/obvious consume QUEUE 200000     # drains it: prefetch 1000, one ack per message
//     /tmp/obvious consume-multiple QUEUE 200000   # the same with a multiple ack every 100th message
//
// Both declare QUEUE (non-durable) if it does not exist; consume deletes it once drained. Consuming starts only once
// the queue holds COUNT messages, as in amqp-bench, so that it does not compete with the broker still taking them.
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

// Polls the queue's message count until it is `count` (a passive queue.declare every millisecond).
static void wait_for_count(amqp_connection_state_t conn, const char *queue, long count) {
    for (;;) {
        amqp_queue_declare_ok_t *ok =
            amqp_queue_declare(conn, 1, amqp_cstring_bytes(queue), 1, 0, 0, 0, amqp_empty_table);
        if (ok == NULL) {
            fprintf(stderr, "passive queue.declare failed\n");
            exit(1);
        }
        if ((long)ok->message_count == count) {
            return;
        }
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
}

static void die_on_reply(amqp_rpc_reply_t reply, const char *what) {
    if (reply.reply_type != AMQP_RESPONSE_NORMAL) {
        fprintf(stderr, "%s failed (reply type %d)\n", what, (int)reply.reply_type);
        exit(1);
    }
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s publish|consume QUEUE COUNT\n", argv[0]);
        return 2;
    }
    const char *queue = argv[2];
    const long count = atol(argv[3]);
    amqp_connection_state_t conn = amqp_new_connection();
    amqp_socket_t *socket = amqp_tcp_socket_new(conn);
    if (amqp_socket_open(socket, "127.0.0.1", 5672) != AMQP_STATUS_OK) {
        fprintf(stderr, "cannot connect\n");
        return 1;
    }
    die_on_reply(amqp_login(conn, "/", 0, 131072, 60, AMQP_SASL_METHOD_PLAIN, "guest", "guest"), "login");
    amqp_channel_open(conn, 1);
    die_on_reply(amqp_get_rpc_reply(conn), "channel.open");
    amqp_queue_declare(conn, 1, amqp_cstring_bytes(queue), 0, 0, 0, 0, amqp_empty_table);
    die_on_reply(amqp_get_rpc_reply(conn), "queue.declare");

    double start = now_seconds(), cpu = cpu_seconds();
    if (strcmp(argv[1], "publish") == 0) {
        char body[100];
        memset(body, 'x', sizeof body);
        amqp_bytes_t bytes = {.len = sizeof body, .bytes = body};
        for (long i = 0; i < count; i++) {
            amqp_basic_publish(conn, 1, amqp_empty_bytes, amqp_cstring_bytes(queue), 0, 0, NULL, bytes);
        }
        double returned = now_seconds() - start;
        double cpu_used = cpu_seconds() - cpu;
        wait_for_count(conn, queue, count);
        double held = now_seconds() - start;
        printf("publish %ld msgs: %.0f msgs/s until the last publish returned (CPU %.2f µs/msg), "
               "%.0f msgs/s until the broker held them all\n",
               count, count / returned, cpu_used * 1e6 / count, count / held);
    } else {
        const long ack_every = strcmp(argv[1], "consume-multiple") == 0 ? 100 : 1;
        wait_for_count(conn, queue, count);
        amqp_basic_qos(conn, 1, 0, 1000, 0);
        die_on_reply(amqp_get_rpc_reply(conn), "basic.qos");
        amqp_basic_consume(conn, 1, amqp_cstring_bytes(queue), amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
        die_on_reply(amqp_get_rpc_reply(conn), "basic.consume");
        start = now_seconds();
        cpu = cpu_seconds();
        for (long i = 0; i < count; i++) {
            amqp_envelope_t envelope;
            amqp_maybe_release_buffers(conn);
            die_on_reply(amqp_consume_message(conn, &envelope, NULL, 0), "consume");
            if (ack_every == 1) {
                amqp_basic_ack(conn, 1, envelope.delivery_tag, 0);
            } else if ((i + 1) % ack_every == 0 || i + 1 == count) {
                amqp_basic_ack(conn, 1, envelope.delivery_tag, 1);
            }
            amqp_destroy_envelope(&envelope);
        }
        double seconds = now_seconds() - start;
        double cpu_used = cpu_seconds() - cpu;
        printf("%s %ld msgs in %.3f s = %.0f msgs/s, CPU %.2f µs/msg\n", argv[1], count, seconds, count / seconds,
               cpu_used * 1e6 / count);
    }
    if (strcmp(argv[1], "publish") != 0) {
        amqp_queue_delete(conn, 1, amqp_cstring_bytes(queue), 0, 0);
    }
    amqp_channel_close(conn, 1, AMQP_REPLY_SUCCESS);
    amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(conn);
    return 0;
}

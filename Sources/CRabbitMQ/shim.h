// The only header of the C module: it picks the rabbitmq-c header layout that is installed and wraps what
// Swift cannot call directly (C variadic functions).
#ifndef CRABBITMQ_SHIM_H
#define CRABBITMQ_SHIM_H

// rabbitmq-c 0.12 moved its headers under rabbitmq-c/; 0.11 (Debian 12) installs them at the top level.
#if __has_include(<rabbitmq-c/amqp.h>)
#include <rabbitmq-c/amqp.h>
#include <rabbitmq-c/tcp_socket.h>
#include <rabbitmq-c/ssl_socket.h>
#else
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <amqp_ssl_socket.h>
#endif

#include <openssl/ssl.h>

// amqp_login_with_properties is variadic (the SASL arguments), so Swift cannot call it.
static inline amqp_rpc_reply_t rmq_login_plain(amqp_connection_state_t state, const char *vhost, int channel_max,
                                               int frame_max, int heartbeat, const amqp_table_t *properties,
                                               const char *user, const char *password) {
    return amqp_login_with_properties(state, vhost, channel_max, frame_max, heartbeat, properties,
                                      AMQP_SASL_METHOD_PLAIN, user, password);
}

static inline amqp_rpc_reply_t rmq_login_external(amqp_connection_state_t state, const char *vhost, int channel_max,
                                                  int frame_max, int heartbeat, const amqp_table_t *properties,
                                                  const char *identity) {
    return amqp_login_with_properties(state, vhost, channel_max, frame_max, heartbeat, properties,
                                      AMQP_SASL_METHOD_EXTERNAL, identity);
}

// rabbitmq-c 0.11 has no call to load the system trust store (added in 0.14 as
// amqp_ssl_socket_enable_default_verify_paths), so reach the OpenSSL context it exposes.
static inline int rmq_ssl_use_default_verify_paths(amqp_socket_t *socket) {
    SSL_CTX *context = (SSL_CTX *)amqp_ssl_socket_get_context(socket);
    return context != NULL && SSL_CTX_set_default_verify_paths(context) == 1 ? 0 : -1;
}

// Names the calling thread (a connection's I/O thread) for ps, top and debuggers; Linux keeps 15 bytes.
#if defined(__linux__)
#include <sys/prctl.h>
static inline void rmq_name_current_thread(const char *name) { prctl(PR_SET_NAME, name, 0, 0, 0); }
#elif defined(__APPLE__)
#include <pthread.h>
static inline void rmq_name_current_thread(const char *name) { pthread_setname_np(name); }
#else
static inline void rmq_name_current_thread(const char *name) { (void)name; }
#endif

// A timeval made here: Swift attributes the struct to whichever system module imported it first (Dispatch's, on
// Linux), so with member import visibility the C library's own module offers the initializer.
static inline struct timeval rmq_timeval(long seconds, long microseconds) {
    struct timeval value = {seconds, microseconds};
    return value;
}

#endif

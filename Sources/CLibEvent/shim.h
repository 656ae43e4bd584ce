#ifndef GATEWAY_CLIBEVENT_SHIM_H
#define GATEWAY_CLIBEVENT_SHIM_H
// event2/event-config.h defines _GNU_SOURCE: pull in the system headers that
// need it first, or debug builds fail on fd_set.
#include <sys/types.h>
#include <sys/select.h>
#include <sys/time.h>
#include <sys/socket.h>
#include <signal.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
// Outbound HTTPS (HTTPClient): evhttp over bufferevent_openssl, async DNS.
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

// evsignal_new is a macro: Swift cannot see it.
static inline struct event *gw_evsignal_new(struct event_base *base, int signum,
                                            event_callback_fn cb, void *arg) {
    return event_new(base, signum, EV_SIGNAL | EV_PERSIST, cb, arg);
}

// Iterating a TAILQ of headers is macro-only in C.
static inline struct evkeyval *gw_evkeyvalq_first(struct evkeyvalq *q) { return q->tqh_first; }
static inline struct evkeyval *gw_evkeyval_next(struct evkeyval *kv) { return kv->next.tqe_next; }

// SSL_set_tlsext_host_name is a macro (SSL_ctrl): Swift cannot see it.
static inline int gw_SSL_set_tlsext_host_name(SSL *ssl, const char *name) {
    return (int)SSL_set_tlsext_host_name(ssl, name);
}

// SSL_CTX_set_min_proto_version is a macro (SSL_CTX_ctrl): Swift cannot see it.
static inline int gw_SSL_CTX_set_min_proto_version(SSL_CTX *ctx, int version) {
    return (int)SSL_CTX_set_min_proto_version(ctx, version);
}

#endif

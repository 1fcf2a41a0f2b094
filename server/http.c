/* http.c - libmicrohttpd glue (see http.h): reads each request's body within
 * the limit, hands it to the routes, and sends their reply, whole or as a
 * stream of pieces produced on the connection's own thread. */
#include "http.h"
#include "metrics.h"

#include <microhttpd.h>

#include <netdb.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct http_server {
    struct MHD_Daemon *d;
    server *srv;
    http_params p;
    _Atomic int in_flight;
    int quiesced;
};

/* What one request collects across the access handler's calls. */
typedef struct conn_state {
    char *body;
    size_t len, cap;
    int too_large;
} conn_state;

typedef struct stream_glue {
    ssize_t (*read)(void *cls, char *buf, size_t max);
    void (*free)(void *cls);
    void *cls;
    struct MHD_Connection *conn;
    unsigned timeout_s;
} stream_glue;

/* The idle timeout is for clients: time the server spends computing (a
 * request waiting in the queue, a long generation) must not count.
 * libmicrohttpd restarts a connection's idle clock when its timeout goes
 * from 0 (none) to a value, hence the two calls. */
static void restart_idle_clock(struct MHD_Connection *c, unsigned timeout_s) {
    MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, 0u);
    if (timeout_s) MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, timeout_s);
}

static ssize_t glue_read(void *cls, uint64_t pos, char *buf, size_t max) {
    stream_glue *g = cls;
    ssize_t n = g->read(g->cls, buf, max);
    restart_idle_clock(g->conn, g->timeout_s);
    return n > 0 ? n : (ssize_t)MHD_CONTENT_READER_END_OF_STREAM;
}

static void glue_free(void *cls) {
    stream_glue *g = cls;
    g->free(g->cls);
    free(g);
}

static enum MHD_Result send_reply(http_server *hs, struct MHD_Connection *c, const char *path,
                                  http_reply *rep) {
    struct MHD_Response *r = NULL;
    if (rep->stream_read) {
        stream_glue *g = malloc(sizeof *g);
        if (g) {
            *g = (stream_glue){rep->stream_read, rep->stream_free, rep->stream_cls, c,
                               (unsigned)hs->p.timeout_s};
            r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, glue_read, g,
                                                  glue_free);
            if (!r) free(g);
        }
        if (!r) {
            rep->stream_free(rep->stream_cls);
            return MHD_NO;
        }
        MHD_add_response_header(r, "Cache-Control", "no-cache");
        MHD_add_response_header(r, "X-Accel-Buffering", "no"); /* nginx: pass events on at once */
    } else {
        if (!rep->body) reply_text(rep, rep->status ? rep->status : 500, "text/plain", "");
        r = MHD_create_response_from_buffer(rep->body_len, rep->body, MHD_RESPMEM_MUST_FREE);
        if (!r) {
            free(rep->body);
            return MHD_NO;
        }
        rep->body = NULL;
    }
    if (rep->content_type) MHD_add_response_header(r, "Content-Type", rep->content_type);
    if (rep->allow) MHD_add_response_header(r, "Allow", rep->allow);
    if (rep->retry_after > 0) {
        char s[16];
        snprintf(s, sizeof s, "%d", rep->retry_after);
        MHD_add_response_header(r, "Retry-After", s);
    }
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)rep->status, r);
    MHD_destroy_response(r);
    metrics_request(hs->srv->metrics, path, rep->status);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
    http_server *hs = cls;
    conn_state *cs = *con_cls;
    if (!cs) {
        if (!(cs = calloc(1, sizeof *cs))) return MHD_NO;
        *con_cls = cs;
        hs->in_flight++;
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > hs->p.max_body) {
            /* answer at once: the body is not read, and the connection closes */
            http_reply rep = {0};
            reply_error(&rep, 413, NULL, "the body is %s bytes; the limit is %zu", cl,
                        hs->p.max_body);
            cs->too_large = 2;
            return send_reply(hs, c, url, &rep);
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (cs->too_large) return MHD_YES;
        if (cs->len + n > hs->p.max_body) {
            cs->too_large = 1; /* chunked upload past the limit: drop what came */
            free(cs->body);
            cs->body = NULL;
            cs->len = cs->cap = 0;
            return MHD_YES;
        }
        if (cs->len + n + 1 > cs->cap) {
            size_t cap = (cs->len + n + 1) * 2;
            if (cap > hs->p.max_body + 1) cap = hs->p.max_body + 1;
            char *b = realloc(cs->body, cap);
            if (!b) return MHD_NO;
            cs->body = b;
            cs->cap = cap;
        }
        memcpy(cs->body + cs->len, upload_data, n);
        cs->len += n;
        cs->body[cs->len] = '\0';
        return MHD_YES;
    }
    if (cs->too_large == 2) return MHD_YES; /* the 413 is on its way */
    http_reply rep = {0};
    if (cs->too_large) {
        reply_error(&rep, 413, NULL, "the body is larger than the limit of %zu bytes",
                    hs->p.max_body);
    } else {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        http_request req = {
            .method = method,
            .path = url,
            .body = cs->body ? cs->body : "",
            .body_len = cs->len,
            .authorization = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization"),
            .client_fd = ci ? ci->connect_fd : -1,
            .srv = hs->srv,
        };
        restart_idle_clock(c, 0); /* no idle timeout while the request is computed */
        routes_dispatch(&req, &rep);
        restart_idle_clock(c, (unsigned)hs->p.timeout_s);
    }
    return send_reply(hs, c, url, &rep);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    http_server *hs = cls;
    conn_state *cs = *con_cls;
    if (!cs) return;
    free(cs->body);
    free(cs);
    *con_cls = NULL;
    hs->in_flight--;
}

http_server *http_start(server *srv, http_params p, char *why, size_t why_size) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE}, *ai = NULL;
    char port[16];
    snprintf(port, sizeof port, "%d", p.port);
    int rc = getaddrinfo(p.host, port, &hints, &ai);
    if (rc != 0) {
        snprintf(why, why_size, "--host %s: %s", p.host, gai_strerror(rc));
        return NULL;
    }
    http_server *hs = calloc(1, sizeof *hs);
    if (!hs) {
        freeaddrinfo(ai);
        snprintf(why, why_size, "out of memory");
        return NULL;
    }
    hs->srv = srv;
    hs->p = p;
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_POLL | MHD_USE_ITC;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    hs->d = MHD_start_daemon(
        flags, (uint16_t)p.port, NULL, NULL, on_request, hs, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)p.max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)p.timeout_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT, p.max_header,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, hs, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!hs->d) {
        snprintf(why, why_size, "cannot listen on %s port %d (in use, or not an address of this "
                 "machine?)", p.host, p.port);
        free(hs);
        return NULL;
    }
    return hs;
}

int http_port(const http_server *h) {
    const union MHD_DaemonInfo *i = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    return i ? i->port : -1;
}

void http_quiesce(http_server *h) {
    if (h->quiesced) return;
    MHD_socket fd = MHD_quiesce_daemon(h->d);
    if (fd != MHD_INVALID_SOCKET) close(fd);
    h->quiesced = 1;
}

int http_in_flight(const http_server *h) { return h->in_flight; }

void http_stop(http_server *h) {
    if (!h) return;
    MHD_stop_daemon(h->d);
    free(h);
}

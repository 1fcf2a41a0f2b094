/* http.h - the HTTP layer on libmicrohttpd: one thread per connection (a
 * slow client holds only its own), a connection cap, an idle timeout, header
 * and body size limits; each complete request goes to routes_dispatch. */
#ifndef LSC_SERVER_HTTP_H
#define LSC_SERVER_HTTP_H

#include "server.h"

typedef struct http_server http_server;

typedef struct http_params {
    const char *host;      /* a numeric IPv4/IPv6 address or a name to resolve */
    int port;              /* 0: a free port */
    int max_connections;
    int timeout_s;         /* a connection idle this long is closed */
    size_t max_body;       /* bytes; larger bodies get 413 */
    size_t max_header;     /* bytes of request line + headers */
} http_params;

/* Starts listening; on failure writes a one-line reason into `why`. */
http_server *http_start(server *srv, http_params p, char *why, size_t why_size);
int http_port(const http_server *h);
/* Stops accepting new connections; requests already read carry on. */
void http_quiesce(http_server *h);
/* Requests being answered now. */
int http_in_flight(const http_server *h);
/* Closes every connection and frees. NULL is fine. */
void http_stop(http_server *h);

#endif

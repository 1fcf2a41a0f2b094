/* server.h - what the parts of `logitscope serve` share: the loaded model,
 * the request and reply of one HTTP exchange as the routes see them (no
 * libmicrohttpd types: http.c converts, and the fuzz target calls the routes
 * directly), and the route table. Built only on the public header. */
#ifndef LSC_SERVER_H
#define LSC_SERVER_H

#include "logitscope.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct cJSON;
struct scheduler;
struct metrics;

/* Everything the routes need, shared by every connection thread. */
typedef struct server {
    lsc_model *model;
    lsc_tokenizer *tok;
    pthread_mutex_t tok_mu; /* lsc_tokenizer_encode is not thread-safe (its cache) */
    const char *model_name; /* as clients name it: --served-model-name, else --model */
    const char *model_dir;
    const char *api_key;    /* NULL: no key required */
    int n_ctx, n_vocab, eos_id;
    int max_seqs_per_request; /* a request may not ask for more sequences than the queue holds */
    int n_threads;          /* --threads: the explorer's context (0: all cores) */
    time_t started;
    _Atomic int shutting_down; /* new requests get 503 while in-flight ones finish */
    struct scheduler *sched;
    struct metrics *metrics;
} server;

/* One request as a route sees it: the whole body has been read. */
typedef struct http_request {
    const char *method;
    const char *path;      /* without the query string */
    const char *body;      /* NUL-terminated; may hold NULs before body_len */
    size_t body_len;
    const char *authorization; /* the Authorization header, or NULL */
    int client_fd;         /* the socket, to notice a client that went away; -1: none */
    server *srv;
} http_request;

/* A reply: a whole body, or a stream whose pieces come from read() on the
 * connection's thread (Server-Sent Events). */
typedef struct http_reply {
    int status;
    const char *content_type;
    char *body; /* malloc'd, freed by whoever sends it */
    size_t body_len;
    int retry_after;   /* > 0: a Retry-After header (503) */
    const char *allow; /* a 405's Allow header */
    /* streamed body: read() blocks until bytes come, returns how many (> 0)
     * or 0 at the end; free() is called once the connection is done with it
     * (also when the client went away: it cancels the work) */
    ssize_t (*stream_read)(void *cls, char *buf, size_t max);
    void (*stream_free)(void *cls);
    void *stream_cls;
} http_reply;

typedef void (*route_fn)(const http_request *req, http_reply *rep);

typedef struct route {
    const char *method; /* "GET", "POST" */
    const char *path;   /* exact path */
    route_fn fn;
    int open;           /* 1: answered without the API key (/health) */
} route;

/* Dispatches one request through the route table (routes.c): 404 for an
 * unknown path, 405 with Allow for a known path and another method, 401 when
 * the key is wrong or missing. Always fills `rep`. */
void routes_dispatch(const http_request *req, http_reply *rep);

/* ---- Replies (reply.c) ---- */

/* A JSON reply; takes ownership of `obj` (NULL: a 500 saying memory ran out). */
void reply_json(http_reply *rep, int status, struct cJSON *obj);
/* A plain text reply (copied). */
void reply_text(http_reply *rep, int status, const char *content_type, const char *text);
/* An OpenAI-style error: {"error": {"message", "type", "param", "code"}};
 * `param` may be NULL. The type follows the status (invalid_request_error,
 * authentication_error, not_found_error, ...). */
void reply_error(http_reply *rep, int status, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The error object alone (for a stream's `data: {"error": ...}` event). */
struct cJSON *error_json(int status, const char *param, const char *message);

/* 1 when the client behind `fd` has closed its side of the connection. */
int client_gone(int fd);

/* Seconds since an arbitrary start (CLOCK_MONOTONIC). */
double now_s(void);

/* ---- The routes' handlers, one file per family ---- */
void api_completions(const http_request *req, http_reply *rep); /* api_completions.c */
void api_tokenize(const http_request *req, http_reply *rep);    /* api_tokenizer.c */
void api_detokenize(const http_request *req, http_reply *rep);
void api_tokenizer_info(const http_request *req, http_reply *rep);
void api_models(const http_request *req, http_reply *rep);      /* api_info.c */
void api_health(const http_request *req, http_reply *rep);
void api_metrics(const http_request *req, http_reply *rep);

/* GPT-2's byte-level form of a token (the vocab.json key, "Ġworld") as a new
 * string (free with free()); NULL when out of memory. */
char *token_bpe_string(const lsc_tokenizer *tok, int32_t id);

/* Encodes text under srv->tok_mu. */
lsc_status server_encode(server *srv, const char *text, size_t len, int32_t **ids, size_t *n,
                         lsc_error *err);

#endif

/* routes.c - the route table: one line per endpoint. New pages and JSON
 * endpoints (the explorer) add a line here and a handler in a file of their
 * own. */
#include "explore.h"
#include "server.h"

#include <stdio.h>
#include <string.h>

static const route routes[] = {
    {"POST", "/v1/completions", api_completions, 0},
    {"GET", "/v1/models", api_models, 0},
    {"POST", "/tokenize", api_tokenize, 0},
    {"POST", "/detokenize", api_detokenize, 0},
    {"GET", "/tokenizer_info", api_tokenizer_info, 0},
    {"GET", "/health", api_health, 1},
    {"GET", "/metrics", api_metrics, 0},
    /* the explorer page's endpoints (api_explore.c); its files: web_static */
    {"GET", "/v1/explore/model", api_explore_model, 0},
    {"GET", "/v1/explore/vocab", api_explore_vocab, 0},
    {"POST", "/v1/explore/analyze", api_explore_analyze, 0},
    {"POST", "/v1/explore/logits", api_explore_logits, 0},
    {"POST", "/v1/explore/lens", api_explore_lens, 0},
    {"POST", "/v1/explore/attention", api_explore_attention, 0},
    {"POST", "/v1/explore/generate", api_explore_generate, 0},
};

/* Compares the whole of both strings in time independent of where they
 * differ, so the key cannot be guessed byte by byte from response times. */
static int same_secret(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    unsigned char d = la != lb;
    for (size_t i = 0; i < lb; i++) d |= (unsigned char)(a[i < la ? i : 0] ^ b[i]);
    return d == 0;
}

static int authorized(const http_request *req) {
    const char *key = req->srv->api_key;
    if (!key) return 1;
    const char *h = req->authorization;
    if (!h || strncmp(h, "Bearer ", 7) != 0) return 0;
    return same_secret(h + 7, key);
}

void routes_dispatch(const http_request *req, http_reply *rep) {
    const route *match = NULL;
    char allow[64] = "";
    static __thread char allow_buf[64];
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (strcmp(routes[i].path, req->path) != 0) continue;
        if (!strcmp(routes[i].method, req->method) ||
            (!strcmp(req->method, "HEAD") && !strcmp(routes[i].method, "GET"))) {
            match = &routes[i];
            break;
        }
        size_t l = strlen(allow);
        snprintf(allow + l, sizeof allow - l, "%s%s", l ? ", " : "", routes[i].method);
    }
    if (!match && !allow[0] && web_static(req, rep)) return; /* the explorer page */
    if (!match) {
        if (allow[0]) {
            memcpy(allow_buf, allow, sizeof allow_buf);
            rep->allow = allow_buf;
            reply_error(rep, 405, NULL, "method %s is not allowed on %s (allowed: %s)",
                        req->method, req->path, allow);
        } else {
            reply_error(rep, 404, NULL, "no such endpoint: %s %s", req->method, req->path);
        }
        return;
    }
    if (req->srv->shutting_down && !strcmp(match->path, "/v1/completions")) {
        reply_error(rep, 503, NULL, "the server is shutting down");
        return;
    }
    if (!match->open && !authorized(req)) {
        reply_error(rep, 401, NULL,
                    req->authorization ? "the API key is wrong (Authorization: Bearer KEY)"
                                       : "an API key is required (Authorization: Bearer KEY)");
        return;
    }
    match->fn(req, rep);
}

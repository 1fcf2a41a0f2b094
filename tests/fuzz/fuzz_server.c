/* fuzz_server.c - libFuzzer target for the server's request handler: the
 * input's first line is "METHOD PATH" (an optional third word, "key", sends
 * the right API key), the rest is the body. It goes through routes_dispatch
 * exactly as an HTTP request would (the parsers of every endpoint, the
 * completion parameters, the tokenizer, the scheduler running the `tiny`
 * fixture, streaming replies read to the end). Bad input must come back as
 * a 4xx with an OpenAI-style JSON error, never a 500 or a crash.
 * The model: $LSC_FUZZ_MODEL, else build/fixtures/tiny (`make fixtures`). */
#include "metrics.h"
#include "scheduler.h"
#include "server.h"

#include <cjson/cJSON.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static server srv;

static void require(int cond, const char *what) {
    if (!cond) {
        fprintf(stderr, "fuzz_server: %s\n", what);
        abort();
    }
}

static void init(void) {
    const char *dir = getenv("LSC_FUZZ_MODEL");
    if (!dir) dir = "build/fixtures/tiny";
    lsc_error err;
    if (lsc_model_load(dir, lsc_model_default_params(), &srv.model, &err) ||
        lsc_tokenizer_load(dir, &srv.tok, &err)) {
        fprintf(stderr, "fuzz_server: %s (run `make fixtures`, or set LSC_FUZZ_MODEL)\n",
                err.message);
        exit(1);
    }
    pthread_mutex_init(&srv.tok_mu, NULL);
    srv.model_name = "tiny";
    srv.model_dir = dir;
    srv.api_key = "k";
    srv.n_ctx = lsc_model_n_ctx(srv.model);
    srv.n_vocab = lsc_model_n_vocab(srv.model);
    srv.eos_id = lsc_tokenizer_eos_id(srv.tok);
    srv.max_seqs_per_request = 16;
    srv.metrics = metrics_new();
    sched_params sp = {.parallel = 4, .queue = 16, .threads = 1};
    require(srv.metrics && sched_new(srv.model, srv.tok, sp, srv.metrics, &srv.sched, &err) == 0,
            "cannot start the scheduler");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int ready;
    if (!ready) {
        init();
        ready = 1;
    }
    const uint8_t *nl = memchr(data, '\n', size);
    size_t head = nl ? (size_t)(nl - data) : size;
    if (head > 200) return 0;
    char line[201], method[201] = "", path[201] = "", key[201] = "";
    memcpy(line, data, head);
    line[head] = '\0';
    if (sscanf(line, "%200s %200s %200s", method, path, key) < 2) return 0;
    size_t body_len = nl ? size - head - 1 : 0;
    char *body = malloc(body_len + 1);
    require(body != NULL, "out of memory");
    if (body_len) memcpy(body, nl + 1, body_len);
    body[body_len] = '\0';
    http_request req = {.method = method, .path = path, .body = body, .body_len = body_len,
                        .authorization = !strcmp(key, "key") ? "Bearer k" : NULL,
                        .client_fd = -1, .srv = &srv};
    http_reply rep = {0};
    routes_dispatch(&req, &rep);
    require(rep.status == 200 || rep.status == 400 || rep.status == 401 || rep.status == 404 ||
                rep.status == 405 || rep.status == 503,
            "unexpected status");
    if (rep.stream_read) {
        char buf[4096];
        while (rep.stream_read(rep.stream_cls, buf, sizeof buf) > 0) {
        }
        rep.stream_free(rep.stream_cls);
    } else {
        require(rep.body != NULL, "a reply without a body");
        if (rep.content_type && !strcmp(rep.content_type, "application/json")) {
            cJSON *j = cJSON_ParseWithLength(rep.body, rep.body_len);
            require(j != NULL, "a JSON reply that does not parse");
            if (rep.status != 200) {
                const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
                require(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "message")),
                        "an error without a message");
            }
            cJSON_Delete(j);
        }
        free(rep.body);
    }
    free(body);
    return 0;
}

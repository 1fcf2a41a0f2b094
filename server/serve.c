/* serve.c - `logitscope serve`: loads the model, starts the batching
 * scheduler and the HTTP server, prints "listening on http://HOST:PORT" as
 * its first line on stdout, and on SIGINT/SIGTERM stops accepting, lets the
 * requests in flight finish (up to --shutdown-timeout) and exits 0. */
#include "cli.h"
#include "http.h"
#include "metrics.h"
#include "scheduler.h"
#include "server.h"

#include <arpa/inet.h>
#include <malloc.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum {
    OPT_HOST = 2000,
    OPT_PORT,
    OPT_PARALLEL,
    OPT_QUEUE,
    OPT_API_KEY,
    OPT_NAME,
    OPT_MAX_CONNECTIONS,
    OPT_TIMEOUT,
    OPT_MAX_BODY,
    OPT_SHUTDOWN_TIMEOUT,
};

static int serve_main(int argc, char **argv);

static const cli_opt opts[] = {
    {"host", 0, "H", OPT_HOST, "address to bind (default 127.0.0.1)"},
    {"port", 0, "P", OPT_PORT, "0 takes a free port (default 8080)"},
    {"parallel", 0, "N", OPT_PARALLEL, "sequences per forward step (default 8)"},
    {"queue", 0, "N", OPT_QUEUE, "sequences waiting for a slot before 503 (default 256)"},
    {"api-key", 0, "KEY", OPT_API_KEY,
     "require 'Authorization: Bearer KEY' (also $LOGITSCOPE_API_KEY)"},
    {"served-model-name", 0, "M", OPT_NAME, "the model's name in responses (default --model)"},
    {"max-connections", 0, "N", OPT_MAX_CONNECTIONS, "open connections at most (default 64)"},
    {"timeout", 0, "S", OPT_TIMEOUT, "close a connection idle for S seconds (default 60)"},
    {"max-body", 0, "BYTES", OPT_MAX_BODY, "request body limit (default 8388608; 413 above)"},
    {"shutdown-timeout", 0, "S", OPT_SHUTDOWN_TIMEOUT,
     "on SIGINT/SIGTERM, wait at most S seconds for requests in flight (default 30)"},
    {0},
};

const cli_command cli_cmd_serve = {
    .name = "serve",
    .summary = "an OpenAI-compatible completions server (echo, logprobs, streaming, batching)",
    .synopsis = "[options]",
    .about = "An OpenAI-compatible completions server (POST /v1/completions with echo and\n"
             "logprobs, GET /v1/models, /health, /metrics; vLLM's /tokenize, /detokenize,\n"
             "/tokenizer_info). Requests share forward steps (continuous batching). Its\n"
             "first line on stdout is 'listening on http://HOST:PORT' once it is ready.\n",
    .groups = CLI_MODEL | CLI_RUN,
    .opts = opts,
    .run = serve_main,
};

static int is_loopback(const char *host) {
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, host, &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1) return IN6_IS_ADDR_LOOPBACK(&a6);
    return !strcmp(host, "localhost");
}

static int serve_main(int argc, char **argv) {
    cli_args a;
    cli_args_begin(&a, &cli_cmd_serve, argc, argv);
    const char *host = "127.0.0.1", *name = NULL, *api_key = getenv("LOGITSCOPE_API_KEY");
    long port = 8080, parallel = 8, queue = 256, max_conn = 64, timeout = 60,
         max_body = 8L << 20, shutdown_timeout = 30;
    int opt;
    while ((opt = cli_args_next(&a)) > 0) {
        long *target = NULL, lo = 0, hi = 0;
        const char *flag = NULL;
        switch (opt) {
        case OPT_HOST: host = a.val; continue;
        case OPT_API_KEY: api_key = a.val; continue;
        case OPT_NAME: name = a.val; continue;
        case OPT_PORT: target = &port, lo = 0, hi = 65535, flag = "--port"; break;
        case OPT_PARALLEL: target = &parallel, lo = 1, hi = 256, flag = "--parallel"; break;
        case OPT_QUEUE: target = &queue, lo = 1, hi = 100000, flag = "--queue"; break;
        case OPT_MAX_CONNECTIONS: target = &max_conn, lo = 1, hi = 10000, flag = "--max-connections"; break;
        case OPT_TIMEOUT: target = &timeout, lo = 1, hi = 86400, flag = "--timeout"; break;
        case OPT_MAX_BODY: target = &max_body, lo = 1024, hi = 1L << 30, flag = "--max-body"; break;
        case OPT_SHUTDOWN_TIMEOUT: target = &shutdown_timeout, lo = 0, hi = 86400, flag = "--shutdown-timeout"; break;
        }
        if (target && !cli_parse_int(a.val, lo, hi, target))
            return cli_usage_error("%s: '%s' is not a number from %ld to %ld", flag, a.val, lo, hi);
    }
    if (opt < 0) return a.status;
    cli_common c = a.c;
    if (api_key && !*api_key) api_key = NULL;
    if (!is_loopback(host) && !api_key)
        fprintf(stderr, "logitscope: warning: serving on %s without --api-key: anyone who can "
                        "reach this address can use the model\n", host);

    /* SIGINT/SIGTERM go to this thread's sigwait: block them before any
     * thread starts so every thread inherits the mask */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* A thread per connection: glibc gives threads their own malloc arenas
     * (up to 8 per core), each keeping the pages it touched, so RSS stepped up
     * whenever a burst of connections reached a new arena. Two arenas bound
     * that; the JSON work they share is small next to a forward step. */
    mallopt(M_ARENA_MAX, 2);

    int rc = 1;
    server srv = {0};
    http_server *hs = NULL;
    pthread_mutex_init(&srv.tok_mu, NULL);
    srv.model_dir = cli_model_dir(&c);
    if (!srv.model_dir || !(srv.model = cli_load_model(&c)) || !(srv.tok = cli_load_tokenizer(&c)))
        goto done;
    srv.model_name = name ? name : c.model ? c.model : "gpt2";
    srv.api_key = api_key;
    srv.n_ctx = lsc_model_n_ctx(srv.model);
    srv.n_vocab = lsc_model_n_vocab(srv.model);
    srv.eos_id = lsc_tokenizer_eos_id(srv.tok);
    srv.max_seqs_per_request = (int)queue;
    srv.n_threads = c.threads;
    srv.started = time(NULL);
    if (lsc_tokenizer_n_vocab(srv.tok) > srv.n_vocab) {
        cli_error("the tokenizer has %d tokens but the model only %d", lsc_tokenizer_n_vocab(srv.tok),
                  srv.n_vocab);
        goto done;
    }
    if (!(srv.metrics = metrics_new())) {
        cli_error("out of memory");
        goto done;
    }
    lsc_error err;
    sched_params sp = {.parallel = (int)parallel, .queue = (int)queue, .threads = c.threads};
    if (sched_new(srv.model, srv.tok, sp, srv.metrics, &srv.sched, &err) != LSC_OK) {
        cli_error("%s", err.message);
        goto done;
    }
    char why[256];
    http_params hp = {.host = host, .port = (int)port, .max_connections = (int)max_conn,
                      .timeout_s = (int)timeout, .max_body = (size_t)max_body,
                      .max_header = 64 * 1024};
    if (!(hs = http_start(&srv, hp, why, sizeof why))) {
        cli_error("%s", why);
        goto done;
    }
    int ipv6 = strchr(host, ':') != NULL;
    printf("listening on http://%s%s%s:%d\n", ipv6 ? "[" : "", host, ipv6 ? "]" : "",
           http_port(hs));
    fflush(stdout);
    fprintf(stderr, "logitscope: serving %s (%s) with %ld sequences per step, queue %ld\n",
            srv.model_name, srv.model_dir, parallel, queue);

    int sig = 0;
    sigwait(&sigs, &sig);
    fprintf(stderr, "logitscope: %s: finishing the requests in flight\n",
            sig == SIGINT ? "SIGINT" : "SIGTERM");
    srv.shutting_down = 1;
    http_quiesce(hs);
    for (double t0 = now_s(); http_in_flight(hs) > 0 && now_s() - t0 < (double)shutdown_timeout;)
        usleep(20000);
    if (http_in_flight(hs) > 0)
        fprintf(stderr, "logitscope: %d requests still running after %lds: stopping them\n",
                http_in_flight(hs), shutdown_timeout);
    sched_stop(srv.sched);
    rc = 0;
done:
    http_stop(hs);
    sched_free(srv.sched);
    metrics_free(srv.metrics);
    lsc_tokenizer_free(srv.tok);
    lsc_model_free(srv.model);
    pthread_mutex_destroy(&srv.tok_mu);
    return rc;
}

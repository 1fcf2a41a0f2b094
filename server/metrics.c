/* metrics.c - counters, gauges and fixed-bucket histograms behind one mutex
 * (updates are a few per token; contention is not a concern at these rates). */
#include "metrics.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ROUTES 32
#define N_TTFT 16
#define N_TPOT 14

static const double ttft_buckets[N_TTFT] = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1,
                                            0.25,  0.5,   0.75, 1.0,  2.5,  5.0,  7.5,  10.0};
static const double tpot_buckets[N_TPOT] = {0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15,
                                            0.2,   0.3,  0.4,   0.5,  0.75,  1.0, 2.5};

typedef struct histogram {
    unsigned long long counts[N_TTFT + 1]; /* per bucket, the last is +Inf */
    unsigned long long n;
    double sum;
} histogram;

typedef struct route_count {
    char path[64];
    int status;
    unsigned long long n;
} route_count;

struct metrics {
    pthread_mutex_t mu;
    route_count routes[MAX_ROUTES];
    int n_routes;
    unsigned long long prompt_tokens, generated_tokens;
    unsigned long long steps, step_seqs;
    size_t waiting, running;
    histogram ttft, tpot;
};

metrics *metrics_new(void) {
    metrics *m = calloc(1, sizeof *m);
    if (m) pthread_mutex_init(&m->mu, NULL);
    return m;
}

void metrics_free(metrics *m) {
    if (!m) return;
    pthread_mutex_destroy(&m->mu);
    free(m);
}

void metrics_request(metrics *m, const char *path, int status) {
    pthread_mutex_lock(&m->mu);
    int i;
    for (i = 0; i < m->n_routes; i++)
        if (m->routes[i].status == status && !strcmp(m->routes[i].path, path)) break;
    if (i == m->n_routes && m->n_routes < MAX_ROUTES) {
        /* unknown paths share one line so a scan cannot grow the table */
        snprintf(m->routes[i].path, sizeof m->routes[i].path, "%s", status == 404 ? "other" : path);
        for (int j = 0; j < m->n_routes; j++)
            if (m->routes[j].status == status && !strcmp(m->routes[j].path, m->routes[i].path))
                i = j;
        if (i == m->n_routes) {
            m->routes[i].status = status;
            m->routes[i].n = 0;
            m->n_routes++;
        }
    }
    if (i < m->n_routes) m->routes[i].n++;
    pthread_mutex_unlock(&m->mu);
}

void metrics_tokens(metrics *m, size_t prompt_tokens, size_t generated_tokens) {
    pthread_mutex_lock(&m->mu);
    m->prompt_tokens += prompt_tokens;
    m->generated_tokens += generated_tokens;
    pthread_mutex_unlock(&m->mu);
}

static void observe(histogram *h, const double *buckets, int nb, double v) {
    int i = 0;
    while (i < nb && v > buckets[i]) i++;
    h->counts[i]++;
    h->n++;
    h->sum += v;
}

void metrics_ttft(metrics *m, double seconds) {
    pthread_mutex_lock(&m->mu);
    observe(&m->ttft, ttft_buckets, N_TTFT, seconds);
    pthread_mutex_unlock(&m->mu);
}

void metrics_token_latency(metrics *m, double seconds) {
    pthread_mutex_lock(&m->mu);
    observe(&m->tpot, tpot_buckets, N_TPOT, seconds);
    pthread_mutex_unlock(&m->mu);
}

void metrics_step(metrics *m, size_t n_seqs) {
    pthread_mutex_lock(&m->mu);
    m->steps++;
    m->step_seqs += n_seqs;
    pthread_mutex_unlock(&m->mu);
}

void metrics_gauges(metrics *m, size_t waiting, size_t running) {
    pthread_mutex_lock(&m->mu);
    m->waiting = waiting;
    m->running = running;
    pthread_mutex_unlock(&m->mu);
}

typedef struct buf {
    char *s;
    size_t len, cap;
    int failed;
} buf;

static void put(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(buf *b, const char *fmt, ...) {
    if (b->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = 1;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap * 2 + (size_t)n;
        char *s = realloc(b->s, cap);
        if (!s) {
            b->failed = 1;
            return;
        }
        b->s = s;
        b->cap = cap;
    }
}

static void put_histogram(buf *b, const char *name, const char *help, const histogram *h,
                          const double *buckets, int nb) {
    put(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    unsigned long long cum = 0;
    for (int i = 0; i < nb; i++) {
        cum += h->counts[i];
        put(b, "%s_bucket{le=\"%g\"} %llu\n", name, buckets[i], cum);
    }
    put(b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.9g\n%s_count %llu\n", name, h->n, name, h->sum,
        name, h->n);
}

char *metrics_render(metrics *m) {
    buf b = {malloc(4096), 0, 4096, 0};
    if (!b.s) return NULL;
    b.s[0] = '\0';
    pthread_mutex_lock(&m->mu);
    put(&b, "# HELP logitscope_requests_total HTTP requests answered, by path and status.\n"
            "# TYPE logitscope_requests_total counter\n");
    for (int i = 0; i < m->n_routes; i++)
        put(&b, "logitscope_requests_total{path=\"%s\",status=\"%d\"} %llu\n", m->routes[i].path,
            m->routes[i].status, m->routes[i].n);
    put(&b,
        "# HELP logitscope_prompt_tokens_total Prompt tokens run through the model.\n"
        "# TYPE logitscope_prompt_tokens_total counter\nlogitscope_prompt_tokens_total %llu\n"
        "# HELP logitscope_generation_tokens_total Tokens generated.\n"
        "# TYPE logitscope_generation_tokens_total counter\nlogitscope_generation_tokens_total %llu\n"
        "# HELP logitscope_steps_total Forward steps run by the scheduler.\n"
        "# TYPE logitscope_steps_total counter\nlogitscope_steps_total %llu\n"
        "# HELP logitscope_step_sequences_total Sequences advanced, summed over the steps "
        "(over steps_total: the mean batch).\n"
        "# TYPE logitscope_step_sequences_total counter\nlogitscope_step_sequences_total %llu\n"
        "# HELP logitscope_num_requests_waiting Sequences queued for a slot.\n"
        "# TYPE logitscope_num_requests_waiting gauge\nlogitscope_num_requests_waiting %zu\n"
        "# HELP logitscope_num_requests_running Sequences in the running batch.\n"
        "# TYPE logitscope_num_requests_running gauge\nlogitscope_num_requests_running %zu\n",
        m->prompt_tokens, m->generated_tokens, m->steps, m->step_seqs, m->waiting, m->running);
    put_histogram(&b, "logitscope_time_to_first_token_seconds",
                  "Time from a request's arrival to its first generated token.", &m->ttft,
                  ttft_buckets, N_TTFT);
    put_histogram(&b, "logitscope_time_per_output_token_seconds",
                  "Time between two generated tokens of one sequence.", &m->tpot, tpot_buckets,
                  N_TPOT);
    pthread_mutex_unlock(&m->mu);
    if (b.failed) {
        free(b.s);
        return NULL;
    }
    return b.s;
}

/* test_generate.c - the generation and scoring loops on the `tiny` fixture:
 * the KV cache is used (the prompt once, then one position per token), eos
 * stops generation (kept in the output) unless eos_id is -1, the callback can
 * stop it, the context is checked before anything runs, and scoring equals
 * log-softmax of a full forward, window by window. Needs build/fixtures. */
#include "check.h"
#include "fixtures.h"
#include "logitscope.h"

#include <stdlib.h>
#include <string.h>

static lsc_model *model;
static const int32_t prompt[5] = {464, 2068, 7586, 21831, 18045};

/* Records the number of new positions of every forward (at hook_embed) and
 * the last logit row of the first 16 (at hook_logits); from the forward
 * numbered `force_at` on, makes `force_id` the argmax at hook_logits. */
enum { SPY_ROWS = 16, SPY_V = 50257 };
typedef struct spy {
    int n_forwards;
    int n_pos[128];
    int force_at, force_id;
    float *last_rows; /* [SPY_ROWS, SPY_V] when not NULL */
} spy;

static int on_embed(lsc_activation *a, void *user) {
    spy *s = user;
    if (s->n_forwards < 128) s->n_pos[s->n_forwards] = a->n_pos;
    s->n_forwards++;
    return 0;
}

static int on_logits(lsc_activation *a, void *user) {
    spy *s = user;
    int64_t V = a->shape[a->n_dims - 1];
    if (s->last_rows && s->n_forwards - 1 < SPY_ROWS && V == SPY_V)
        memcpy(s->last_rows + (size_t)(s->n_forwards - 1) * SPY_V,
               a->data + (size_t)(a->n_pos - 1) * SPY_V, SPY_V * sizeof(float));
    if (s->force_at >= 0 && s->n_forwards - 1 >= s->force_at) {
        a->data[(a->n_pos - 1) * V + s->force_id] = 1e4f; /* the last row */
    }
    return 0;
}

static lsc_ctx *new_ctx(spy *s) {
    lsc_ctx *c = NULL;
    lsc_error err;
    if (lsc_ctx_new(model, lsc_ctx_default_params(), &c, &err)) {
        fprintf(stderr, "ctx: %s\n", err.message);
        exit(EXIT_FAILURE);
    }
    int h;
    if (s && (lsc_ctx_add_hook(c, "hook_embed", on_embed, s, &h, &err) ||
              lsc_ctx_add_hook(c, "hook_logits", on_logits, s, &h, &err))) {
        fprintf(stderr, "hook: %s\n", err.message);
        exit(EXIT_FAILURE);
    }
    return c;
}

static lsc_sampler *greedy(void) {
    lsc_sampler *s = NULL;
    lsc_sampler_new(lsc_sampler_default_params(), &s, NULL);
    return s;
}

static void test_generate_uses_kv_cache(void) {
    spy s = {.force_at = -1, .last_rows = malloc((size_t)SPY_ROWS * SPY_V * sizeof(float))};
    lsc_ctx *c = new_ctx(&s);
    lsc_sampler *g = greedy();
    lsc_generate_params p = lsc_generate_default_params();
    p.max_new_tokens = 8;
    int32_t *out = NULL;
    size_t n = 0;
    lsc_error err;
    CHECK(lsc_generate(c, g, prompt, 5, p, NULL, NULL, &out, &n, &err) == LSC_OK);
    CHECK(n == 8);
    /* the prompt once, then one position per new token except the last */
    CHECK(s.n_forwards == 8);
    CHECK(s.n_pos[0] == 5);
    int ones = 1;
    for (int i = 1; i < s.n_forwards && i < 128; i++) ones &= s.n_pos[i] == 1;
    CHECK(ones);
    CHECK(lsc_ctx_n_past(c) == 5 + 7);

    /* each step's logits (the cached decode) are those of a full forward
     * without the cache over the prompt and the tokens so far, bit for bit
     * (results do not depend on how the positions were batched); so the
     * tokens are those full forwards' argmaxes */
    int32_t seq[16];
    memcpy(seq, prompt, sizeof prompt);
    lsc_ctx *plain = new_ctx(NULL);
    size_t V = (size_t)lsc_model_n_vocab(model);
    CHECK(V == SPY_V);
    int same = 1;
    double worst = 0;
    for (size_t t = 0; t < n; t++) {
        lsc_ctx_reset(plain);
        CHECK(lsc_ctx_forward(plain, seq, 5 + t, LSC_LOGITS_LAST, &err) == LSC_OK);
        const float *full = lsc_ctx_logits(plain, NULL), *step = s.last_rows + t * V;
        for (size_t i = 0; i < V; i++) {
            double d = fabs((double)full[i] - (double)step[i]);
            worst = d > worst || d != d ? d : worst;
        }
        seq[5 + t] = (int32_t)lsc_argmax(full, V);
        same &= seq[5 + t] == out[t];
    }
    printf("  generation step logits vs full forwards: max |diff| = %.3g over %zu steps\n", worst, n);
    CHECK(worst == 0.0);
    CHECK(same);
    free(s.last_rows);
    lsc_free(out);
    lsc_ctx_free(plain);
    lsc_sampler_free(g);
    lsc_ctx_free(c);
}

static void test_generate_stops_at_eos(void) {
    spy s = {.force_at = 2, .force_id = 50256}; /* new token 2 (the 3rd) is eos */
    lsc_ctx *c = new_ctx(&s);
    lsc_sampler *g = greedy();
    lsc_generate_params p = lsc_generate_default_params();
    p.max_new_tokens = 10;
    p.eos_id = 50256;
    int32_t *out = NULL;
    size_t n = 0;
    CHECK(lsc_generate(c, g, prompt, 5, p, NULL, NULL, &out, &n, NULL) == LSC_OK);
    CHECK(n == 3 && out[2] == 50256 && out[1] != 50256);
    lsc_free(out);
    /* eos_id -1: on to max_new_tokens */
    s.n_forwards = 0;
    p.eos_id = -1;
    CHECK(lsc_generate(c, g, prompt, 5, p, NULL, NULL, &out, &n, NULL) == LSC_OK);
    CHECK(n == 10 && out[2] == 50256 && out[9] == 50256);
    lsc_free(out);
    lsc_sampler_free(g);
    lsc_ctx_free(c);
}

static int stop_after_two(int32_t id, size_t step, void *user) {
    int *calls = user;
    (*calls)++;
    return step == 1;
}

static void test_generate_callback_and_errors(void) {
    lsc_ctx *c = new_ctx(NULL);
    lsc_sampler *g = greedy();
    lsc_generate_params p = lsc_generate_default_params();
    p.max_new_tokens = 10;
    int calls = 0;
    size_t n = 0;
    CHECK(lsc_generate(c, g, prompt, 5, p, stop_after_two, &calls, NULL, &n, NULL) == LSC_OK);
    CHECK(calls == 2 && n == 2);
    lsc_error err;
    int32_t *out = (int32_t *)1;
    p.max_new_tokens = 60; /* 5 + 60 > 64 */
    CHECK(lsc_generate(c, g, prompt, 5, p, NULL, NULL, &out, &n, &err) == LSC_ERR_CONTEXT_FULL);
    CHECK(out == NULL && n == 0);
    CHECK(strstr(err.message, "5 prompt tokens + 60 new tokens") != NULL);
    p.max_new_tokens = 0;
    CHECK(lsc_generate(c, g, prompt, 5, p, NULL, NULL, &out, &n, &err) == LSC_ERR_INVALID_ARG);
    p.max_new_tokens = 3;
    CHECK(lsc_generate(c, g, prompt, 0, p, NULL, NULL, &out, &n, &err) == LSC_ERR_INVALID_ARG);
    const int32_t bad[2] = {1, 60000};
    CHECK(lsc_generate(c, g, bad, 2, p, NULL, NULL, &out, &n, &err) == LSC_ERR_INVALID_ARG);
    CHECK(out == NULL);
    lsc_sampler_free(g);
    lsc_ctx_free(c);
}

/* log p(ids[t] | ids[b..t]) from a fresh full forward over ids[b..e) */
static double ref_logprob(lsc_ctx *c, const int32_t *ids, size_t b, size_t e, size_t t) {
    lsc_ctx_reset(c);
    lsc_ctx_forward(c, ids + b, e - b, LSC_LOGITS_ALL, NULL);
    size_t V = (size_t)lsc_model_n_vocab(model);
    const float *row = lsc_ctx_logits(c, NULL) + (t - 1 - b) * V;
    return (double)row[ids[t]] - lsc_logsumexp(row, V);
}

static void test_score(void) {
    enum { N = 150 };
    int32_t ids[N];
    uint32_t r = 7;
    for (int i = 0; i < N; i++) {
        r = r * 1103515245u + 12345u;
        ids[i] = (int32_t)((r >> 8) % 50257u);
    }
    lsc_ctx *c = new_ctx(NULL), *ref = new_ctx(NULL);
    static float lp[N];
    lsc_score_result res;
    lsc_error err;
    /* within one window: log-softmax of one full forward */
    CHECK(lsc_score(c, ids, 40, lsc_score_default_params(), lp, &res, &err) == LSC_OK);
    CHECK(res.n_scored == 39 && res.n_windows == 1);
    double worst = 0, sum = 0;
    for (size_t t = 1; t < 40; t++) {
        double d = fabs(lp[t - 1] - ref_logprob(ref, ids, 0, 40, t));
        if (d > worst) worst = d;
        sum -= lp[t - 1];
    }
    CHECK(worst < 1e-5);
    CHECK_NEAR(res.nll, sum, 1e-3);
    CHECK_NEAR(res.mean_nll, res.nll / 39, 1e-12);
    CHECK_NEAR(res.perplexity, exp(res.mean_nll), 1e-9 * res.perplexity);

    /* sliding: windows of 64 starting at 0, 16, 32, ...; window [b, b+64)
     * scores the tokens after the previous window's end */
    lsc_score_params sp = {.max_length = 64, .stride = 16};
    CHECK(lsc_score(c, ids, N, sp, lp, &res, &err) == LSC_OK);
    CHECK(res.n_scored == N - 1);
    CHECK(res.n_windows == 7); /* ends 64, 80, ..., 150 */
    worst = 0;
    size_t prev_end = 0;
    for (size_t b = 0;; b += 16) {
        size_t e = b + 64 < N ? b + 64 : N;
        for (size_t t = prev_end > 1 ? prev_end : 1; t < e; t++) {
            double d = fabs(lp[t - 1] - ref_logprob(ref, ids, b, e, t));
            if (d > worst) worst = d;
        }
        prev_end = e;
        if (e == N) break;
    }
    printf("  sliding-window score vs full forwards per window: max |diff| = %.3g\n", worst);
    CHECK(worst < 1e-5);

    CHECK(lsc_score(c, ids, 1, lsc_score_default_params(), lp, &res, &err) == LSC_ERR_INVALID_ARG);
    sp.stride = 65;
    CHECK(lsc_score(c, ids, N, sp, lp, &res, &err) == LSC_ERR_INVALID_ARG);
    sp.stride = 0;
    sp.max_length = 65;
    CHECK(lsc_score(c, ids, N, sp, lp, &res, &err) == LSC_ERR_CONTEXT_FULL);
    lsc_ctx_free(c);
    lsc_ctx_free(ref);
}

int main(void) {
    model = load_fixture("tiny");
    RUN(test_generate_uses_kv_cache);
    RUN(test_generate_stops_at_eos);
    RUN(test_generate_callback_and_errors);
    RUN(test_score);
    lsc_model_free(model);
    return CHECK_DONE();
}

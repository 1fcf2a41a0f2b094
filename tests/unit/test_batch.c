/* test_batch.c - lsc_batch_forward: a sequence's logits are the same bits
 * whether it runs alone (lsc_ctx_forward) or in a step with others, at every
 * SIMD level this CPU has and at 1, 2 and 3 threads; sequences of different
 * lengths, joining and leaving between steps, prefill beside decode; a hook on
 * one context changes only its logits; one sequence's bad input, full
 * context or aborting hook fails it alone, its cache as before;
 * lsc_generate_batch gives each sequence the tokens lsc_generate gives it,
 * lsc_score_batch each text lsc_score's numbers.
 *
 *   test_batch [FIXTURE...]   (default: the tiny fixtures; the pytest
 *                              tests/test_batch.py passes distilgpt2-shape and
 *                              gpt2-124m)
 * Needs build/fixtures (make fixtures) or $LSC_FIXTURES. */
#include "check.h"
#include "fixtures.h"
#include "kernels.h"
#include "logitscope.h"

#include <stdlib.h>
#include <string.h>

static const char *const *fixtures; /* those the invariance and generation tests run on */
static int n_fixtures;

/* The kernels' level of the contexts new_ctx makes. */
static lsc_simd level_now = LSC_SIMD_BEST;

static lsc_ctx *new_ctx(lsc_model *m, int n_ctx, int n_threads) {
    lsc_ctx_params p = lsc_ctx_default_params();
    p.simd = level_now;
    p.n_ctx = n_ctx;
    p.n_threads = n_threads;
    lsc_ctx *c = NULL;
    lsc_error err;
    if (lsc_ctx_new(m, p, &c, &err)) {
        fprintf(stderr, "lsc_ctx_new: %s\n", err.message);
        exit(EXIT_FAILURE);
    }
    return c;
}

static void make_ids(int32_t *ids, int n, int vocab, uint32_t seed) {
    for (int i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        ids[i] = (int32_t)((seed >> 8) % (uint32_t)vocab);
    }
}

/* The schedule: at step k sequence i adds SCHED[k][i] tokens (0: sits the
 * step out), with logits of every new position on odd steps of odd
 * sequences. Sequence 0 joins late, 4 leaves early, 2 prefills beside the
 * others' single-token decode steps. */
#define N_SEQ 5
#define N_STEP 6
static const int SCHED[N_STEP][N_SEQ] = {
    {0, 7, 1, 3, 13}, {0, 1, 1, 1, 1},  {5, 1, 9, 1, 0},
    {1, 1, 1, 0, 0},  {1, 17, 1, 2, 0}, {1, 1, 1, 1, 0},
};
#define SEQ_TOKENS 40 /* >= the sum of a column */

/* Half the (step, sequence) pairs want every row, among them prefills of
 * several tokens (where ALL and LAST differ) beside LAST ones. */
static lsc_logits_mode mode_of(int k, int i) {
    return (k + i) % 2 ? LSC_LOGITS_ALL : LSC_LOGITS_LAST;
}

/* The logits each sequence gets at each step when run alone: [N_STEP][N_SEQ]
 * arrays (NULL where it sits out). */
typedef struct reference {
    float *rows[N_STEP][N_SEQ];
    size_t n_rows[N_STEP][N_SEQ];
} reference;

static void run_alone(lsc_model *m, int32_t ids[N_SEQ][SEQ_TOKENS], reference *ref) {
    size_t V = (size_t)lsc_model_n_vocab(m);
    lsc_error err;
    for (int i = 0; i < N_SEQ; i++) {
        lsc_ctx *c = new_ctx(m, 48, 1);
        int at = 0;
        for (int k = 0; k < N_STEP; k++) {
            int n = SCHED[k][i];
            ref->rows[k][i] = NULL;
            if (!n) continue;
            CHECK(lsc_ctx_forward(c, ids[i] + at, (size_t)n, mode_of(k, i), &err) == LSC_OK);
            at += n;
            size_t rows;
            const float *lg = lsc_ctx_logits(c, &rows);
            ref->n_rows[k][i] = rows;
            ref->rows[k][i] = malloc(rows * V * sizeof(float));
            memcpy(ref->rows[k][i], lg, rows * V * sizeof(float));
        }
        lsc_ctx_free(c);
    }
}

static void free_reference(reference *ref) {
    for (int k = 0; k < N_STEP; k++)
        for (int i = 0; i < N_SEQ; i++) free(ref->rows[k][i]);
}

/* Runs the schedule as batches on contexts of `threads` threads and checks
 * every sequence's logits bit for bit against `ref`; returns the number of
 * rows compared. */
static size_t run_batched(lsc_model *m, int32_t ids[N_SEQ][SEQ_TOKENS], const reference *ref,
                          int threads) {
    size_t V = (size_t)lsc_model_n_vocab(m), compared = 0;
    lsc_ctx *ctxs[N_SEQ];
    for (int i = 0; i < N_SEQ; i++) ctxs[i] = new_ctx(m, 48, threads);
    int at[N_SEQ] = {0};
    lsc_error err, errs[N_SEQ];
    for (int k = 0; k < N_STEP; k++) {
        const int32_t *step_ids[N_SEQ];
        size_t n_ids[N_SEQ];
        lsc_logits_mode modes[N_SEQ];
        for (int i = 0; i < N_SEQ; i++) {
            step_ids[i] = ids[i] + at[i];
            n_ids[i] = (size_t)SCHED[k][i];
            modes[i] = mode_of(k, i);
        }
        /* sequence 4 leaves after step 1: it is no longer passed at all */
        size_t n_seqs = k >= 2 ? N_SEQ - 1 : N_SEQ;
        CHECK(lsc_batch_forward(ctxs, step_ids, n_ids, n_seqs, modes, errs, &err) == LSC_OK);
        for (size_t i = 0; i < n_seqs; i++) {
            CHECK(errs[i].status == LSC_OK);
            at[i] += SCHED[k][i];
            CHECK(lsc_ctx_n_past(ctxs[i]) == at[i]);
            if (!SCHED[k][i]) continue;
            size_t rows;
            const float *lg = lsc_ctx_logits(ctxs[i], &rows);
            CHECK(rows == ref->n_rows[k][i]);
            if (rows != ref->n_rows[k][i]) continue;
            int same = !memcmp(lg, ref->rows[k][i], rows * V * sizeof(float));
            if (!same)
                fprintf(stderr, "  step %d sequence %zu (%d threads, %s): logits differ from "
                                "its run alone\n",
                        k, i, threads, lsc_ctx_simd_level(ctxs[i]));
            CHECK(same);
            compared += rows;
        }
    }
    for (int i = 0; i < N_SEQ; i++) lsc_ctx_free(ctxs[i]);
    return compared;
}

static void check_invariance(const char *fixture) {
    lsc_model *m = load_fixture(fixture);
    int V = lsc_model_n_vocab(m);
    static int32_t ids[N_SEQ][SEQ_TOKENS];
    for (int i = 0; i < N_SEQ; i++) make_ids(ids[i], SEQ_TOKENS, V, 1000u + (uint32_t)i);
    /* every level this CPU runs */
    lsc_simd levels[3] = {LSC_SIMD_REF, lsc_simd_best(), LSC_SIMD_AVX2};
    int n_levels = levels[1] == LSC_SIMD_REF ? 1 : levels[1] == LSC_SIMD_AVX512 ? 3 : 2;
    for (int li = 0; li < n_levels; li++) {
        lsc_simd level = levels[li];
        level_now = level;
        reference ref;
        run_alone(m, ids, &ref);
        for (int threads = 1; threads <= 3; threads++) {
            size_t n = run_batched(m, ids, &ref, threads);
            printf("  %s, %s, %d thread%s: %zu logits rows of batched steps equal their runs "
                   "alone bit for bit\n",
                   fixture, lsc_simd_name(level), threads, threads > 1 ? "s" : "", n);
        }
        free_reference(&ref);
    }
    level_now = LSC_SIMD_BEST;
    lsc_model_free(m);
}


static void test_invariance(void) {
    for (int f = 0; f < n_fixtures; f++) check_invariance(fixtures[f]);
}

/* A decode step of n = 1 .. MAX_BATCH sequences (n stacked rows: the T = 1
 * product, the small-T one, the GEMM) gives each sequence the bits of its
 * step alone, at the best level and 1-3 threads. */
#define MAX_BATCH 17
#define PROMPT 3

static void check_batch_sizes(const char *fixture) {
    lsc_model *m = load_fixture(fixture);
    size_t V = (size_t)lsc_model_n_vocab(m);
    static int32_t ids[MAX_BATCH][PROMPT + 1];
    for (int i = 0; i < MAX_BATCH; i++) make_ids(ids[i], PROMPT + 1, (int)V, 77u + (uint32_t)i);
    float *alone = malloc(MAX_BATCH * V * sizeof *alone);
    lsc_error err, errs[MAX_BATCH];
    for (int i = 0; i < MAX_BATCH; i++) { /* the reference: one context, one thread */
        lsc_ctx *c = new_ctx(m, 8, 1);
        CHECK(lsc_ctx_forward(c, ids[i], PROMPT, LSC_LOGITS_LAST, &err) == LSC_OK);
        CHECK(lsc_ctx_forward(c, ids[i] + PROMPT, 1, LSC_LOGITS_LAST, &err) == LSC_OK);
        memcpy(alone + i * V, lsc_ctx_logits(c, NULL), V * sizeof *alone);
        lsc_ctx_free(c);
    }
    for (int threads = 1; threads <= 3; threads++) {
        lsc_ctx *ctxs[MAX_BATCH];
        for (int i = 0; i < MAX_BATCH; i++) ctxs[i] = new_ctx(m, 8, threads);
        const int32_t *step_ids[MAX_BATCH];
        size_t n_ids[MAX_BATCH];
        lsc_logits_mode modes[MAX_BATCH];
        size_t compared = 0;
        for (size_t n = 1; n <= MAX_BATCH; n++) {
            for (size_t i = 0; i < n; i++) {
                lsc_ctx_reset(ctxs[i]);
                step_ids[i] = ids[i];
                n_ids[i] = PROMPT;
                modes[i] = LSC_LOGITS_LAST;
            }
            CHECK(lsc_batch_forward(ctxs, step_ids, n_ids, n, modes, errs, &err) == LSC_OK);
            for (size_t i = 0; i < n; i++) {
                step_ids[i] = ids[i] + PROMPT;
                n_ids[i] = 1;
            }
            CHECK(lsc_batch_forward(ctxs, step_ids, n_ids, n, modes, errs, &err) == LSC_OK);
            for (size_t i = 0; i < n; i++) {
                CHECK(errs[i].status == LSC_OK);
                size_t rows;
                const float *lg = lsc_ctx_logits(ctxs[i], &rows);
                CHECK(rows == 1 && memcmp(lg, alone + i * V, V * sizeof *lg) == 0);
                compared++;
            }
        }
        printf("  %s, %s, %d thread%s: decode steps of 1..%d sequences, %zu logits rows equal "
               "their steps alone bit for bit\n",
               fixture, lsc_ctx_simd_level(ctxs[0]), threads, threads > 1 ? "s" : "", MAX_BATCH,
               compared);
        for (int i = 0; i < MAX_BATCH; i++) lsc_ctx_free(ctxs[i]);
    }
    free(alone);
    lsc_model_free(m);
}

static void test_batch_sizes(void) {
    for (int f = 0; f < n_fixtures; f++) check_batch_sizes(fixtures[f]);
}

/* ------------------------------------------------------------------------ */
/* Hooks and failures on the tiny fixture                                     */
/* ------------------------------------------------------------------------ */

static lsc_model *tiny;

/* Adds 0.5 to every value it sees. */
static int add_half(lsc_activation *a, void *user_data) {
    int *calls = user_data;
    (*calls)++;
    size_t n = 1;
    for (int d = 0; d < a->n_dims; d++) n *= (size_t)a->shape[d];
    for (size_t i = 0; i < n; i++) a->data[i] += 0.5f;
    return 0;
}

/* Checks the shape it sees against the sequence's own rows. */
typedef struct shape_seen {
    int calls, bad;
    int T, pos0;
} shape_seen;

static int check_rows(lsc_activation *a, void *user_data) {
    shape_seen *s = user_data;
    s->calls++;
    if (a->n_pos != s->T || a->pos0 != s->pos0) s->bad++;
    return 0;
}

static int abort_hook(lsc_activation *a, void *user_data) {
    (void)user_data;
    a->message = "stopped on purpose";
    return 1;
}

/* The logits of ids[n] run alone on a fresh context (with `hook` on
 * `pattern` when given), LAST row, into out[V]. */
static void alone(const int32_t *ids, size_t n, const char *pattern, lsc_hook_fn hook,
                  void *user, float *out) {
    lsc_ctx *c = new_ctx(tiny, 0, 1);
    lsc_error err;
    if (pattern) CHECK(lsc_ctx_add_hook(c, pattern, hook, user, NULL, &err) == LSC_OK);
    CHECK(lsc_ctx_forward(c, ids, n, LSC_LOGITS_LAST, &err) == LSC_OK);
    memcpy(out, lsc_ctx_logits(c, NULL), (size_t)lsc_model_n_vocab(tiny) * sizeof(float));
    lsc_ctx_free(c);
}

static void test_hook_on_one_context(void) {
    size_t V = (size_t)lsc_model_n_vocab(tiny);
    int32_t a[6] = {464, 2068, 7586, 21831, 18045, 625}, b[4] = {15496, 11, 616, 3290};
    float *ref_a = malloc(V * sizeof(float)), *ref_b = malloc(V * sizeof(float));
    float *plain_a = malloc(V * sizeof(float));
    int calls = 0;
    alone(a, 6, "blocks.*.hook_mlp_out", add_half, &calls, ref_a);
    alone(a, 6, NULL, NULL, NULL, plain_a);
    /* b's reference has b's hooks too: a hook on the scores takes the
     * unfused attention, whose sums differ from the fused kernel's */
    shape_seen dummy = {.T = 4};
    alone(b, 4, "blocks.0.attn.hook_attn_scores", check_rows, &dummy, ref_b);
    CHECK(memcmp(ref_a, plain_a, V * sizeof(float)) != 0); /* the hook does change a */
    lsc_ctx *ca = new_ctx(tiny, 0, 2), *cb = new_ctx(tiny, 0, 2);
    lsc_error err, errs[2];
    int calls_batch = 0;
    CHECK(lsc_ctx_add_hook(ca, "blocks.*.hook_mlp_out", add_half, &calls_batch, NULL, &err) == LSC_OK);
    /* b checks that its hooks see its own rows only, also at the scores
     * (which takes the unfused attention for b alone) */
    shape_seen seen = {.T = 4, .pos0 = 0};
    CHECK(lsc_ctx_add_hook(cb, "blocks.*.hook_resid_post", check_rows, &seen, NULL, &err) == LSC_OK);
    shape_seen scores = {.T = 4, .pos0 = 0}; /* [H, T, P]: n_pos is T */
    CHECK(lsc_ctx_add_hook(cb, "blocks.0.attn.hook_attn_scores", check_rows, &scores, NULL,
                           &err) == LSC_OK);
    lsc_ctx *ctxs[2] = {ca, cb};
    const int32_t *ids[2] = {a, b};
    size_t n[2] = {6, 4};
    lsc_status st = lsc_batch_forward(ctxs, ids, n, 2, NULL, errs, &err);
    if (st) fprintf(stderr, "  %s\n", err.message);
    CHECK(st == LSC_OK);
    CHECK(calls_batch == calls && calls == lsc_model_n_layer(tiny));
    CHECK(seen.calls == lsc_model_n_layer(tiny) && seen.bad == 0);
    CHECK(scores.calls == 1);
    CHECK(memcmp(lsc_ctx_logits(ca, NULL), ref_a, V * sizeof(float)) == 0);
    CHECK(memcmp(lsc_ctx_logits(cb, NULL), ref_b, V * sizeof(float)) == 0);
    lsc_ctx_free(ca);
    lsc_ctx_free(cb);
    free(ref_a);
    free(ref_b);
    free(plain_a);
}

/* Bad ids, a full context and an aborting hook each fail their sequence
 * alone: its status and message in errs[i], its n_past and later results as
 * if the call had not happened; the others advance as when alone. */
static void test_failures_stay_alone(void) {
    size_t V = (size_t)lsc_model_n_vocab(tiny);
    int32_t good[5] = {464, 2068, 7586, 21831, 18045}, bad[2] = {5, (int32_t)V};
    lsc_ctx *c[4] = {new_ctx(tiny, 0, 2), new_ctx(tiny, 0, 1), new_ctx(tiny, 4, 1),
                     new_ctx(tiny, 0, 1)};
    lsc_error err, errs[4];
    /* c[2] holds 4 positions: fill it */
    CHECK(lsc_ctx_forward(c[2], good, 4, LSC_LOGITS_LAST, &err) == LSC_OK);
    int handle = 0;
    CHECK(lsc_ctx_add_hook(c[3], "blocks.1.hook_resid_mid", abort_hook, NULL, &handle, &err) == LSC_OK);
    const int32_t *ids[4] = {good, bad, good, good};
    size_t n[4] = {5, 2, 1, 3};
    lsc_status st = lsc_batch_forward(c, ids, n, 4, NULL, errs, &err);
    CHECK(st == LSC_ERR_INVALID_ARG); /* the first failed one: sequence 1 */
    CHECK(strstr(err.message, "sequence 1") != NULL);
    CHECK(errs[0].status == LSC_OK);
    CHECK(errs[1].status == LSC_ERR_INVALID_ARG && strstr(errs[1].message, "50257") != NULL);
    CHECK(errs[2].status == LSC_ERR_CONTEXT_FULL && strstr(errs[2].message, "context") != NULL);
    CHECK(errs[3].status == LSC_ERR_HOOK && strstr(errs[3].message, "stopped on purpose") != NULL);
    printf("  errors: [1] %s\n          [2] %s\n          [3] %s\n", errs[1].message,
           errs[2].message, errs[3].message);
    CHECK(lsc_ctx_n_past(c[0]) == 5 && lsc_ctx_n_past(c[1]) == 0 && lsc_ctx_n_past(c[2]) == 4 &&
          lsc_ctx_n_past(c[3]) == 0);
    CHECK(lsc_ctx_logits(c[1], NULL) == NULL && lsc_ctx_logits(c[3], NULL) == NULL);
    float *ref = malloc(V * sizeof(float));
    alone(good, 5, NULL, NULL, NULL, ref);
    CHECK(memcmp(lsc_ctx_logits(c[0], NULL), ref, V * sizeof(float)) == 0);
    /* the failed ones are unharmed: with the hook gone, c[3] runs as if
     * fresh, and a good step of c[1] beside c[0]'s decode step is exact */
    lsc_ctx_remove_hook(c[3], handle);
    const int32_t *ids2[4] = {good + 4, good, NULL, good};
    size_t n2[4] = {1, 5, 0, 5};
    CHECK(lsc_batch_forward(c, ids2, n2, 4, NULL, errs, &err) == LSC_OK);
    CHECK(memcmp(lsc_ctx_logits(c[1], NULL), ref, V * sizeof(float)) == 0);
    CHECK(memcmp(lsc_ctx_logits(c[3], NULL), ref, V * sizeof(float)) == 0);
    CHECK(lsc_ctx_n_past(c[0]) == 6 && lsc_ctx_n_past(c[2]) == 4);
    /* a context that sits a step out keeps its logits and cache */
    float *kept = malloc(V * sizeof(float));
    memcpy(kept, lsc_ctx_logits(c[0], NULL), V * sizeof(float));
    const int32_t *ids4[2] = {NULL, good};
    size_t n4[2] = {0, 1};
    CHECK(lsc_batch_forward(c, ids4, n4, 2, NULL, errs, &err) == LSC_OK);
    CHECK(lsc_ctx_n_past(c[0]) == 6 && lsc_ctx_n_past(c[1]) == 6);
    CHECK(lsc_ctx_logits(c[0], NULL) && !memcmp(lsc_ctx_logits(c[0], NULL), kept, V * sizeof(float)));
    free(kept);
    /* without errs, and with every sequence failing */
    const int32_t *ids3[2] = {bad, bad};
    size_t n3[2] = {2, 2};
    CHECK(lsc_batch_forward(c, ids3, n3, 2, NULL, NULL, &err) == LSC_ERR_INVALID_ARG);
    CHECK(strstr(err.message, "sequence 0") != NULL);
    CHECK(lsc_ctx_n_past(c[0]) == 6 && lsc_ctx_n_past(c[1]) == 6);
    for (int i = 0; i < 4; i++) lsc_ctx_free(c[i]);
    free(ref);
}

/* The whole call is refused for NULL arrays, a context twice or contexts of
 * two models; an empty batch is fine. */
static void test_bad_calls(void) {
    lsc_model *other = load_fixture("tiny-untied");
    lsc_ctx *a = new_ctx(tiny, 0, 1), *b = new_ctx(other, 0, 1);
    int32_t ids[1] = {5};
    const int32_t *pi[2] = {ids, ids};
    size_t n[2] = {1, 1};
    lsc_error err;
    lsc_ctx *twice[2] = {a, a}, *mixed[2] = {a, b};
    CHECK(lsc_batch_forward(twice, pi, n, 2, NULL, NULL, &err) == LSC_ERR_INVALID_ARG);
    CHECK(strstr(err.message, "twice") != NULL);
    CHECK(lsc_batch_forward(mixed, pi, n, 2, NULL, NULL, &err) == LSC_ERR_INVALID_ARG);
    CHECK(strstr(err.message, "another model") != NULL);
    CHECK(lsc_batch_forward(NULL, pi, n, 2, NULL, NULL, &err) == LSC_ERR_INVALID_ARG);
    CHECK(lsc_batch_forward(NULL, NULL, NULL, 0, NULL, NULL, &err) == LSC_OK);
    CHECK(lsc_ctx_n_past(a) == 0);
    lsc_ctx_free(a);
    lsc_ctx_free(b);
    lsc_model_free(other);
}

/* Records a sequence's tokens as its callback sees them; stops after `stop_at`
 * tokens when that is > 0. */
typedef struct tokens_seen {
    int32_t ids[64];
    size_t n, stop_at;
} tokens_seen;

static int record_token(int32_t id, size_t step, void *user_data) {
    tokens_seen *t = user_data;
    if (step != t->n) return 1; /* steps must come in order */
    t->ids[t->n++] = id;
    return t->stop_at && t->n == t->stop_at;
}

/* lsc_generate_batch gives each sequence the tokens lsc_generate gives it
 * alone: greedy and seeded sampling, different prompt lengths, limits, an
 * eos, a callback that stops early; a bad prompt and one too long for its
 * context fail alone. */
static void check_generate_batch(lsc_model *m) {
    enum { N = 6 };
    int V = lsc_model_n_vocab(m);
    int32_t prompts[N][12];
    size_t n_prompt[N] = {3, 1, 7, 12, 2, 5};
    for (int i = 0; i < N; i++) make_ids(prompts[i], 12, V, 77u + (uint32_t)i);
    prompts[4][1] = V; /* outside the vocabulary */
    int max_new[N] = {9, 14, 5, 12, 4, 40};
    lsc_generate_seq seqs[N];
    tokens_seen seen[N];
    lsc_sampler *samplers[N], *alone_s[N];
    lsc_error err;
    memset(seen, 0, sizeof seen);
    seen[3].stop_at = 6;
    for (int i = 0; i < N; i++) {
        lsc_sampler_params sp = lsc_sampler_default_params();
        sp.do_sample = i % 2;
        sp.seed = 1000u + (uint64_t)i;
        sp.top_k = i == 3 ? 0 : 50;
        sp.repetition_penalty = i == 2 ? 1.3f : 1.0f;
        CHECK(lsc_sampler_new(sp, &samplers[i], &err) == LSC_OK);
        CHECK(lsc_sampler_new(sp, &alone_s[i], &err) == LSC_OK);
        seqs[i] = (lsc_generate_seq){.ctx = new_ctx(m, i == 5 ? 32 : 0, i == 0 ? 2 : 1),
                                     .sampler = samplers[i], .prompt = prompts[i],
                                     .n_prompt = n_prompt[i], .fn = record_token,
                                     .user_data = &seen[i]};
        seqs[i].params = lsc_generate_default_params();
        seqs[i].params.max_new_tokens = max_new[i];
    }
    lsc_status st = lsc_generate_batch(seqs, N, &err);
    CHECK(st == LSC_ERR_INVALID_ARG && strstr(err.message, "sequence 4") != NULL);
    CHECK(seqs[4].err.status == LSC_ERR_INVALID_ARG && seqs[4].new_ids == NULL);
    CHECK(seqs[5].err.status == LSC_ERR_CONTEXT_FULL && seqs[5].new_ids == NULL);
    printf("  generate: [4] %s\n            [5] %s\n", seqs[4].err.message, seqs[5].err.message);
    CHECK(seen[3].n == 6 && seqs[3].n_new == 6); /* its callback stopped it */
    for (int i = 0; i < 4; i++) {
        CHECK(seqs[i].err.status == LSC_OK);
        /* alone, on a fresh context */
        lsc_ctx *c = new_ctx(m, 0, 1);
        int32_t *ids = NULL;
        size_t n = 0;
        tokens_seen again = {.stop_at = seen[i].stop_at};
        CHECK(lsc_generate(c, alone_s[i], prompts[i], n_prompt[i], seqs[i].params, record_token,
                           &again, &ids, &n, &err) == LSC_OK);
        CHECK(n == seqs[i].n_new && n == seen[i].n);
        CHECK(n && !memcmp(ids, seqs[i].new_ids, n * sizeof *ids));
        CHECK(!memcmp(again.ids, seen[i].ids, n * sizeof *ids));
        if (i != 3) CHECK(n == (size_t)max_new[i]);
        lsc_free(ids);
        lsc_ctx_free(c);
    }
    /* an eos that sequence 1 (greedy, alone above) reaches at its 3rd token */
    lsc_generate_seq one = seqs[1];
    one.params.eos_id = seqs[1].new_ids[2];
    one.fn = NULL;
    lsc_sampler_params sp1 = lsc_sampler_get_params(samplers[1]);
    lsc_sampler_free(samplers[1]);
    CHECK(lsc_sampler_new(sp1, &samplers[1], &err) == LSC_OK);
    one.sampler = samplers[1];
    lsc_generate_seq pair[2] = {seqs[0], one};
    pair[0].fn = NULL;
    CHECK(lsc_generate_batch(pair, 2, &err) == LSC_OK);
    CHECK(pair[1].n_new <= 3 && pair[1].new_ids[pair[1].n_new - 1] == one.params.eos_id);
    CHECK(pair[0].n_new == (size_t)max_new[0]);
    lsc_free(pair[0].new_ids);
    lsc_free(pair[1].new_ids);
    /* two sequences on one context are refused */
    lsc_generate_seq same[2] = {seqs[0], seqs[0]};
    CHECK(lsc_generate_batch(same, 2, &err) == LSC_ERR_INVALID_ARG);
    for (int i = 0; i < N; i++) {
        lsc_free(seqs[i].new_ids);
        lsc_ctx_free(seqs[i].ctx);
        lsc_sampler_free(samplers[i]);
        lsc_sampler_free(alone_s[i]);
    }
}

static void test_generate_batch(void) {
    for (int f = 0; f < n_fixtures; f++) {
        lsc_model *m = load_fixture(fixtures[f]);
        check_generate_batch(m);
        lsc_model_free(m);
    }
}

/* lsc_score_batch gives each text lsc_score's numbers alone, bit for bit,
 * with fewer contexts than texts (slots taken in turn), sliding windows, and
 * a text too short or with a bad id failing alone. */
static void check_score_batch(lsc_model *m, lsc_score_params sp) {
    enum { N = 7, LEN = 300 };
    int V = lsc_model_n_vocab(m);
    size_t lens[N] = {2, 1, 140, 5, 60, 9, 250};
    static int32_t ids[N][LEN];
    static float lp_batch[N][LEN], lp_alone[LEN];
    for (int i = 0; i < N; i++) make_ids(ids[i], LEN, V, 500u + (uint32_t)i);
    ids[5][3] = -1;
    lsc_score_seq q[N];
    for (int i = 0; i < N; i++)
        q[i] = (lsc_score_seq){.ids = ids[i], .n = lens[i], .logprobs = lp_batch[i]};
    lsc_ctx *ctxs[3] = {new_ctx(m, 64, 2), new_ctx(m, 64, 1), new_ctx(m, 64, 1)};
    lsc_error err;
    lsc_status st = lsc_score_batch(ctxs, 3, q, N, sp, &err);
    CHECK(st == LSC_ERR_INVALID_ARG && strstr(err.message, "text 1") != NULL);
    CHECK(q[1].err.status == LSC_ERR_INVALID_ARG && q[5].err.status == LSC_ERR_INVALID_ARG);
    printf("  score: [1] %s\n         [5] %s\n", q[1].err.message, q[5].err.message);
    lsc_ctx *c = new_ctx(m, 64, 1);
    size_t windows = 0;
    for (int i = 0; i < N; i++) {
        if (i == 1 || i == 5) continue;
        CHECK(q[i].err.status == LSC_OK);
        lsc_score_result r;
        CHECK(lsc_score(c, ids[i], lens[i], sp, lp_alone, &r, &err) == LSC_OK);
        CHECK(r.nll == q[i].result.nll && r.n_windows == q[i].result.n_windows &&
              r.n_scored == q[i].result.n_scored && r.perplexity == q[i].result.perplexity);
        CHECK(!memcmp(lp_alone, lp_batch[i], (lens[i] - 1) * sizeof(float)));
        windows += r.n_windows;
    }
    printf("  score: 5 texts (%zu windows) on 3 contexts equal lsc_score alone bit for bit\n",
           windows);
    lsc_ctx_free(c);
    for (int i = 0; i < 3; i++) lsc_ctx_free(ctxs[i]);
}

/* lsc_batch_logsumexp: every row's value is lsc_logsumexp's bits, for
 * contexts with several rows, one row, none, and a context named twice; a
 * forward or reset drops them; a context not computed answers NULL. */
static void test_batch_logsumexp(void) {
    size_t V = (size_t)lsc_model_n_vocab(tiny);
    int32_t a[6] = {464, 2068, 7586, 21831, 18045, 625}, b[3] = {15496, 11, 616};
    lsc_ctx *ca = new_ctx(tiny, 0, 2), *cb = new_ctx(tiny, 0, 2), *cc = new_ctx(tiny, 0, 1);
    lsc_error err, errs[2];
    lsc_ctx *two[2] = {ca, cb};
    const int32_t *ids[2] = {a, b};
    size_t n[2] = {6, 3}, rows;
    lsc_logits_mode modes[2] = {LSC_LOGITS_ALL, LSC_LOGITS_LAST};
    CHECK(lsc_batch_forward(two, ids, n, 2, modes, errs, &err) == LSC_OK);
    CHECK(lsc_ctx_logsumexp(ca, &rows) == NULL && rows == 0);
    lsc_ctx *list[4] = {cc, ca, cb, ca}; /* cc has no rows; ca twice */
    CHECK(lsc_batch_logsumexp(list, 4, &err) == LSC_OK);
    CHECK(lsc_ctx_logsumexp(cc, &rows) == NULL && rows == 0);
    lsc_ctx *each[2] = {ca, cb};
    for (int k = 0; k < 2; k++) {
        size_t n_rows;
        const float *logits = lsc_ctx_logits(each[k], &n_rows);
        const double *lse = lsc_ctx_logsumexp(each[k], &rows);
        CHECK(lse != NULL && rows == n_rows && rows == (k == 0 ? 6u : 1u));
        for (size_t r = 0; lse && r < rows; r++) {
            double want = lsc_logsumexp(logits + r * V, V);
            CHECK(memcmp(&lse[r], &want, sizeof want) == 0);
        }
    }
    CHECK(lsc_ctx_forward(cb, b, 1, LSC_LOGITS_LAST, &err) == LSC_OK);
    CHECK(lsc_ctx_logsumexp(cb, NULL) == NULL); /* a new row */
    lsc_ctx_reset(ca);
    CHECK(lsc_ctx_logsumexp(ca, NULL) == NULL);
    CHECK(lsc_batch_logsumexp(NULL, 1, &err) == LSC_ERR_INVALID_ARG);
    lsc_ctx *with_null[2] = {cb, NULL};
    CHECK(lsc_batch_logsumexp(with_null, 2, &err) == LSC_ERR_INVALID_ARG);
    CHECK(lsc_batch_logsumexp(NULL, 0, &err) == LSC_OK);
    CHECK(lsc_ctx_logsumexp(NULL, &rows) == NULL && rows == 0);
    lsc_ctx_free(ca);
    lsc_ctx_free(cb);
    lsc_ctx_free(cc);
}

static void test_score_batch(void) {
    check_score_batch(tiny, lsc_score_default_params());
    lsc_score_params sp = {.max_length = 48, .stride = 16};
    check_score_batch(tiny, sp);
}

int main(int argc, char **argv) {
    static const char *const tiny_fixtures[] = {"tiny", "tiny-scale-inv", "tiny-gelu",
                                                "tiny-untied"};
    fixtures = argc > 1 ? (const char *const *)(argv + 1) : tiny_fixtures;
    n_fixtures = argc > 1 ? argc - 1 : 4;
    tiny = load_fixture("tiny");
    RUN(test_invariance);
    RUN(test_batch_sizes);
    RUN(test_hook_on_one_context);
    RUN(test_failures_stay_alone);
    RUN(test_bad_calls);
    RUN(test_generate_batch);
    RUN(test_score_batch);
    RUN(test_batch_logsumexp);
    lsc_model_free(tiny);
    return CHECK_DONE();
}

/* test_ctx_levels.c - the kernels' level belongs to each context: two
 * contexts of one model at different levels run at the same time and each
 * gives the bits it gives alone; a level the CPU lacks is refused; and
 * observing the attention pattern (a hook on it) changes no bit of the
 * logits at any level; a batched step refuses contexts of different levels.
 * Needs build/fixtures (make fixtures). */
#include "check.h"
#include "fixtures.h"
#include "logitscope.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define T 40
#define ROUNDS 6

static int32_t ids[T];

/* All T rows of logits of ids on c, into a new array. */
static float *run(lsc_ctx *c, size_t V) {
    lsc_ctx_reset(c);
    if (lsc_ctx_forward(c, ids, T, LSC_LOGITS_ALL, NULL)) return NULL;
    float *out = malloc(T * V * sizeof *out);
    memcpy(out, lsc_ctx_logits(c, NULL), T * V * sizeof *out);
    return out;
}

typedef struct worker {
    lsc_ctx *c;
    const float *alone;
    size_t V;
    int mismatches;
} worker;

static void *work(void *p) {
    worker *w = p;
    for (int r = 0; r < ROUNDS; r++) {
        float *got = run(w->c, w->V);
        if (!got || memcmp(got, w->alone, T * w->V * sizeof *got)) w->mismatches++;
        free(got);
    }
    return NULL;
}

static lsc_ctx *new_ctx(lsc_model *m, lsc_simd level, int threads) {
    lsc_ctx_params p = lsc_ctx_default_params();
    p.simd = level;
    p.n_threads = threads;
    lsc_ctx *c = NULL;
    lsc_error err;
    if (lsc_ctx_new(m, p, &c, &err)) fprintf(stderr, "  lsc_ctx_new: %s\n", err.message);
    return c;
}

/* The best level (not ref on this CPU, unless it has no SIMD) and ref. */
static void test_two_levels_at_once(void) {
    unsetenv("LSC_SIMD");
    lsc_model *m = load_fixture("tiny");
    size_t V = (size_t)lsc_model_n_vocab(m);
    lsc_ctx *a = new_ctx(m, LSC_SIMD_REF, 2), *b = new_ctx(m, LSC_SIMD_BEST, 2);
    CHECK(a && b);
    CHECK(!strcmp(lsc_ctx_simd_level(a), "ref"));
    CHECK(!strcmp(lsc_ctx_simd_level(b), lsc_simd_level()));
    printf("  levels: %s and %s\n", lsc_ctx_simd_level(a), lsc_ctx_simd_level(b));
    float *ra = run(a, V), *rb = run(b, V);
    CHECK(ra && rb);
    if (strcmp(lsc_ctx_simd_level(b), "ref")) /* the levels differ in the last bits */
        CHECK(memcmp(ra, rb, T * V * sizeof *ra) != 0);
    worker wa = {a, ra, V, 0}, wb = {b, rb, V, 0};
    pthread_t ta, tb;
    CHECK(pthread_create(&ta, NULL, work, &wa) == 0);
    CHECK(pthread_create(&tb, NULL, work, &wb) == 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    printf("  %d rounds each at the same time: %d and %d mismatches\n", ROUNDS, wa.mismatches,
           wb.mismatches);
    CHECK(wa.mismatches == 0 && wb.mismatches == 0);
    free(ra);
    free(rb);
    lsc_ctx_free(a);
    lsc_ctx_free(b);
    lsc_model_free(m);
}

static void test_refusals(void) {
    lsc_model *m = load_fixture("tiny");
    lsc_ctx_params p = lsc_ctx_default_params();
#if defined(__x86_64__)
    p.simd = LSC_SIMD_NEON;
#else
    p.simd = LSC_SIMD_AVX2;
#endif
    lsc_ctx *c = (lsc_ctx *)1;
    lsc_error err;
    CHECK(lsc_ctx_new(m, p, &c, &err) == LSC_ERR_UNSUPPORTED && c == NULL);
    CHECK(strstr(err.message, "cannot run") != NULL);
    p.simd = (lsc_simd)99;
    CHECK(lsc_ctx_new(m, p, &c, &err) == LSC_ERR_UNSUPPORTED && c == NULL);
    /* LSC_SIMD caps the level asked for */
    setenv("LSC_SIMD", "ref", 1);
    c = new_ctx(m, LSC_SIMD_BEST, 1);
    CHECK(c && !strcmp(lsc_ctx_simd_level(c), "ref"));
    CHECK(!strcmp(lsc_simd_level(), "ref"));
    lsc_ctx_free(c);
    unsetenv("LSC_SIMD");
    lsc_model_free(m);
}

/* A batched step runs on one context's kernels: contexts of different levels
 * are refused (each sequence must get the bits of its own level). */
static void test_batch_refuses_mixed_levels(void) {
    lsc_model *m = load_fixture("tiny");
    lsc_ctx *c[2] = {new_ctx(m, LSC_SIMD_REF, 1), new_ctx(m, LSC_SIMD_BEST, 1)};
    const int32_t *idp[2] = {ids, ids};
    size_t n[2] = {3, 3};
    lsc_error err;
    lsc_status st = lsc_batch_forward(c, idp, n, 2, NULL, NULL, &err);
    if (strcmp(lsc_ctx_simd_level(c[1]), "ref")) {
        CHECK(st == LSC_ERR_INVALID_ARG && strstr(err.message, "kernels") != NULL);
        CHECK(lsc_ctx_n_past(c[0]) == 0 && lsc_ctx_n_past(c[1]) == 0);
    } else {
        CHECK(st == LSC_OK);
    }
    lsc_ctx_free(c[0]);
    lsc_ctx_free(c[1]);
    lsc_model_free(m);
}

static int observe(lsc_activation *a, void *user_data) {
    (*(int *)user_data)++;
    return 0;
}

/* A hook on the scores and the pattern only reads them: the same bits. */
static void test_observing_changes_nothing(void) {
    lsc_model *m = load_fixture("tiny-scale-inv");
    size_t V = (size_t)lsc_model_n_vocab(m);
    lsc_simd levels[3] = {LSC_SIMD_REF, LSC_SIMD_BEST};
    for (int l = 0; l < 2; l++) {
        lsc_ctx *c = new_ctx(m, levels[l], 2);
        CHECK(c != NULL);
        float *plain = run(c, V);
        int calls = 0;
        CHECK(lsc_ctx_add_hook(c, "blocks.*.attn.hook_pattern", observe, &calls, NULL, NULL) == 0);
        CHECK(lsc_ctx_add_hook(c, "blocks.*.attn.hook_attn_scores", observe, &calls, NULL, NULL) == 0);
        float *hooked = run(c, V);
        CHECK(calls == 2 * lsc_model_n_layer(m));
        CHECK(plain && hooked && memcmp(plain, hooked, T * V * sizeof *plain) == 0);
        printf("  %s: logits with the pattern hooked are the same bits\n", lsc_ctx_simd_level(c));
        free(plain);
        free(hooked);
        lsc_ctx_free(c);
    }
    lsc_model_free(m);
}

int main(void) {
    uint32_t s = 777;
    for (int i = 0; i < T; i++) {
        s = s * 1103515245u + 12345u;
        ids[i] = (int32_t)((s >> 8) % 50257u);
    }
    RUN(test_two_levels_at_once);
    RUN(test_refusals);
    RUN(test_batch_refuses_mixed_levels);
    RUN(test_observing_changes_nothing);
    return CHECK_DONE();
}

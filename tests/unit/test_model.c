/* test_model.c - the forward pass on the generated `tiny` fixtures: extending
 * the KV cache token by token (or in chunks) gives the same logits as one full
 * pass, LAST equals the last row of ALL, and bad ids / a full context fail
 * without touching the cache; weights read into memory give the mapped
 * file's bits. Needs build/fixtures (make fixtures). */
#include "check.h"
#include "fixtures.h"
#include "logitscope.h"

#include <stdlib.h>
#include <string.h>

static double max_diff(const float *a, const float *b, size_t n) {
    double d = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - (double)b[i]);
        if (!(e <= d)) d = e; /* NaN counts as a failure */
    }
    return d;
}

/* ids 0..n-1 of a simple deterministic sequence */
static void make_ids(int32_t *ids, int n, int vocab) {
    uint32_t s = 12345;
    for (int i = 0; i < n; i++) {
        s = s * 1103515245u + 12345u;
        ids[i] = (int32_t)((s >> 8) % (uint32_t)vocab);
    }
}

/* Runs `ids` through a fresh context in chunks of `chunk` tokens and checks
 * each chunk's rows against `full` [n, V]. Returns the max difference. */
static double run_chunked(lsc_model *m, const int32_t *ids, int n, int chunk, const float *full) {
    lsc_ctx *c = NULL;
    lsc_error err;
    CHECK(lsc_ctx_new(m, lsc_ctx_default_params(), &c, &err) == LSC_OK);
    size_t V = (size_t)lsc_model_n_vocab(m);
    double d = 0;
    for (int i = 0; i < n; i += chunk) {
        int k = n - i < chunk ? n - i : chunk;
        CHECK(lsc_ctx_forward(c, ids + i, (size_t)k, LSC_LOGITS_ALL, &err) == LSC_OK);
        size_t rows = 0;
        const float *lg = lsc_ctx_logits(c, &rows);
        CHECK(rows == (size_t)k);
        double e = max_diff(lg, full + (size_t)i * V, (size_t)k * V);
        if (!(e <= d)) d = e;
        CHECK(lsc_ctx_n_past(c) == i + k);
    }
    lsc_ctx_free(c);
    return d;
}

static void check_kv_cache(const char *fixture) {
    lsc_model *m = load_fixture(fixture);
    int n = lsc_model_n_ctx(m);
    size_t V = (size_t)lsc_model_n_vocab(m);
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    make_ids(ids, n, (int)V);
    lsc_ctx *c = NULL;
    lsc_error err;
    CHECK(lsc_ctx_new(m, lsc_ctx_default_params(), &c, &err) == LSC_OK);
    CHECK(lsc_ctx_forward(c, ids, (size_t)n, LSC_LOGITS_ALL, &err) == LSC_OK);
    size_t rows;
    float *full = malloc((size_t)n * V * sizeof *full);
    memcpy(full, lsc_ctx_logits(c, &rows), (size_t)n * V * sizeof *full);
    CHECK(rows == (size_t)n);
    int chunks[] = {1, 5, 17};
    for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
        double d = run_chunked(m, ids, n, chunks[i], full);
        printf("  %s: KV cache in chunks of %d vs one pass of %d: max |diff| = %.3g (tol 1e-5)\n",
               fixture, chunks[i], n, d);
        CHECK(d <= 1e-5);
    }
    /* LAST gives the last row of ALL */
    lsc_ctx_reset(c);
    CHECK(lsc_ctx_n_past(c) == 0);
    CHECK(lsc_ctx_forward(c, ids, (size_t)n, LSC_LOGITS_LAST, &err) == LSC_OK);
    const float *last = lsc_ctx_logits(c, &rows);
    CHECK(rows == 1);
    CHECK(max_diff(last, full + (size_t)(n - 1) * V, V) <= 1e-6);
    lsc_ctx_free(c);
    free(full);
    free(ids);
    lsc_model_free(m);
}

static void test_kv_cache_tiny(void) { check_kv_cache("tiny"); }
static void test_kv_cache_scale_inv(void) { check_kv_cache("tiny-scale-inv"); }

static void test_errors_leave_cache(void) {
    lsc_model *m = load_fixture("tiny");
    int n_ctx = lsc_model_n_ctx(m), V = lsc_model_n_vocab(m);
    lsc_ctx *c = NULL;
    lsc_error err;
    CHECK(lsc_ctx_new(m, lsc_ctx_default_params(), &c, &err) == LSC_OK);
    int32_t ids[3] = {464, 2068, 7586};
    CHECK(lsc_ctx_forward(c, ids, 2, LSC_LOGITS_LAST, &err) == LSC_OK);
    float ref[8];
    /* the reference: a fresh pass over all three */
    lsc_ctx *c2 = NULL;
    CHECK(lsc_ctx_new(m, lsc_ctx_default_params(), &c2, &err) == LSC_OK);
    CHECK(lsc_ctx_forward(c2, ids, 3, LSC_LOGITS_LAST, &err) == LSC_OK);
    memcpy(ref, lsc_ctx_logits(c2, NULL), sizeof ref);

    int32_t bad[2] = {5, V};
    CHECK(lsc_ctx_forward(c, bad, 2, LSC_LOGITS_ALL, &err) == LSC_ERR_INVALID_ARG);
    CHECK(strstr(err.message, "50257") != NULL);
    CHECK(lsc_ctx_logits(c, NULL) == NULL);
    bad[1] = -1;
    CHECK(lsc_ctx_forward(c, bad, 2, LSC_LOGITS_ALL, &err) == LSC_ERR_INVALID_ARG);
    CHECK(lsc_ctx_forward(c, ids, 0, LSC_LOGITS_ALL, &err) == LSC_ERR_INVALID_ARG);
    CHECK(lsc_ctx_forward(c, ids, 2, (lsc_logits_mode)7, &err) == LSC_ERR_INVALID_ARG);
    int32_t *many = calloc((size_t)n_ctx, sizeof *many);
    CHECK(lsc_ctx_forward(c, many, (size_t)n_ctx - 1, LSC_LOGITS_ALL, &err) == LSC_ERR_CONTEXT_FULL);
    CHECK(strstr(err.message, "context") != NULL);
    CHECK(lsc_ctx_n_past(c) == 2);
    /* the cache still holds the first two tokens */
    CHECK(lsc_ctx_forward(c, ids + 2, 1, LSC_LOGITS_LAST, &err) == LSC_OK);
    CHECK(max_diff(lsc_ctx_logits(c, NULL), ref, 8) <= 1e-5);
    /* exactly full is fine, one more is not */
    lsc_ctx_reset(c);
    CHECK(lsc_ctx_forward(c, many, (size_t)n_ctx, LSC_LOGITS_LAST, &err) == LSC_OK);
    CHECK(lsc_ctx_forward(c, many, 1, LSC_LOGITS_LAST, &err) == LSC_ERR_CONTEXT_FULL);
    /* a smaller context */
    lsc_ctx *c3 = NULL;
    lsc_ctx_params p = lsc_ctx_default_params();
    p.n_ctx = 4;
    CHECK(lsc_ctx_new(m, p, &c3, &err) == LSC_OK);
    CHECK(lsc_ctx_forward(c3, many, 5, LSC_LOGITS_LAST, &err) == LSC_ERR_CONTEXT_FULL);
    p.n_ctx = n_ctx + 1;
    lsc_ctx *c4 = (lsc_ctx *)1;
    CHECK(lsc_ctx_new(m, p, &c4, &err) == LSC_ERR_INVALID_ARG && c4 == NULL);
    free(many);
    lsc_ctx_free(c3);
    lsc_ctx_free(c2);
    lsc_ctx_free(c);
    lsc_model_free(m);
}

static void test_config_accessors(void) {
    lsc_model *m = load_fixture("tiny-gelu");
    const lsc_config *cfg = lsc_model_config(m);
    CHECK(lsc_model_n_vocab(m) == 50257);
    CHECK(lsc_model_n_layer(m) == 2);
    CHECK(lsc_model_n_embd(m) == 32);
    CHECK(lsc_model_n_head(m) == 4);
    CHECK(lsc_model_n_ctx(m) == 64);
    CHECK(cfg->n_inner == 48);
    CHECK(strcmp(cfg->activation_function, "gelu") == 0);
    CHECK(cfg->tie_word_embeddings == 1);
    lsc_model_free(m);
    m = load_fixture("tiny-untied");
    CHECK(lsc_model_config(m)->tie_word_embeddings == 0);
    CHECK(lsc_model_config(m)->n_inner == 128);
    lsc_model_free(m);
    lsc_model_free(NULL);
    lsc_ctx_free(NULL);
}

/* lsc_model_module_tree keeps snprintf's contract: the whole length at size
 * 0, a NUL-terminated prefix when the buffer is short. (The text itself is
 * checked against print(model) in tests/test_family.py.) */
static void test_module_tree(void) {
    lsc_model *m = load_fixture("tiny-gelu");
    size_t n = lsc_model_module_tree(m, NULL, 0);
    char *full = malloc(n + 1), small[17];
    memset(small, 'x', sizeof small);
    CHECK(full && lsc_model_module_tree(m, full, n + 1) == n && strlen(full) == n);
    CHECK(full && !strncmp(full, "GPT2LMHeadModel(\n", 17) && full[n - 1] == '\n');
    CHECK(full && strstr(full, "(act): GELUActivation()\n"));
    CHECK(lsc_model_module_tree(m, small, sizeof small) == n);
    CHECK(small[16] == '\0' && full && !strncmp(small, full, 16));
    free(full);
    lsc_model_free(m);
}

/* The weights read into memory (use_mmap = 0) give the bits of the mapped
 * file, in every weight type: BF16 and Q8 also look rows of the F32 wte up
 * after converting the matrices (whose mapped pages are then dropped; the
 * copy in memory must keep them). */
static void test_in_memory_weights(void) {
    lsc_weight_type types[] = {LSC_WEIGHTS_F32, LSC_WEIGHTS_BF16, LSC_WEIGHTS_Q8};
    int32_t ids[9];
    make_ids(ids, 9, 50257);
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        lsc_model_params p = lsc_model_default_params();
        CHECK(p.use_mmap == 1);
        p.weight_type = types[i];
        lsc_model *mapped = load_fixture_with("tiny", p);
        p.use_mmap = 0;
        lsc_model *copied = load_fixture_with("tiny", p);
        lsc_model_file a, b;
        lsc_model_file_info(mapped, &a);
        lsc_model_file_info(copied, &b);
        CHECK(a.n_bytes == b.n_bytes && a.n_tensors == b.n_tensors);
        lsc_ctx *c1 = NULL, *c2 = NULL;
        lsc_error err;
        CHECK(lsc_ctx_new(mapped, lsc_ctx_default_params(), &c1, &err) == LSC_OK);
        CHECK(lsc_ctx_new(copied, lsc_ctx_default_params(), &c2, &err) == LSC_OK);
        CHECK(lsc_ctx_forward(c1, ids, 9, LSC_LOGITS_ALL, &err) == LSC_OK);
        CHECK(lsc_ctx_forward(c2, ids, 9, LSC_LOGITS_ALL, &err) == LSC_OK);
        size_t r1, r2;
        const float *l1 = lsc_ctx_logits(c1, &r1), *l2 = lsc_ctx_logits(c2, &r2);
        CHECK(r1 == 9 && r2 == 9 && !memcmp(l1, l2, 9 * 50257 * sizeof(float)));
        int same = r1 == r2 && !memcmp(l1, l2, r1 * 50257 * sizeof(float));
        /* and one decode step (F32 in memory: the GEMM on panels, one row) */
        CHECK(lsc_ctx_forward(c1, ids + 3, 1, LSC_LOGITS_LAST, &err) == LSC_OK);
        CHECK(lsc_ctx_forward(c2, ids + 3, 1, LSC_LOGITS_LAST, &err) == LSC_OK);
        l1 = lsc_ctx_logits(c1, &r1);
        l2 = lsc_ctx_logits(c2, &r2);
        CHECK(r1 == 1 && r2 == 1 && !memcmp(l1, l2, 50257 * sizeof(float)));
        same = same && r1 == r2 && !memcmp(l1, l2, r1 * 50257 * sizeof(float));
        CHECK(lsc_model_check_finite(copied, &err) == LSC_OK);
        printf("  weights %d: in memory vs mapped, 9 positions and a decode step: %s\n",
               (int)types[i], same ? "identical bits" : "DIFFER");
        lsc_ctx_free(c1);
        lsc_ctx_free(c2);
        lsc_model_free(mapped);
        lsc_model_free(copied);
    }
}

int main(void) {
    RUN(test_kv_cache_tiny);
    RUN(test_kv_cache_scale_inv);
    RUN(test_errors_leave_cache);
    RUN(test_config_accessors);
    RUN(test_module_tree);
    RUN(test_in_memory_weights);
    return CHECK_DONE();
}

/* test_hooks_lens.c - hooks over generation with the KV cache (they fire at
 * every step; a steering hook gives the same logits token by token as over
 * the whole sequence at once), abort messages, point lookup, and the logit
 * lens (its last layer is the logits; it sees interventions), on `tiny`. */
#include "check.h"
#include "fixtures.h"
#include "logitscope.h"

#include <stdlib.h>
#include <string.h>

static lsc_model *model;
static int L, E, V;

static lsc_ctx *new_ctx(void) {
    lsc_ctx *c = NULL;
    lsc_error err;
    if (lsc_ctx_new(model, lsc_ctx_default_params(), &c, &err)) {
        fprintf(stderr, "lsc_ctx_new: %s\n", err.message);
        exit(EXIT_FAILURE);
    }
    return c;
}

/* Sets the logit of token *(int32_t *)ud to the row's max + 10 (the
 * notebook's edit), counting the rows it saw in calls[0]. */
static int calls[1];
static int force_token(lsc_activation *a, void *ud) {
    int32_t id = *(int32_t *)ud;
    for (int t = 0; t < a->n_pos; t++) {
        float *row = a->data + (size_t)t * a->shape[1], mx = row[0];
        for (int64_t j = 1; j < a->shape[1]; j++) mx = row[j] > mx ? row[j] : mx;
        row[id] = mx + 10;
        calls[0]++;
    }
    return 0;
}

static void test_generation_keeps_hooks(void) {
    lsc_ctx *c = new_ctx();
    lsc_sampler *s = NULL;
    lsc_error err;
    CHECK(lsc_sampler_new(lsc_sampler_default_params(), &s, &err) == LSC_OK);
    int32_t want = 6891, prompt[3] = {15496, 11, 616};
    int h;
    CHECK(lsc_ctx_add_hook(c, "lm_head", force_token, &want, &h, &err) == LSC_OK);
    lsc_generate_params gp = lsc_generate_default_params();
    gp.max_new_tokens = 6;
    int32_t *out = NULL;
    size_t n = 0;
    CHECK(lsc_generate(c, s, prompt, 3, gp, NULL, NULL, &out, &n, &err) == LSC_OK);
    CHECK(n == 6);
    for (size_t i = 0; i < n; i++) CHECK(out[i] == want);
    CHECK(calls[0] >= 6); /* one logits row per step at least */
    lsc_free(out);
    /* removed: the model's own choice comes back */
    lsc_ctx_remove_hook(c, h);
    CHECK(lsc_generate(c, s, prompt, 3, gp, NULL, NULL, &out, &n, &err) == LSC_OK);
    int forced = 0;
    for (size_t i = 0; i < n; i++) forced += out[i] == want;
    CHECK(forced < (int)n);
    lsc_free(out);
    lsc_sampler_free(s);
    lsc_ctx_free(c);
}

/* Adds 0.25 * (position + 1) * (j % 3 - 1) to element j of each row (not a
 * constant: LayerNorm would remove that). */
static int steer(lsc_activation *a, void *ud) {
    (void)ud;
    for (int t = 0; t < a->n_pos; t++)
        for (int64_t j = 0; j < a->shape[1]; j++)
            a->data[(size_t)t * a->shape[1] + j] += 0.25f * (float)(a->pos0 + t + 1) * (float)(j % 3 - 1);
    return 0;
}

static void test_kv_cache_steps_equal_full_pass(void) {
    int32_t ids[8] = {464, 2068, 7586, 21831, 18045, 625, 262, 16931};
    lsc_error err;
    float *step_rows = malloc(4 * (size_t)V * sizeof(float));
    lsc_ctx *a = new_ctx(), *b = new_ctx(), *plain = new_ctx();
    int h;
    CHECK(lsc_ctx_add_hook(a, "blocks.0.hook_resid_post", steer, NULL, &h, &err) == LSC_OK);
    CHECK(lsc_ctx_add_hook(b, "blocks.0.hook_resid_post", steer, NULL, &h, &err) == LSC_OK);
    /* a: 4 tokens, then 4 more one at a time through the cache */
    CHECK(lsc_ctx_forward(a, ids, 4, LSC_LOGITS_LAST, &err) == LSC_OK);
    for (int i = 4; i < 8; i++) {
        CHECK(lsc_ctx_forward(a, ids + i, 1, LSC_LOGITS_LAST, &err) == LSC_OK);
        memcpy(step_rows + (size_t)(i - 4) * V, lsc_ctx_logits(a, NULL), (size_t)V * sizeof(float));
    }
    /* b: all 8 at once */
    CHECK(lsc_ctx_forward(b, ids, 8, LSC_LOGITS_ALL, &err) == LSC_OK);
    CHECK(lsc_ctx_forward(plain, ids, 8, LSC_LOGITS_ALL, &err) == LSC_OK);
    const float *full = lsc_ctx_logits(b, NULL), *unsteered = lsc_ctx_logits(plain, NULL);
    double worst = 0, effect = 0;
    for (int i = 4; i < 8; i++)
        for (int j = 0; j < V; j++) {
            double d = fabs(step_rows[(size_t)(i - 4) * V + j] - full[(size_t)i * V + j]);
            double e = fabs(unsteered[(size_t)i * V + j] - full[(size_t)i * V + j]);
            worst = d > worst ? d : worst;
            effect = e > effect ? e : effect;
        }
    printf("  steered decode steps vs full pass: max diff %.3g (tol 1e-4); steering moved logits by %.3g\n",
           worst, effect);
    CHECK(worst <= 1e-4);
    CHECK(effect > 1e-2);
    free(step_rows);
    lsc_ctx_free(a);
    lsc_ctx_free(b);
    lsc_ctx_free(plain);
}

static int abort_with_reason(lsc_activation *a, void *ud) {
    (void)ud;
    a->message = "the vector has 3 values";
    return 1;
}

static void test_abort_message_and_lookup(void) {
    lsc_ctx *c = new_ctx();
    lsc_error err;
    int h;
    CHECK(lsc_ctx_add_hook(c, "blocks.1.hook_mlp_out", abort_with_reason, NULL, &h, &err) == LSC_OK);
    int32_t ids[2] = {1, 2};
    CHECK(lsc_ctx_forward(c, ids, 2, LSC_LOGITS_LAST, &err) == LSC_ERR_HOOK);
    CHECK(!strcmp(err.message, "blocks.1.hook_mlp_out: the vector has 3 values"));
    CHECK(lsc_ctx_n_past(c) == 0);
    lsc_ctx_free(c);
    int n = lsc_model_n_hook_points(model);
    CHECK(lsc_model_hook_point_index(model, "hook_logits") == n - 1);
    CHECK(lsc_model_hook_point_index(model, "lm_head") == n - 1);
    CHECK(lsc_model_hook_point_index(model, "blocks.0.hook_resid_pre") == 2);
    CHECK(lsc_model_hook_point_index(model, "blocks.*") == -1);
    CHECK(lsc_model_hook_point_index(model, NULL) == -1);
    CHECK(lsc_model_hook_point_matches(model, n - 1, "lm_head"));
    CHECK(lsc_model_hook_point_matches(model, n - 1, "hook_*"));
    CHECK(!lsc_model_hook_point_matches(model, n - 2, "lm_head"));
    CHECK(lsc_model_hook_point_matches(model, 2, "blocks.*.hook_resid_pre"));
    CHECK(!lsc_model_hook_point_matches(model, n, "*"));
}

static int zero_all(lsc_activation *a, void *ud) {
    (void)ud;
    size_t k = 1;
    for (int d = 0; d < a->n_dims; d++) k *= (size_t)a->shape[d];
    memset(a->data, 0, k * sizeof(float));
    return 0;
}

static void test_logit_lens(void) {
    lsc_ctx *c = new_ctx();
    lsc_error err;
    int32_t ids[5] = {464, 2068, 7586, 21831, 18045};
    size_t rows = (size_t)(L + 1) * 2;
    float *lens = malloc(rows * (size_t)V * sizeof(float));
    CHECK(lsc_ctx_logit_lens(c, ids, 5, 3, 2, lens, &err) == LSC_OK);
    /* the last layer is the logits at positions 3 and 4 */
    lsc_ctx *c2 = new_ctx();
    CHECK(lsc_ctx_forward(c2, ids, 5, LSC_LOGITS_ALL, &err) == LSC_OK);
    const float *lg = lsc_ctx_logits(c2, NULL);
    double worst = 0;
    for (int p = 0; p < 2; p++)
        for (int j = 0; j < V; j++) {
            double d = fabs(lens[((size_t)L * 2 + p) * V + j] - lg[(size_t)(3 + p) * V + j]);
            worst = d > worst ? d : worst;
        }
    CHECK(worst <= 1e-5);
    /* layers differ from each other */
    CHECK(memcmp(lens, lens + 2 * (size_t)V, (size_t)V * sizeof(float)) != 0);
    /* hooks registered on the context apply: zero the last block's output,
     * and the last layer is ln_final of a zero vector (its bias) unembedded */
    int h;
    CHECK(lsc_ctx_add_hook(c, "blocks.1.hook_resid_post", zero_all, NULL, &h, &err) == LSC_OK);
    CHECK(lsc_ctx_logit_lens(c, ids, 5, 4, 1, lens, &err) == LSC_OK);
    float *zero = calloc((size_t)E, sizeof(float)), *want = malloc((size_t)V * sizeof(float));
    CHECK(lsc_ctx_unembed(c, zero, 1, want, &err) == LSC_OK);
    CHECK(memcmp(lens + (size_t)L * V, want, (size_t)V * sizeof(float)) == 0);
    CHECK(lsc_ctx_n_past(c) == 5);
    /* its own capture hooks are gone: one hook left, which a forward fires */
    lsc_ctx_remove_hook(c, h);
    /* bad positions */
    CHECK(lsc_ctx_logit_lens(c, ids, 5, 5, 1, lens, &err) == LSC_ERR_INVALID_ARG);
    CHECK(lsc_ctx_logit_lens(c, ids, 5, 3, 3, lens, &err) == LSC_ERR_INVALID_ARG);
    CHECK(lsc_ctx_logit_lens(c, ids, 5, -1, 1, lens, &err) == LSC_ERR_INVALID_ARG);
    CHECK(lsc_ctx_logit_lens(c, ids, 0, 0, 1, lens, &err) == LSC_ERR_INVALID_ARG);
    int32_t bad[2] = {1, 999999};
    CHECK(lsc_ctx_logit_lens(c, bad, 2, 0, 1, lens, &err) == LSC_ERR_INVALID_ARG);
    free(zero);
    free(want);
    free(lens);
    lsc_ctx_free(c2);
    lsc_ctx_free(c);
}

int main(void) {
    model = load_fixture("tiny");
    L = lsc_model_n_layer(model);
    E = lsc_model_n_embd(model);
    V = lsc_model_n_vocab(model);
    RUN(test_generation_keeps_hooks);
    RUN(test_kv_cache_steps_equal_full_pass);
    RUN(test_abort_message_and_lookup);
    RUN(test_logit_lens);
    lsc_model_free(model);
    return CHECK_DONE();
}

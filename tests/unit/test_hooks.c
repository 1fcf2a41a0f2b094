/* test_hooks.c - the hook mechanism on the `tiny` fixture: point names and
 * shapes, what a callback sees (shape, layer, pos0, n_pos), rewriting in
 * place changes the rest of the pass (q changes attention; k/v change what is
 * cached), removal, glob patterns, the lm_head alias, abort, no-match error. */
#include "check.h"
#include "fixtures.h"
#include "logitscope.h"

#include <stdlib.h>
#include <string.h>

static lsc_model *model;
static int L, H, E, D, V, M;

static lsc_ctx *new_ctx(void) {
    lsc_ctx *c = NULL;
    lsc_error err;
    if (lsc_ctx_new(model, lsc_ctx_default_params(), &c, &err)) {
        fprintf(stderr, "lsc_ctx_new: %s\n", err.message);
        exit(EXIT_FAILURE);
    }
    return c;
}

static int point_index(const char *name) {
    for (int i = 0; i < lsc_model_n_hook_points(model); i++)
        if (!strcmp(lsc_model_hook_point_name(model, i), name)) return i;
    return -1;
}

static void test_point_names_and_shapes(void) {
    int n = lsc_model_n_hook_points(model);
    CHECK(n == 2 + 15 * L + 2);
    CHECK(!strcmp(lsc_model_hook_point_name(model, 0), "hook_embed"));
    CHECK(!strcmp(lsc_model_hook_point_name(model, 1), "hook_pos_embed"));
    CHECK(!strcmp(lsc_model_hook_point_name(model, 2), "blocks.0.hook_resid_pre"));
    CHECK(!strcmp(lsc_model_hook_point_name(model, n - 2), "ln_final.hook_normalized"));
    CHECK(!strcmp(lsc_model_hook_point_name(model, n - 1), "hook_logits"));
    CHECK(lsc_model_hook_point_name(model, n) == NULL);
    CHECK(lsc_model_hook_point_name(model, -1) == NULL);
    int64_t s[4];
    CHECK(lsc_model_hook_point_shape(model, point_index("blocks.1.attn.hook_q"), 5, s) == 3);
    CHECK(s[0] == 5 && s[1] == H && s[2] == D);
    CHECK(lsc_model_hook_point_shape(model, point_index("blocks.0.attn.hook_pattern"), 5, s) == 3);
    CHECK(s[0] == H && s[1] == 5 && s[2] == 5);
    CHECK(lsc_model_hook_point_shape(model, point_index("blocks.0.mlp.hook_post"), 5, s) == 2);
    CHECK(s[0] == 5 && s[1] == M);
    CHECK(lsc_model_hook_point_shape(model, n - 1, 5, s) == 2);
    CHECK(s[0] == 5 && s[1] == V);
    CHECK(lsc_model_hook_point_shape(model, point_index("blocks.1.hook_resid_post"), 3, NULL) == 2);
    CHECK(lsc_model_hook_point_shape(model, n, 3, s) == 0);
    /* every block point name is unique */
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            CHECK(strcmp(lsc_model_hook_point_name(model, i), lsc_model_hook_point_name(model, j)));
}

/* Records what a callback saw. */
typedef struct seen {
    int calls;
    char names[64][64];
    int layer[64], n_dims[64], pos0[64], n_pos[64];
    int64_t shape[64][4];
} seen;

static int record(lsc_activation *a, void *ud) {
    seen *s = ud;
    int k = s->calls++;
    if (k >= 64) return 0;
    snprintf(s->names[k], sizeof s->names[k], "%s", a->name);
    s->layer[k] = a->layer;
    s->n_dims[k] = a->n_dims;
    s->pos0[k] = a->pos0;
    s->n_pos[k] = a->n_pos;
    memcpy(s->shape[k], a->shape, sizeof a->shape);
    return 0;
}

static void test_what_callbacks_see(void) {
    lsc_ctx *c = new_ctx();
    lsc_error err;
    seen s = {0}, q = {0}, sc = {0}, lg = {0}, lnf = {0};
    int h1, h2, h3, h4, h5;
    CHECK(lsc_ctx_add_hook(c, "blocks.*.hook_mlp_out", record, &s, &h1, &err) == LSC_OK);
    CHECK(lsc_ctx_add_hook(c, "blocks.1.attn.hook_q", record, &q, &h2, &err) == LSC_OK);
    CHECK(lsc_ctx_add_hook(c, "*hook_attn_scores", record, &sc, &h3, &err) == LSC_OK);
    CHECK(lsc_ctx_add_hook(c, "lm_head", record, &lg, &h4, &err) == LSC_OK);
    CHECK(lsc_ctx_add_hook(c, "ln_final.hook_normalized", record, &lnf, &h5, &err) == LSC_OK);
    CHECK(h1 != h2 && h2 != h3 && h3 != h4 && h4 != h5);
    int32_t ids[6] = {464, 2068, 7586, 21831, 18045, 625};
    CHECK(lsc_ctx_forward(c, ids, 5, LSC_LOGITS_ALL, &err) == LSC_OK);
    CHECK(s.calls == L);
    for (int l = 0; l < L && l < s.calls; l++) {
        char want[64];
        snprintf(want, sizeof want, "blocks.%d.hook_mlp_out", l);
        CHECK(!strcmp(s.names[l], want));
        CHECK(s.layer[l] == l && s.n_dims[l] == 2 && s.shape[l][0] == 5 && s.shape[l][1] == E);
        CHECK(s.pos0[l] == 0 && s.n_pos[l] == 5);
    }
    CHECK(q.calls == 1 && q.layer[0] == 1 && q.n_dims[0] == 3);
    CHECK(q.shape[0][0] == 5 && q.shape[0][1] == H && q.shape[0][2] == D);
    CHECK(sc.calls == L && sc.shape[0][0] == H && sc.shape[0][1] == 5 && sc.shape[0][2] == 5);
    CHECK(lg.calls == 1 && !strcmp(lg.names[0], "hook_logits") && lg.layer[0] == -1);
    CHECK(lg.shape[0][0] == 5 && lg.shape[0][1] == V && lg.pos0[0] == 0 && lg.n_pos[0] == 5);
    /* one more token through the cache: T = 1, P = 6 */
    CHECK(lsc_ctx_forward(c, ids + 5, 1, LSC_LOGITS_LAST, &err) == LSC_OK);
    CHECK(s.calls == 2 * L && s.pos0[L] == 5 && s.n_pos[L] == 1 && s.shape[L][0] == 1);
    CHECK(sc.calls == 2 * L && sc.shape[L][0] == H && sc.shape[L][1] == 1 && sc.shape[L][2] == 6);
    CHECK(lg.calls == 2 && lg.pos0[1] == 5 && lg.shape[1][0] == 1);
    /* LAST over several tokens: logits cover only the last position */
    lsc_ctx_reset(c);
    CHECK(lsc_ctx_forward(c, ids, 4, LSC_LOGITS_LAST, &err) == LSC_OK);
    CHECK(lg.calls == 3 && lg.pos0[2] == 3 && lg.n_pos[2] == 1 && lg.shape[2][0] == 1);
    /* the final layernorm's rows are the logits' rows, at the same positions */
    CHECK(lnf.calls == 3 && lnf.pos0[2] == 3 && lnf.n_pos[2] == 1 && lnf.shape[2][0] == 1);
    for (int k = 0; k < 3; k++) CHECK(lnf.pos0[k] == lg.pos0[k] && lnf.n_pos[k] == lg.n_pos[k]);
    /* removal: the others keep firing */
    lsc_ctx_remove_hook(c, h1);
    lsc_ctx_remove_hook(c, h1);   /* twice is harmless */
    lsc_ctx_remove_hook(c, 9999); /* unknown handle ignored */
    CHECK(lsc_ctx_forward(c, ids + 4, 1, LSC_LOGITS_LAST, &err) == LSC_OK);
    CHECK(s.calls == 3 * L && lg.calls == 4 && q.calls == 4);
    lsc_ctx_clear_hooks(c);
    CHECK(lsc_ctx_forward(c, ids + 5, 1, LSC_LOGITS_LAST, &err) == LSC_OK);
    CHECK(lg.calls == 4 && q.calls == 4 && sc.calls == 4 * L);
    lsc_ctx_free(c);
}

static int count_calls(lsc_activation *a, void *ud) {
    (void)a;
    (*(int *)ud)++;
    return 0;
}

static void test_patterns(void) {
    lsc_ctx *c = new_ctx();
    lsc_error err;
    struct {
        const char *pattern;
        int want; /* points matched */
    } cases[] = {
        {"hook_embed", 1}, {"hook_pos_embed", 1}, {"blocks.1.*", 15}, {"*", 2 + 15 * L + 2},
        {"*hook_q", L},    {"blocks.*.attn.*", 6 * L}, {"lm_head", 1}, {"hook_logits", 1},
        {"*normalized", 2 * L + 1}, {"blocks.0.hook_resid_pre", 1},
    };
    int32_t ids[2] = {11, 22};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int n = 0, h;
        CHECK(lsc_ctx_add_hook(c, cases[i].pattern, count_calls, &n, &h, &err) == LSC_OK);
        lsc_ctx_reset(c);
        CHECK(lsc_ctx_forward(c, ids, 2, LSC_LOGITS_ALL, &err) == LSC_OK);
        if (n != cases[i].want) fprintf(stderr, "  pattern %s: %d calls\n", cases[i].pattern, n);
        CHECK(n == cases[i].want);
        lsc_ctx_remove_hook(c, h);
    }
    const char *bad[] = {"blocks.99.hook_q", "hook_embedding", "", "blocks.0", "Hook_embed"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int n = 0, h = -5;
        CHECK(lsc_ctx_add_hook(c, bad[i], count_calls, &n, &h, &err) == LSC_ERR_NOT_FOUND);
        CHECK(h == -5);
    }
    CHECK(strstr(err.message, "Hook_embed") != NULL);
    CHECK(lsc_ctx_add_hook(c, "*", NULL, NULL, NULL, &err) == LSC_ERR_INVALID_ARG);
    lsc_ctx_free(c);
}

/* user_data for the rewriting hooks */
typedef struct rewrite {
    float value;
    int token;
} rewrite;

static int fill(lsc_activation *a, void *ud) {
    size_t n = 1;
    for (int i = 0; i < a->n_dims; i++) n *= (size_t)a->shape[i];
    for (size_t i = 0; i < n; i++) a->data[i] = ((rewrite *)ud)->value;
    return 0;
}

static int boost_token(lsc_activation *a, void *ud) {
    rewrite *r = ud;
    for (int t = 0; t < a->n_pos; t++) {
        float *row = a->data + (size_t)t * (size_t)a->shape[1], mx = row[0];
        for (int64_t i = 1; i < a->shape[1]; i++) mx = row[i] > mx ? row[i] : mx;
        row[r->token] = mx + 10;
    }
    return 0;
}

static float *copy_of(const float *p, size_t n) {
    float *q = malloc(n * sizeof *q);
    memcpy(q, p, n * sizeof *q);
    return q;
}

/* A copy of the data a hook saw last (user_data of `snapshot`). */
typedef struct capture {
    float *data;
    size_t n;
} capture;

static int snapshot(lsc_activation *a, void *ud) {
    capture *cap = ud;
    size_t n = 1;
    for (int i = 0; i < a->n_dims; i++) n *= (size_t)a->shape[i];
    free(cap->data);
    cap->data = copy_of(a->data, n);
    cap->n = n;
    return 0;
}

static void test_rewrites_change_the_pass(void) {
    lsc_ctx *c = new_ctx();
    lsc_error err;
    int32_t ids[4] = {464, 2068, 7586, 21831};
    CHECK(lsc_ctx_forward(c, ids, 3, LSC_LOGITS_LAST, &err) == LSC_OK);
    float *base = copy_of(lsc_ctx_logits(c, NULL), (size_t)V);

    /* lm_head alias: the notebook's trick makes a chosen token the argmax */
    rewrite r = {0, 12345};
    int h;
    CHECK(lsc_ctx_add_hook(c, "lm_head", boost_token, &r, &h, &err) == LSC_OK);
    lsc_ctx_reset(c);
    CHECK(lsc_ctx_forward(c, ids, 3, LSC_LOGITS_LAST, &err) == LSC_OK);
    CHECK(lsc_argmax(lsc_ctx_logits(c, NULL), (size_t)V) == 12345);
    lsc_ctx_remove_hook(c, h);
    lsc_ctx_reset(c);
    CHECK(lsc_ctx_forward(c, ids, 3, LSC_LOGITS_LAST, &err) == LSC_OK);
    CHECK(memcmp(lsc_ctx_logits(c, NULL), base, (size_t)V * sizeof(float)) == 0);

    /* q = 0 in every block: the pattern is uniform over the causal positions */
    rewrite zero = {0, 0};
    capture pat = {0}, sc = {0}, v4 = {0}, z = {0};
    int hq, hp;
    CHECK(lsc_ctx_add_hook(c, "blocks.*.attn.hook_q", fill, &zero, &hq, &err) == LSC_OK);
    CHECK(lsc_ctx_add_hook(c, "blocks.1.attn.hook_pattern", snapshot, &pat, &hp, &err) == LSC_OK);
    lsc_ctx_reset(c);
    CHECK(lsc_ctx_forward(c, ids, 3, LSC_LOGITS_LAST, &err) == LSC_OK);
    CHECK(pat.n == (size_t)H * 3 * 3);
    for (int hh = 0; hh < H; hh++)
        for (int t = 0; t < 3; t++)
            for (int p = 0; p < 3; p++)
                CHECK_NEAR(pat.data[(hh * 3 + t) * 3 + p], p <= t ? 1.0 / (t + 1) : 0.0, 1e-6);
    float diff = 0;
    for (int i = 0; i < V; i++) diff = fmaxf(diff, fabsf(lsc_ctx_logits(c, NULL)[i] - base[i]));
    CHECK(diff > 1e-3);
    lsc_ctx_clear_hooks(c);

    /* k = 0 for the first three tokens: what is cached is the rewritten k, so
     * the fourth token's scores against them are 0 */
    int hk;
    CHECK(lsc_ctx_add_hook(c, "blocks.0.attn.hook_k", fill, &zero, &hk, &err) == LSC_OK);
    lsc_ctx_reset(c);
    CHECK(lsc_ctx_forward(c, ids, 3, LSC_LOGITS_LAST, &err) == LSC_OK);
    lsc_ctx_remove_hook(c, hk);
    CHECK(lsc_ctx_add_hook(c, "blocks.0.attn.hook_attn_scores", snapshot, &sc, &hp, &err) == LSC_OK);
    CHECK(lsc_ctx_forward(c, ids + 3, 1, LSC_LOGITS_LAST, &err) == LSC_OK);
    CHECK(sc.n == (size_t)H * 1 * 4);
    int nonzero_last = 0;
    for (int hh = 0; hh < H; hh++) {
        for (int p = 0; p < 3; p++) CHECK(sc.data[hh * 4 + p] == 0.0f);
        nonzero_last += sc.data[hh * 4 + 3] != 0.0f;
    }
    CHECK(nonzero_last > 0);
    lsc_ctx_clear_hooks(c);

    /* v = 0 for the first three tokens: z of the fourth is pattern[3] * v[3] */
    int hv, hz;
    CHECK(lsc_ctx_add_hook(c, "blocks.0.attn.hook_v", fill, &zero, &hv, &err) == LSC_OK);
    lsc_ctx_reset(c);
    CHECK(lsc_ctx_forward(c, ids, 3, LSC_LOGITS_LAST, &err) == LSC_OK);
    lsc_ctx_remove_hook(c, hv);
    CHECK(lsc_ctx_add_hook(c, "blocks.0.attn.hook_v", snapshot, &v4, &hv, &err) == LSC_OK);
    CHECK(lsc_ctx_add_hook(c, "blocks.0.attn.hook_pattern", snapshot, &pat, &hp, &err) == LSC_OK);
    CHECK(lsc_ctx_add_hook(c, "blocks.0.attn.hook_z", snapshot, &z, &hz, &err) == LSC_OK);
    CHECK(lsc_ctx_forward(c, ids + 3, 1, LSC_LOGITS_LAST, &err) == LSC_OK);
    CHECK(v4.n == (size_t)E && pat.n == (size_t)H * 4 && z.n == (size_t)E);
    double worst = 0;
    int some = 0;
    for (int hh = 0; hh < H; hh++)
        for (int d = 0; d < D; d++) {
            double want = (double)pat.data[hh * 4 + 3] * v4.data[hh * D + d];
            worst = fmax(worst, fabs(z.data[hh * D + d] - want));
            some += z.data[hh * D + d] != 0;
        }
    CHECK(worst <= 1e-6);
    CHECK(some > 0);
    free(z.data);
    free(v4.data);
    free(pat.data);
    free(sc.data);
    lsc_ctx_clear_hooks(c);
    free(base);
    lsc_ctx_free(c);
}

static int abort_hook(lsc_activation *a, void *ud) {
    (void)a;
    (void)ud;
    return 1;
}

static void test_abort_leaves_cache(void) {
    lsc_ctx *c = new_ctx();
    lsc_error err;
    int32_t ids[3] = {464, 2068, 7586};
    CHECK(lsc_ctx_forward(c, ids, 2, LSC_LOGITS_LAST, &err) == LSC_OK);
    int h;
    CHECK(lsc_ctx_add_hook(c, "blocks.1.hook_resid_mid", abort_hook, NULL, &h, &err) == LSC_OK);
    CHECK(lsc_ctx_forward(c, ids + 2, 1, LSC_LOGITS_LAST, &err) == LSC_ERR_HOOK);
    CHECK(strstr(err.message, "blocks.1.hook_resid_mid") != NULL);
    CHECK(lsc_ctx_n_past(c) == 2);
    CHECK(lsc_ctx_logits(c, NULL) == NULL);
    lsc_ctx_remove_hook(c, h);
    CHECK(lsc_ctx_forward(c, ids + 2, 1, LSC_LOGITS_LAST, &err) == LSC_OK);
    float got = lsc_ctx_logits(c, NULL)[100];
    lsc_ctx *c2 = new_ctx();
    CHECK(lsc_ctx_forward(c2, ids, 3, LSC_LOGITS_LAST, &err) == LSC_OK);
    CHECK_NEAR(got, lsc_ctx_logits(c2, NULL)[100], 1e-5);
    lsc_ctx_free(c2);
    lsc_ctx_free(c);
}

/* The residual stream a hook sees at resid_post of block l is the one at
 * resid_pre of block l + 1, and resid_mid = resid_pre + attn_out. */
static float *resid[8];
static int keep_named(lsc_activation *a, void *ud) {
    (void)ud;
    const char *names[] = {"blocks.0.hook_resid_pre", "blocks.0.hook_attn_out",
                           "blocks.0.hook_resid_mid", "blocks.0.hook_resid_post",
                           "blocks.1.hook_resid_pre"};
    for (int i = 0; i < 5; i++)
        if (!strcmp(a->name, names[i])) resid[i] = copy_of(a->data, (size_t)(a->shape[0] * a->shape[1]));
    return 0;
}

static void test_residual_points(void) {
    lsc_ctx *c = new_ctx();
    lsc_error err;
    int h;
    CHECK(lsc_ctx_add_hook(c, "blocks.*", keep_named, NULL, &h, &err) == LSC_OK);
    int32_t ids[3] = {1, 2, 3};
    CHECK(lsc_ctx_forward(c, ids, 3, LSC_LOGITS_ALL, &err) == LSC_OK);
    for (int i = 0; i < 5; i++) CHECK(resid[i] != NULL);
    if (resid[4]) {
        CHECK(memcmp(resid[3], resid[4], 3 * (size_t)E * sizeof(float)) == 0);
        for (int i = 0; i < 3 * E; i++) CHECK(resid[2][i] == resid[0][i] + resid[1][i]);
    }
    for (int i = 0; i < 5; i++) free(resid[i]);
    lsc_ctx_free(c);
}

int main(void) {
    model = load_fixture("tiny");
    L = lsc_model_n_layer(model);
    H = lsc_model_n_head(model);
    E = lsc_model_n_embd(model);
    D = E / H;
    V = lsc_model_n_vocab(model);
    M = lsc_model_config(model)->n_inner;
    RUN(test_point_names_and_shapes);
    RUN(test_what_callbacks_see);
    RUN(test_patterns);
    RUN(test_rewrites_change_the_pass);
    RUN(test_abort_leaves_cache);
    RUN(test_residual_points);
    lsc_model_free(model);
    return CHECK_DONE();
}

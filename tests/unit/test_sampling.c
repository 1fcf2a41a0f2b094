/* test_sampling.c - softmax, log-softmax, argmax, top-k, rank, the rng,
 * multinomial draws and the sampler chain, against answers computed by hand. */
#include "check.h"
#include "logitscope.h"
#include "order.h"

#include <math.h>
#include <string.h>

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* softmax({1,2,3}) = {e^-2, e^-1, 1} / (1 + e^-1 + e^-2) */
static void test_softmax_123(void) {
    const float x[3] = {1, 2, 3};
    float p[3], lp[3];
    lsc_softmax(x, 3, p);
    CHECK_NEAR(p[0], 0.0900305732, 1e-7);
    CHECK_NEAR(p[1], 0.2447284711, 1e-7);
    CHECK_NEAR(p[2], 0.6652409558, 1e-7);
    lsc_log_softmax(x, 3, lp);
    /* log(1 + e^-1 + e^-2) = 0.4076059644 */
    CHECK_NEAR(lp[0], -2.4076059644, 1e-6);
    CHECK_NEAR(lp[1], -1.4076059644, 1e-6);
    CHECK_NEAR(lp[2], -0.4076059644, 1e-6);
    CHECK_NEAR(lsc_logsumexp(x, 3), 3.4076059644, 1e-9);
    /* in place */
    float y[3] = {1, 2, 3};
    lsc_softmax(y, 3, y);
    CHECK(memcmp(y, p, sizeof p) == 0);
}

/* The direct formula exp(x) / sum(exp(x)) in float, to show where it fails. */
static void naive_softmax(const float *x, size_t n, float *out) {
    float sum = 0.0f;
    for (size_t i = 0; i < n; i++) sum += expf(x[i]);
    for (size_t i = 0; i < n; i++) out[i] = expf(x[i]) / sum;
}

static void test_softmax_stable_where_naive_fails(void) {
    /* overflow: expf(100) is finite, expf(500) and expf(1000) are inf */
    const float big[3] = {100, 500, 1000};
    float naive[3], ours[3];
    naive_softmax(big, 3, naive);
    CHECK(isnan(naive[2])); /* inf / inf */
    lsc_softmax(big, 3, ours);
    CHECK(ours[0] == 0.0f && ours[1] == 0.0f && ours[2] == 1.0f);
    const float pair[2] = {1000, 1000};
    naive_softmax(pair, 2, naive);
    CHECK(isnan(naive[0]));
    lsc_softmax(pair, 2, ours);
    CHECK(ours[0] == 0.5f && ours[1] == 0.5f);

    /* underflow: expf(-1000) is 0, so the naive row is 0/0 */
    const float tiny[2] = {-1000, -1001};
    naive_softmax(tiny, 2, naive);
    CHECK(isnan(naive[0]));
    lsc_softmax(tiny, 2, ours); /* = softmax({1, 0}) = {1/(1+e^-1), e^-1/(1+e^-1)} */
    CHECK_NEAR(ours[0], 0.7310585786, 1e-7);
    CHECK_NEAR(ours[1], 0.2689414214, 1e-7);

    /* GPT-2-range negative logits: expf(-100) is a float denormal with a few
     * bits left, so the naive answer is visibly wrong; softmax is
     * shift-invariant, so the answer is softmax({3, 2, 1}) */
    const float neg[3] = {-100, -101, -102};
    naive_softmax(neg, 3, naive);
    lsc_softmax(neg, 3, ours);
    CHECK(fabs(naive[0] - 0.6652409558) > 1e-4);
    CHECK_NEAR(ours[0], 0.6652409558, 1e-7);
    CHECK_NEAR(ours[1], 0.2447284711, 1e-7);
    CHECK_NEAR(ours[2], 0.0900305732, 1e-7);

    /* log-softmax where log(naive softmax) is log(0) = -inf */
    const float lg[2] = {0, -1000};
    float lp[2];
    lsc_log_softmax(lg, 2, lp);
    CHECK(isinf(logf(expf(lg[1]) / (expf(lg[0]) + expf(lg[1])))));
    CHECK_NEAR(lp[0], 0.0, 1e-7);
    CHECK_NEAR(lp[1], -1000.0, 1e-4);
}

static void test_softmax_inf_and_equal(void) {
    const float x[3] = {0, -INFINITY, 0};
    float p[4], lp[3];
    lsc_softmax(x, 3, p);
    CHECK(p[0] == 0.5f && p[1] == 0.0f && p[2] == 0.5f);
    lsc_log_softmax(x, 3, lp);
    CHECK_NEAR(lp[0], -0.6931471806, 1e-7);
    CHECK(isinf(lp[1]) && lp[1] < 0);
    /* all equal: uniform */
    const float eq[4] = {7, 7, 7, 7};
    lsc_softmax(eq, 4, p);
    for (int i = 0; i < 4; i++) CHECK(p[i] == 0.25f);
    /* nothing finite: NaN, as torch.softmax */
    const float none[2] = {-INFINITY, -INFINITY};
    lsc_softmax(none, 2, p);
    CHECK(isnan(p[0]) && isnan(p[1]));
    CHECK(isinf(lsc_logsumexp(none, 2)));
}

/* The rank of every id, via lsc_rank. */
static void ranks(const float *x, size_t n, size_t *r) {
    for (size_t i = 0; i < n; i++)
        if (lsc_rank(x, n, i, &r[i], NULL) != LSC_OK) r[i] = (size_t)-1;
}

/* lsc_argmax against a plain scan in lsc_before's order, on rows with ties,
 * infinities, signed zeros and NaN at random places. */
static void test_argmax_order(void) {
    float x[300];
    const float specials[] = {NAN, INFINITY, -INFINITY, 0.0f, -0.0f, 7.0f};
    unsigned s = 12345;
    for (int trial = 0; trial < 2000; trial++) {
        size_t n = 1 + (size_t)(trial % 300);
        for (size_t i = 0; i < n; i++) {
            s = s * 1103515245u + 12345u;
            unsigned r = s >> 16;
            /* few distinct values, so that ties happen; a special now and then */
            x[i] = r % 23 == 0 ? specials[r / 23 % 6] : (float)(r % 9) - 4.0f;
        }
        size_t ref = 0;
        for (size_t i = 1; i < n; i++)
            if (lsc_before(x[i], i, x[ref], ref)) ref = i;
        CHECK(lsc_argmax(x, n) == ref);
    }
    CHECK(lsc_argmax(x, 0) == 0);
}

/* Tie orders: torch leaves ties where libstdc++'s algorithms put them (the
 * expected orders below are what torch 2.15 on CPU prints for the same rows;
 * the values are in descending order either way). */
static void test_argmax_top_k_rank(void) {
    const float x[5] = {1, 3, 2, 3, 2};
    CHECK(lsc_argmax(x, 5) == 1); /* first of the tied 3s */
    int32_t idx[10];
    CHECK(lsc_top_k(x, 5, 3, idx, NULL) == LSC_OK);
    CHECK(idx[0] == 1 && idx[1] == 3 && idx[2] == 4); /* torch.topk: [1, 3, 4] */
    CHECK(lsc_top_k(x, 5, 10, idx, NULL) == LSC_OK);  /* k > n: all 5 */
    CHECK(idx[0] == 1 && idx[1] == 3 && idx[2] == 4 && idx[3] == 2 && idx[4] == 0);
    CHECK(lsc_top_k(x, 5, 0, idx, NULL) == LSC_OK);
    /* rank = position in torch.argsort(descending=True): [1, 3, 2, 4, 0] */
    size_t r[5];
    ranks(x, 5, r);
    CHECK(r[1] == 0 && r[3] == 1 && r[2] == 2 && r[4] == 3 && r[0] == 4);
    lsc_error err;
    size_t rr;
    CHECK(lsc_rank(x, 5, 5, &rr, &err) == LSC_ERR_INVALID_ARG); /* out of range */
    /* -inf entries sort last */
    const float y[3] = {-INFINITY, 0, -INFINITY};
    CHECK(lsc_argmax(y, 3) == 1);
    ranks(y, 3, r);
    CHECK(r[1] == 0 && r[0] == 1 && r[2] == 2);
    CHECK(lsc_top_k(y, 3, 2, idx, NULL) == LSC_OK && idx[0] == 1 && idx[1] == 0);
    /* all equal: argmax takes the first; torch.topk gives [2, 3, 0, 1] and
     * argsort [0, 1, 2, 3] */
    const float eq[4] = {5, 5, 5, 5};
    CHECK(lsc_argmax(eq, 4) == 0);
    CHECK(lsc_top_k(eq, 4, 4, idx, NULL) == LSC_OK && idx[0] == 2 && idx[1] == 3 &&
          idx[2] == 0 && idx[3] == 1);
    ranks(eq, 4, r);
    CHECK(r[0] == 0 && r[1] == 1 && r[2] == 2 && r[3] == 3);
    /* 200 equal: torch.argsort starts [138, 126, 127, ...] (introsort's pivot
     * moves), torch.topk(3) is [0, 1, 2] (partial_sort's heap) */
    static float e200[200];
    for (int i = 0; i < 200; i++) e200[i] = 5;
    CHECK(lsc_rank(e200, 200, 138, &rr, NULL) == LSC_OK && rr == 0);
    CHECK(lsc_rank(e200, 200, 126, &rr, NULL) == LSC_OK && rr == 1);
    CHECK(lsc_top_k(e200, 200, 3, idx, NULL) == LSC_OK && idx[0] == 0 && idx[1] == 1 &&
          idx[2] == 2);
}

/* Properties on a row with many ties: top-k values are the sorted values,
 * the ranks are a permutation, rank 0 holds the maximum, and a top-k of
 * distinct values agrees with rank. */
static void test_top_k_rank_properties(void) {
    enum { N = 1000 };
    static float x[N];
    static int32_t idx[N];
    static size_t r[N];
    static int seen[N];
    lsc_rng rng;
    lsc_rng_seed(&rng, 7);
    for (int i = 0; i < N; i++) x[i] = (float)(int)(lsc_rng_uniform(&rng) * 50); /* many ties */
    CHECK(lsc_top_k(x, N, N, idx, NULL) == LSC_OK);
    int bad = 0;
    for (int i = 1; i < N; i++) bad += x[idx[i - 1]] < x[idx[i]];
    CHECK(bad == 0);
    ranks(x, N, r);
    bad = 0;
    for (int i = 0; i < N; i++) {
        if (r[i] >= N) bad++;
        else seen[r[i]]++;
    }
    for (int i = 0; i < N; i++) bad += seen[i] != 1;
    CHECK(bad == 0);
    bad = 0;
    for (int i = 0; i < N; i++) bad += r[i] == 0 && x[i] != x[lsc_argmax(x, N)];
    CHECK(bad == 0);
    for (int i = 0; i < N; i++) x[i] = (float)lsc_rng_uniform(&rng); /* distinct */
    CHECK(lsc_top_k(x, N, 100, idx, NULL) == LSC_OK);
    bad = 0;
    for (size_t k = 0; k < 100; k++) {
        size_t rk;
        bad += lsc_rank(x, N, (size_t)idx[k], &rk, NULL) != LSC_OK || rk != k;
    }
    CHECK(bad == 0);
}

static void test_rng(void) {
    lsc_rng a, b, c;
    lsc_rng_seed(&a, 42);
    lsc_rng_seed(&b, 42);
    lsc_rng_seed(&c, 43);
    int same = 1, differ = 0, in_range = 1;
    double sum = 0;
    for (int i = 0; i < 100000; i++) {
        double u = lsc_rng_uniform(&a), v = lsc_rng_uniform(&b), w = lsc_rng_uniform(&c);
        same &= u == v;
        differ += u != w;
        in_range &= u >= 0.0 && u < 1.0;
        sum += u;
    }
    CHECK(same);
    CHECK(in_range);
    CHECK(differ > 99990);
    CHECK_NEAR(sum / 100000, 0.5, 0.005); /* sd of the mean: 0.0009 */
}

static void test_multinomial(void) {
    const float w[4] = {0, 1, 0, 3};
    enum { D = 20000 };
    static int32_t out[D];
    lsc_rng rng;
    lsc_rng_seed(&rng, 1);
    lsc_error err;
    CHECK(lsc_multinomial(w, 4, D, 1, &rng, out, &err) == LSC_OK);
    int count[4] = {0};
    for (int i = 0; i < D; i++) count[out[i]]++;
    CHECK(count[0] == 0 && count[2] == 0); /* zero weights are never drawn */
    CHECK_NEAR(count[3] / (double)D, 0.75, 0.015); /* sd 0.003 */

    /* without replacement: both non-zero ones, each once */
    int32_t two[2];
    CHECK(lsc_multinomial(w, 4, 2, 0, &rng, two, &err) == LSC_OK);
    CHECK((two[0] == 1 && two[1] == 3) || (two[0] == 3 && two[1] == 1));
    CHECK(lsc_multinomial(w, 4, 3, 0, &rng, two, &err) == LSC_ERR_INVALID_ARG);
    CHECK(strstr(err.message, "3 without replacement from 2 non-zero") != NULL);

    const float neg[2] = {1, -1}, nan_[2] = {1, NAN}, zero[2] = {0, 0}, inf[2] = {1, INFINITY};
    CHECK(lsc_multinomial(neg, 2, 1, 1, &rng, two, &err) == LSC_ERR_INVALID_ARG);
    CHECK(lsc_multinomial(nan_, 2, 1, 1, &rng, two, &err) == LSC_ERR_INVALID_ARG);
    CHECK(lsc_multinomial(inf, 2, 1, 1, &rng, two, &err) == LSC_ERR_INVALID_ARG);
    CHECK(lsc_multinomial(zero, 2, 1, 1, &rng, two, &err) == LSC_ERR_INVALID_ARG);
    CHECK(strstr(err.message, "every weight is zero") != NULL);

    /* the same rng state gives the same draws */
    lsc_rng r1, r2;
    lsc_rng_seed(&r1, 99);
    lsc_rng_seed(&r2, 99);
    int32_t a[3], b[3];
    const float w4[4] = {1, 2, 3, 4};
    CHECK(lsc_multinomial(w4, 4, 3, 0, &r1, a, NULL) == LSC_OK);
    CHECK(lsc_multinomial(w4, 4, 3, 0, &r2, b, NULL) == LSC_OK);
    CHECK(memcmp(a, b, sizeof a) == 0);
    /* n_draws = n without replacement: a permutation */
    int32_t perm[4];
    CHECK(lsc_multinomial(w4, 4, 4, 0, &r1, perm, NULL) == LSC_OK);
    int seen[4] = {0};
    for (int i = 0; i < 4; i++) seen[perm[i]]++;
    CHECK(seen[0] == 1 && seen[1] == 1 && seen[2] == 1 && seen[3] == 1);
}

/* Without replacement, the ordered pair (first, second) has the probability
 * of sequential draws: w_i / 10 * w_j / (10 - w_i) for weights {1, 2, 3, 4}. */
static void test_multinomial_without_replacement_is_sequential(void) {
    const float w[4] = {1, 2, 3, 4};
    enum { D = 100000 };
    static int count[4][4];
    lsc_rng rng;
    lsc_rng_seed(&rng, 2024);
    for (int d = 0; d < D; d++) {
        int32_t two[2];
        lsc_multinomial(w, 4, 2, 0, &rng, two, NULL);
        count[two[0]][two[1]]++;
    }
    double worst = 0; /* the largest deviation in standard deviations */
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) {
            double p = i == j ? 0 : w[i] / 10.0 * w[j] / (10.0 - w[i]);
            double sd = sqrt(p * (1 - p) / D) + 1e-12;
            double z = fabs(count[i][j] / (double)D - p) / sd;
            if (i == j) CHECK(count[i][j] == 0);
            else if (z > worst) worst = z;
        }
    printf("  without replacement, 12 ordered pairs over %d draws: worst |z| = %.2f\n", D,
           worst);
    CHECK(worst < 4.5);
}

/* log({0.5, 0.3, 0.2}) as logits */
static void probs_logits(const double *p, size_t n, float *x) {
    for (size_t i = 0; i < n; i++) x[i] = (float)log(p[i]);
}

/* Applies a sampler with the given parameters; returns a mask of the kept
 * (finite) tokens as bits. */
static unsigned kept_mask(lsc_sampler_params sp, const float *x, size_t n, const int32_t *prev,
                          size_t n_prev, float *out) {
    lsc_sampler *s = NULL;
    lsc_error err;
    if (lsc_sampler_new(sp, &s, &err) != LSC_OK) {
        fprintf(stderr, "sampler_new: %s\n", err.message);
        return 0xffffffffu;
    }
    float tmp[32];
    if (!out) out = tmp;
    unsigned m = 0;
    if (lsc_sampler_apply(s, x, n, prev, n_prev, out, &err) == LSC_OK) {
        for (size_t i = 0; i < n; i++)
            if (out[i] > -INFINITY) m |= 1u << i;
    } else {
        fprintf(stderr, "sampler_apply: %s\n", err.message);
        m = 0xffffffffu;
    }
    lsc_sampler_free(s);
    return m;
}

static lsc_sampler_params sampling(void) {
    lsc_sampler_params p = lsc_sampler_default_params();
    p.do_sample = 1;
    p.top_k = 0;
    return p;
}

static void test_sampler_defaults(void) {
    lsc_sampler_params p = lsc_sampler_default_params();
    CHECK(p.do_sample == 0 && p.temperature == 1.0f && p.top_k == 50 && p.top_p == 1.0 &&
          p.min_p == 0.0f && p.repetition_penalty == 1.0f);
}

static void test_sampler_top_k(void) {
    const float x[5] = {1, 3, 2, 3, 2};
    lsc_sampler_params p = sampling();
    p.top_k = 2;
    CHECK(kept_mask(p, x, 5, NULL, 0, NULL) == 0x0a); /* ids 1, 3 */
    p.top_k = 3; /* the 3rd largest is 2: every 2 stays (transformers' "< kth" rule) */
    CHECK(kept_mask(p, x, 5, NULL, 0, NULL) == 0x1e);
    p.top_k = 10; /* k > n: nothing removed */
    CHECK(kept_mask(p, x, 5, NULL, 0, NULL) == 0x1f);
    p.top_k = 2;
    p.do_sample = 0; /* greedy: warpers off */
    CHECK(kept_mask(p, x, 5, NULL, 0, NULL) == 0x1f);
}

static void test_sampler_top_p(void) {
    const double pr[3] = {0.5, 0.3, 0.2};
    float x[3], out[3];
    probs_logits(pr, 3, x);
    lsc_sampler_params p = sampling();
    p.top_p = 0.75; /* 0.5 + 0.3 = 0.8 >= 0.75 */
    CHECK(kept_mask(p, x, 3, NULL, 0, out) == 0x3);
    CHECK(out[0] == x[0] && out[1] == x[1]); /* kept logits unchanged */
    p.top_p = 0.85; /* 0.8 < 0.85: all three */
    CHECK(kept_mask(p, x, 3, NULL, 0, NULL) == 0x7);
    p.top_p = 0.4; /* 0.5 alone */
    CHECK(kept_mask(p, x, 3, NULL, 0, NULL) == 0x1);
    p.top_p = 1.0; /* off */
    CHECK(kept_mask(p, x, 3, NULL, 0, NULL) == 0x7);
    p.top_p = 1e-9; /* at least one stays */
    CHECK(kept_mask(p, x, 3, NULL, 0, NULL) == 0x1);
    /* all equal, p = 0.5: ascending cumulative .25 .5 .75 1; the first two
     * (lower ids, as a stable ascending sort) are cut */
    const float eq[4] = {0, 0, 0, 0};
    CHECK(kept_mask(p, eq, 4, NULL, 0, NULL) == 0x8);
    p.top_p = 0.5;
    CHECK(kept_mask(p, eq, 4, NULL, 0, NULL) == 0xc);
    /* -inf entries stay out */
    const float withinf[3] = {0, -INFINITY, 0};
    p.top_p = 0.9;
    CHECK(kept_mask(p, withinf, 3, NULL, 0, NULL) == 0x5);
}

static void test_sampler_min_p(void) {
    const double pr[3] = {0.5, 0.3, 0.2};
    float x[3];
    probs_logits(pr, 3, x);
    lsc_sampler_params p = sampling();
    p.min_p = 0.5f; /* below 0.25 goes */
    CHECK(kept_mask(p, x, 3, NULL, 0, NULL) == 0x3);
    p.min_p = 1.0f; /* only the top */
    CHECK(kept_mask(p, x, 3, NULL, 0, NULL) == 0x1);
}

static void test_sampler_temperature_and_order(void) {
    const float x[3] = {1, 2, 3};
    float out[3];
    lsc_sampler_params p = sampling();
    p.temperature = 0.5f;
    CHECK(kept_mask(p, x, 3, NULL, 0, out) == 0x7);
    CHECK(out[0] == 2.0f && out[1] == 4.0f && out[2] == 6.0f);

    /* temperature comes before top-p: at t = 0.5, probs {.5,.3,.2} become
     * {.658, .237, .105}, and top-p 0.6 keeps the first alone (it would keep
     * two on the untempered probabilities) */
    const double pr[3] = {0.5, 0.3, 0.2};
    float y[3];
    probs_logits(pr, 3, y);
    p.top_p = 0.6;
    CHECK(kept_mask(p, y, 3, NULL, 0, NULL) == 0x1);
    p.temperature = 1.0f;
    CHECK(kept_mask(p, y, 3, NULL, 0, NULL) == 0x3);

    /* top-k comes before top-p: with probs {.4,.3,.2,.1}, top-k 2 leaves
     * {4/7, 3/7}, and top-p 0.55 then keeps only the first (top-p first would
     * keep two) */
    const double pr4[4] = {0.4, 0.3, 0.2, 0.1};
    float z[4];
    probs_logits(pr4, 4, z);
    p = sampling();
    p.top_k = 2;
    p.top_p = 0.55;
    CHECK(kept_mask(p, z, 4, NULL, 0, NULL) == 0x1);
    p.top_k = 0;
    CHECK(kept_mask(p, z, 4, NULL, 0, NULL) == 0x3);
}

static void test_sampler_repetition_penalty(void) {
    const float x[4] = {2, -2, 1, 4};
    const int32_t prev[3] = {0, 1, 1}; /* 1 twice: penalised once */
    float out[4];
    lsc_sampler_params p = lsc_sampler_default_params(); /* greedy: still applied */
    p.repetition_penalty = 2.0f;
    CHECK(kept_mask(p, x, 4, prev, 3, out) == 0xf);
    CHECK(out[0] == 1.0f && out[1] == -4.0f && out[2] == 1.0f && out[3] == 4.0f);
    /* greedy pick changes: {2, 1.9} with 0 seen -> {1, 1.9} */
    const float y[2] = {2.0f, 1.9f};
    lsc_sampler *s;
    CHECK(lsc_sampler_new(p, &s, NULL) == LSC_OK);
    int32_t id = -1;
    const int32_t seen0[1] = {0};
    CHECK(lsc_sampler_sample(s, y, 2, seen0, 1, &id, NULL) == LSC_OK && id == 1);
    CHECK(lsc_sampler_sample(s, y, 2, NULL, 0, &id, NULL) == LSC_OK && id == 0);
    const int32_t bad[1] = {2};
    lsc_error err;
    CHECK(lsc_sampler_sample(s, y, 2, bad, 1, &id, &err) == LSC_ERR_INVALID_ARG);
    CHECK(strstr(err.message, "outside the vocabulary") != NULL);
    lsc_sampler_free(s);
}

/* temperature -> 0 concentrates everything on the argmax, down to 0 (greedy)
 * and a temperature so small that logits / t overflow to inf. */
static void test_sampler_temperature_to_zero(void) {
    const float x[4] = {1, 3, 2.9f, -1}; /* at t = 1e-3: e^-100 for the 2nd */
    const float ts[4] = {1e-3f, 1e-6f, 1e-38f, 0.0f};
    for (int k = 0; k < 4; k++) {
        lsc_sampler_params p = sampling();
        p.temperature = ts[k];
        p.seed = (uint64_t)k;
        lsc_sampler *s;
        CHECK(lsc_sampler_new(p, &s, NULL) == LSC_OK);
        int hits = 0;
        for (int d = 0; d < 200; d++) {
            int32_t id = -1;
            lsc_sampler_sample(s, x, 4, NULL, 0, &id, NULL);
            hits += id == 1;
        }
        CHECK(hits == 200);
        lsc_sampler_free(s);
    }
}

static void test_sampler_seeded(void) {
    float x[64];
    for (int i = 0; i < 64; i++) x[i] = (float)sin(i * 0.7) * 2;
    lsc_sampler_params p = lsc_sampler_default_params();
    p.do_sample = 1;
    p.top_k = 0;
    int32_t a[50], b[50], c[50];
    for (int run = 0; run < 3; run++) {
        p.seed = run == 2 ? 124 : 123;
        lsc_sampler *s;
        CHECK(lsc_sampler_new(p, &s, NULL) == LSC_OK);
        int32_t *dst = run == 0 ? a : run == 1 ? b : c;
        for (int i = 0; i < 50; i++) CHECK(lsc_sampler_sample(s, x, 64, NULL, 0, &dst[i], NULL) == 0);
        lsc_sampler_free(s);
    }
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK(memcmp(a, c, sizeof a) != 0);
}

static void test_sampler_bad_params(void) {
    lsc_sampler *s = (lsc_sampler *)1;
    lsc_error err;
    lsc_sampler_params p = lsc_sampler_default_params();
    p.temperature = -1;
    CHECK(lsc_sampler_new(p, &s, &err) == LSC_ERR_INVALID_ARG && s == NULL);
    CHECK(strstr(err.message, "temperature") != NULL);
    p = lsc_sampler_default_params();
    p.top_p = 0;
    CHECK(lsc_sampler_new(p, &s, &err) == LSC_ERR_INVALID_ARG);
    CHECK(strstr(err.message, "top_p must be in (0, 1], got 0") != NULL);
    p.top_p = 1.5;
    CHECK(lsc_sampler_new(p, &s, &err) == LSC_ERR_INVALID_ARG);
    p = lsc_sampler_default_params();
    p.top_k = -1;
    CHECK(lsc_sampler_new(p, &s, &err) == LSC_ERR_INVALID_ARG);
    p = lsc_sampler_default_params();
    p.repetition_penalty = 0;
    CHECK(lsc_sampler_new(p, &s, &err) == LSC_ERR_INVALID_ARG);
    p = lsc_sampler_default_params();
    p.min_p = NAN;
    CHECK(lsc_sampler_new(p, &s, &err) == LSC_ERR_INVALID_ARG);
    /* a row with nothing to pick */
    CHECK(lsc_sampler_new(lsc_sampler_default_params(), &s, &err) == LSC_OK);
    const float none[2] = {-INFINITY, -INFINITY};
    int32_t id;
    CHECK(lsc_sampler_sample(s, none, 2, NULL, 0, &id, &err) == LSC_ERR_INVALID_ARG);
    lsc_sampler_free(s);
    lsc_sampler_free(NULL);
}

int main(void) {
    RUN(test_softmax_123);
    RUN(test_softmax_stable_where_naive_fails);
    RUN(test_softmax_inf_and_equal);
    RUN(test_argmax_top_k_rank);
    RUN(test_argmax_order);
    RUN(test_top_k_rank_properties);
    RUN(test_rng);
    RUN(test_multinomial);
    RUN(test_multinomial_without_replacement_is_sequential);
    RUN(test_sampler_defaults);
    RUN(test_sampler_top_k);
    RUN(test_sampler_top_p);
    RUN(test_sampler_min_p);
    RUN(test_sampler_temperature_and_order);
    RUN(test_sampler_repetition_penalty);
    RUN(test_sampler_temperature_to_zero);
    RUN(test_sampler_seeded);
    RUN(test_sampler_bad_params);
    return CHECK_DONE();
}

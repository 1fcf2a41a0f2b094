/* inspect.c - reading a row of logits: softmax, log-softmax, logsumexp,
 * argmax, top-k and rank (torch's tie order, torchsort.c). Sampling from a
 * row is sampling.c. */
#include "internal.h"
#include "kernels.h"
#include "softmax_row.h"
#include "torchsort.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Inspection                                                                */
/* ------------------------------------------------------------------------ */

/* The kernels are softmax_row.c's, at this process's level (the same bits
 * at every level). */
double lsc_logsumexp(const float *x, size_t n) {
    lsc_simd level = lsc_simd_default();
    double m = lsc_row_max(x, n, level);
    if (!isfinite(m)) return m; /* -inf (nothing finite), +inf or NaN */
    return m + log(lsc_row_exp_sum(x, n, m, level));
}

void lsc_softmax(const float *x, size_t n, float *out) {
    lsc_simd level = lsc_simd_default();
    double m = lsc_row_max(x, n, level);
    if (!isfinite(m)) {
        for (size_t i = 0; i < n; i++) out[i] = NAN;
        return;
    }
    lsc_row_exp_div(x, n, m, lsc_row_exp_sum(x, n, m, level), out, level);
}

void lsc_log_softmax(const float *x, size_t n, float *out) {
    double lse = lsc_logsumexp(x, n);
    if (!isfinite(lse)) {
        for (size_t i = 0; i < n; i++) out[i] = NAN;
        return;
    }
    for (size_t i = 0; i < n; i++) out[i] = (float)((double)x[i] - lse);
}

/* lsc_before's order (the first NaN, else the first of the largest) in float
 * compares, leaving at the first NaN: the same index as a scan with
 * lsc_before (tests/unit/test_sampling.c), whose double compares and NaN
 * tests took 285 us a vocabulary row on Zen 3, on the server's batching
 * thread once per sequence and token. */
size_t lsc_argmax(const float *x, size_t n) {
    if (n == 0 || isnan(x[0])) return 0;
    size_t best = 0;
    float m = x[0];
    for (size_t i = 1; i < n; i++) {
        float v = x[i];
        if (v > m) {
            m = v;
            best = i;
        } else if (v != v) {
            return i;
        }
    }
    return best;
}

/* A new array of the pairs (x[j], j) for torchsort.c; NULL when out of
 * memory. The caller frees it. */
static lsc_pair *make_pairs(const float *x, size_t n) {
    lsc_pair *q = malloc((n ? n : 1) * sizeof *q);
    if (!q) return NULL;
    for (size_t j = 0; j < n; j++) {
        q[j].v = x[j];
        q[j].i = (int32_t)j;
    }
    return q;
}

lsc_status lsc_top_k(const float *x, size_t n, size_t k, int32_t *indices, lsc_error *err) {
    if (n > INT32_MAX) return lsc_fail(err, LSC_ERR_INVALID_ARG, "top_k: %zu values is too many", n);
    if (k > n) k = n;
    if (k == 0) return LSC_OK;
    lsc_pair *q = make_pairs(x, n);
    if (!q) return lsc_fail(err, LSC_ERR_NOMEM, "top_k: cannot allocate %zu pairs", n);
    lsc_torch_topk(q, n, k);
    for (size_t j = 0; j < k; j++) indices[j] = q[j].i;
    free(q);
    return LSC_OK;
}

lsc_status lsc_rank(const float *x, size_t n, size_t id, size_t *rank, lsc_error *err) {
    if (id >= n) return lsc_fail(err, LSC_ERR_INVALID_ARG, "rank: index %zu is outside [0, %zu)", id, n);
    if (n > INT32_MAX) return lsc_fail(err, LSC_ERR_INVALID_ARG, "rank: %zu values is too many", n);
    /* torch's order: a before b when a is NaN and b is not, or a > b */
    float v = x[id];
    size_t above = 0, tied = 0;
    for (size_t j = 0; j < n; j++) {
        bool a_before = (isnan(x[j]) && !isnan(v)) || x[j] > v;
        bool b_before = (isnan(v) && !isnan(x[j])) || v > x[j];
        above += a_before;
        tied += !a_before && !b_before;
    }
    if (tied == 1) { /* only itself: no tie to place */
        *rank = above;
        return LSC_OK;
    }
    lsc_pair *q = make_pairs(x, n);
    if (!q) return lsc_fail(err, LSC_ERR_NOMEM, "rank: cannot allocate %zu pairs", n);
    lsc_std_sort_desc(q, n);
    size_t r = above;
    while (q[r].i != (int32_t)id) r++; /* id sits among its ties */
    free(q);
    *rank = r;
    return LSC_OK;
}

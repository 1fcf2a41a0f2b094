/* kernels.c - the plain reference kernels (the definition of each kernel) and
 * the activation entry point; the matrix products' entry points, which pick
 * a fast version for this CPU, are in simd.c (see kernels.h). */
#include "kernels.h"

#include <math.h>
#include <string.h>

/* Rows of x handled together, so each row of W is reused from L1. */
#define KN_ROWS 4
/* Rows of x kept hot in cache while W is streamed once per block. */
#define NK_ROWS 64

void lsc_matmul_kn_ref(const float *x, const lsc_f32u *w, const lsc_f32u *b, float *y,
                       size_t T, size_t K, size_t N) {
    for (size_t t0 = 0; t0 < T; t0 += KN_ROWS) {
        size_t nt = T - t0 < KN_ROWS ? T - t0 : KN_ROWS;
        for (size_t r = 0; r < nt; r++) {
            float *restrict yr = y + (t0 + r) * N;
            if (b)
                for (size_t j = 0; j < N; j++) yr[j] = b[j];
            else
                memset(yr, 0, N * sizeof *yr);
        }
        for (size_t k = 0; k < K; k++) {
            const lsc_f32u *restrict wk = w + k * N;
            for (size_t r = 0; r < nt; r++) {
                float xv = x[(t0 + r) * K + k];
                float *restrict yr = y + (t0 + r) * N;
                for (size_t j = 0; j < N; j++) yr[j] += xv * wk[j];
            }
        }
    }
}

/* sum_i a[i] * b[i] with eight partial sums (so the compiler can vectorize it
 * without reassociating a single sum). */
static float dot_ref(const float *restrict a, const lsc_f32u *restrict b, size_t n) {
    float acc[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++) acc[l] += a[i + l] * b[i + l];
    float s = 0;
    for (; i < n; i++) s += a[i] * b[i];
    return s + (((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])));
}

void lsc_matmul_nk_ref(const float *x, const lsc_f32u *w, float *y, size_t T, size_t K,
                       size_t N) {
    for (size_t t0 = 0; t0 < T; t0 += NK_ROWS) {
        size_t nt = T - t0 < NK_ROWS ? T - t0 : NK_ROWS;
        for (size_t n = 0; n < N; n++)
            for (size_t r = 0; r < nt; r++)
                y[(t0 + r) * N + n] = dot_ref(x + (t0 + r) * K, w + n * K, K);
    }
}

void lsc_layernorm_ref(const float *x, const lsc_f32u *g, const lsc_f32u *b, float *y,
                       size_t T, size_t E, float eps) {
    for (size_t t = 0; t < T; t++) {
        const float *xr = x + t * E;
        float *yr = y + t * E;
        double mean = 0, var = 0;
        for (size_t i = 0; i < E; i++) mean += xr[i];
        mean /= (double)E;
        for (size_t i = 0; i < E; i++) {
            double d = xr[i] - mean;
            var += d * d;
        }
        var /= (double)E;
        float m = (float)mean, inv = (float)(1.0 / sqrt(var + (double)eps));
        for (size_t i = 0; i < E; i++) yr[i] = (xr[i] - m) * inv * g[i] + b[i];
    }
}

void lsc_gelu_new_ref(float *x, size_t n) {
    const float c = 0.7978845608028654f; /* sqrt(2 / pi) */
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        x[i] = 0.5f * v * (1.0f + tanhf(c * (v + 0.044715f * v * v * v)));
    }
}

void lsc_act_apply_ref(lsc_act act, float *x, size_t n) {
    switch (act) {
    case LSC_ACT_GELU_NEW:
        lsc_gelu_new_ref(x, n);
        return;
    case LSC_ACT_GELU:
        for (size_t i = 0; i < n; i++) x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
        return;
    case LSC_ACT_GELU_FAST:
        for (size_t i = 0; i < n; i++)
            x[i] = 0.5f * x[i] * (1.0f + tanhf(x[i] * 0.7978845608f * (1.0f + 0.044715f * x[i] * x[i])));
        return;
    case LSC_ACT_QUICK_GELU:
        for (size_t i = 0; i < n; i++) x[i] = x[i] / (1.0f + expf(-1.702f * x[i]));
        return;
    case LSC_ACT_RELU:
        for (size_t i = 0; i < n; i++) x[i] = x[i] > 0 ? x[i] : 0;
        return;
    case LSC_ACT_RELU6:
        for (size_t i = 0; i < n; i++) x[i] = x[i] > 0 ? (x[i] < 6 ? x[i] : 6) : 0;
        return;
    case LSC_ACT_SILU:
        for (size_t i = 0; i < n; i++) x[i] = x[i] / (1.0f + expf(-x[i]));
        return;
    case LSC_ACT_SIGMOID:
        for (size_t i = 0; i < n; i++) x[i] = 1.0f / (1.0f + expf(-x[i]));
        return;
    case LSC_ACT_TANH:
        for (size_t i = 0; i < n; i++) x[i] = tanhf(x[i]);
        return;
    case LSC_ACT_LINEAR:
        return;
    }
}

void lsc_act_apply(struct lsc_pool *pool, lsc_act act, float *x, size_t n) {
    if (act == LSC_ACT_GELU_NEW) lsc_gelu_new(pool, x, n); /* the fast one (simd.c) */
    else lsc_act_apply_ref(act, x, n);
}

/* ref.c - the plain reference kernels: the definition of what each fast
 * kernel computes (matrix products in every weight format, LayerNorm, the
 * activations, and the one reference attention, which the plain level and
 * the hooked forward path both run). They use only weights.c (formats). */
#include "levels.h"

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

/* sum_i a[i] * b[i stride] with eight partial sums (so the compiler can
 * vectorize it without reassociating a single sum). */
static float dot_ref(const float *restrict a, const lsc_f32u *restrict b, size_t stride,
                     size_t n) {
    float acc[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++) acc[l] += a[i + l] * b[(i + l) * stride];
    float s = 0;
    for (; i < n; i++) s += a[i] * b[i * stride];
    return s + (((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])));
}

void lsc_matmul_nk_ref(const float *x, const lsc_f32u *w, float *y, size_t T, size_t K,
                       size_t N) {
    for (size_t t0 = 0; t0 < T; t0 += NK_ROWS) {
        size_t nt = T - t0 < NK_ROWS ? T - t0 : NK_ROWS;
        for (size_t n = 0; n < N; n++)
            for (size_t r = 0; r < nt; r++)
                y[(t0 + r) * N + n] = dot_ref(x + (t0 + r) * K, w + n * K, 1, K);
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

/* ------------------------------------------------------------------------ */
/* Causal self-attention, the one reference: the plain level runs it row by  */
/* row, the hooked forward path step by step around its hooks.               */
/* ------------------------------------------------------------------------ */

void lsc_attn_scores_ref(const lsc_attn_args *a, size_t i, float *row) {
    size_t h = i / a->T, t = i % a->T, last = a->n_past + t, P = a->n_past + a->T;
    const float *q = a->q + t * a->q_stride + h * a->D;
    const float *kt = a->kt + h * a->D * a->kt_stride;
    for (size_t p = 0; p <= last; p++) {
        float s = 0;
        for (size_t d = 0; d < a->D; d++) s += q[d] * kt[d * a->kt_stride + p];
        s /= a->div_d;
        s /= a->div_layer;
        row[p] = s;
    }
    for (size_t p = last + 1; p < P; p++) row[p] = -INFINITY;
}

/* The max subtracted, the sum in double. */
void lsc_attn_softmax_ref(float *row, size_t P) {
    float mx = -INFINITY;
    for (size_t p = 0; p < P; p++) mx = row[p] > mx ? row[p] : mx;
    double sum = 0;
    for (size_t p = 0; p < P; p++) {
        row[p] = expf(row[p] - mx);
        sum += row[p];
    }
    float inv = (float)(1.0 / sum);
    for (size_t p = 0; p < P; p++) row[p] *= inv;
}

/* Every position with a weight (a hook may have given masked ones one). */
void lsc_attn_values_ref(const lsc_attn_args *a, size_t i, const float *row) {
    size_t h = i / a->T, t = i % a->T, P = a->n_past + a->T;
    float *z = a->z + t * a->z_stride + h * a->D;
    memset(z, 0, a->D * sizeof *z);
    for (size_t p = 0; p < P; p++) {
        float w = row[p];
        if (w == 0) continue;
        const float *v = a->v + p * a->v_stride + h * a->D;
        for (size_t d = 0; d < a->D; d++) z[d] += w * v[d];
    }
}

void lsc_attention_ref(const lsc_attn_args *a, float *row) {
    for (size_t i = 0; i < a->H * a->T; i++) {
        lsc_attn_scores_ref(a, i, row);
        lsc_attn_softmax_ref(row, a->n_past + a->T);
        lsc_attn_values_ref(a, i, row);
    }
}

void lsc_gemm_blocked_ref(const float *x, const lsc_f32u *w, const lsc_f32u *b, float *y,
                          size_t T, size_t K, size_t N, size_t n0, size_t n1) {
    for (size_t t = 0; t < T; t++)
        for (size_t n = n0; n < n1; n++) {
            float v = 0.0f;
            for (size_t k0 = 0; k0 < K; k0 += LSC_GEMM_KC) {
                size_t k1 = K - k0 < LSC_GEMM_KC ? K : k0 + LSC_GEMM_KC;
                float acc = 0.0f;
                for (size_t k = k0; k < k1; k++) acc = fmaf(x[t * K + k], w[k * N + n], acc);
                v = k0 ? v + acc : (b ? acc + b[n] : acc);
            }
            y[t * N + n] = v;
        }
}

void lsc_matmul_ref(const float *x, const lsc_weights *w, const lsc_f32u *b, float *y,
                    size_t T, size_t K, size_t N) {
    if (w->type == LSC_WEIGHTS_F32) {
        switch (w->layout) {
        case LSC_LAYOUT_NK:
            lsc_matmul_nk_ref(x, w->data, y, T, K, N);
            if (b)
                for (size_t t = 0; t < T; t++)
                    for (size_t n = 0; n < N; n++) y[t * N + n] += b[n];
            break;
        case LSC_LAYOUT_PANELS:
            if (w->panels_from_nk) { /* lsc_matmul_nk_ref's order (dot_ref), then b */
                const lsc_f32u *p = w->data; /* column n: stride 16 in its panel */
                for (size_t t = 0; t < T; t++)
                    for (size_t n = 0; n < N; n++) {
                        float v = dot_ref(x + t * K, p + n / LSC_PANEL_COLS * LSC_PANEL_COLS * K +
                                          n % LSC_PANEL_COLS, LSC_PANEL_COLS, K);
                        y[t * N + n] = b ? v + b[n] : v;
                    }
                break;
            }
            /* lsc_matmul_kn_ref's order: y = b, then k by k */
            for (size_t t = 0; t < T; t++) {
                float *yt = y + t * N;
                for (size_t n = 0; n < N; n++) yt[n] = b ? b[n] : 0.0f;
                for (size_t k = 0; k < K; k++)
                    for (size_t n = 0; n < N; n++)
                        yt[n] += x[t * K + k] * lsc_weights_get(w, K, N, k, n);
            }
            break;
        default: lsc_matmul_kn_ref(x, w->data, b, y, T, K, N);
        }
        return;
    }
    if (w->type == LSC_WEIGHTS_BF16) {
        for (size_t t = 0; t < T; t++)
            for (size_t n = 0; n < N; n++) {
                float s = 0.0f;
                for (size_t k = 0; k < K; k++) s += x[t * K + k] * lsc_weights_get(w, K, N, k, n);
                y[t * N + n] = b ? s + b[n] : s;
            }
        return;
    }
    /* Q8: x rounded to 16 bits one block at a time (lsc_q8_quantize_x on the
     * block gives the bits it gives on the whole row), the exact integer
     * block sums scaled and added to each output in block order, then the
     * bias: no memory needed */
    size_t nb = (K + LSC_Q8_BLOCK - 1) / LSC_Q8_BLOCK;
    const int8_t *q = w->data;
    for (size_t t = 0; t < T; t++) {
        float *yt = y + t * N;
        for (size_t n = 0; n < N; n++) yt[n] = 0.0f;
        for (size_t blk = 0; blk < nb; blk++) {
            size_t k0 = blk * LSC_Q8_BLOCK, len = K - k0 < LSC_Q8_BLOCK ? K - k0 : LSC_Q8_BLOCK;
            int16_t xq[LSC_Q8_BLOCK];
            float xs;
            lsc_q8_quantize_x(x + t * K + k0, len, xq, &xs);
            for (size_t n = 0; n < N; n++) {
                int32_t s = 0;
                for (size_t i = 0; i < len; i++) s += (int32_t)q[n * K + k0 + i] * xq[i];
                yt[n] += w->scale[n * nb + blk] * xs * (float)s;
            }
        }
        if (b)
            for (size_t n = 0; n < N; n++) yt[n] = yt[n] + b[n];
    }
}

/* ------------------------------------------------------------------------ */
/* The reference on one slice of the output, for the table of a level that  */
/* has no kernel of its own for something (dispatch.c splits them over the  */
/* threads; each output is computed as the whole-product reference does).   */
/* ------------------------------------------------------------------------ */

void lsc_bf16_prep_ref(const float *x, size_t K, float *xr) { memcpy(xr, x, K * sizeof *xr); }

void lsc_matvec_bf16_ref(const float *x, const uint16_t *w, const lsc_f32u *b, float *y,
                         size_t K, size_t n0, size_t n1) {
    lsc_weights wt = {.type = LSC_WEIGHTS_BF16, .layout = LSC_LAYOUT_NK, .data = w};
    for (size_t n = n0; n < n1; n++) {
        float s = 0.0f;
        for (size_t k = 0; k < K; k++) s += x[k] * lsc_weights_get(&wt, K, 0, k, n);
        y[n] = b ? s + b[n] : s;
    }
}

void lsc_matvec_q8_ref(const int16_t *xq, const float *xs, const int8_t *q, const float *scale,
                       const lsc_f32u *b, float *y, size_t K, size_t n0, size_t n1) {
    size_t nb = (K + LSC_Q8_BLOCK - 1) / LSC_Q8_BLOCK;
    for (size_t n = n0; n < n1; n++) {
        float s = 0.0f;
        for (size_t blk = 0; blk < nb; blk++) {
            int32_t t = 0;
            for (size_t k = blk * LSC_Q8_BLOCK; k < K && k < (blk + 1) * LSC_Q8_BLOCK; k++)
                t += (int32_t)q[n * K + k] * xq[k];
            s += scale[n * nb + blk] * xs[blk] * (float)t;
        }
        y[n] = b ? s + b[n] : s;
    }
}

void lsc_layernorm_rows_ref(const float *x, const lsc_f32u *g, const lsc_f32u *b, float *y,
                            size_t E, float eps, size_t t0, size_t t1) {
    lsc_layernorm_ref(x + t0 * E, g, b, y + t0 * E, t1 - t0, E, eps);
}

void lsc_attention_rows_ref(const lsc_attn_args *a, size_t i0, size_t i1, float *row) {
    for (size_t i = i0; i < i1; i++) {
        lsc_attn_scores_ref(a, i, row);
        lsc_attn_softmax_ref(row, a->n_past + a->T);
        lsc_attn_values_ref(a, i, row);
    }
}

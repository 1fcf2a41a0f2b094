/* weights.c - weight matrices in F32, BF16 and Q8: sizes, conversion at load,
 * element access and the rounding of x for Q8 products (kernels.h). Formats
 * only: the products are in ref.c and the levels above it. */
#include "internal.h"
#include "levels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static size_t q8_blocks(size_t K) { return (K + LSC_Q8_BLOCK - 1) / LSC_Q8_BLOCK; }

/* The largest |v[i]| (NaNs skipped, as fmaxf does), inline: fmaxf is a call
 * into libm on baseline x86-64, which made lsc_q8_quantize_x cost 0.6 ms a
 * token of GPT-2 124M (5% of a Q8 decode step, on the calling thread). */
static float abs_max(const float *v, size_t len) {
    float m = 0.0f;
    for (size_t i = 0; i < len; i++) {
        float a = fabsf(v[i]);
        m = a > m ? a : m;
    }
    return m;
}

/* v rounded to the nearest integer, ties to even, for |v| < 2^22: the
 * 1.5 * 2^23 trick, inline, unlike lrintf on baseline x86-64. NaN gives 0
 * (what (int16_t)lrintf gave on x86-64; a NaN cast to int is undefined). */
static int round_even(float v) { return v == v ? (int)((v + 12582912.0f) - 12582912.0f) : 0; }

bool lsc_weights_size(lsc_weight_type type, size_t K, size_t N, size_t *data_bytes,
                      size_t *scale_bytes) {
    size_t elems;
    if (!lsc_mul_size(K, N, &elems)) return false;
    *scale_bytes = 0;
    switch (type) {
    case LSC_WEIGHTS_F32: return lsc_mul_size(elems, sizeof(float), data_bytes);
    case LSC_WEIGHTS_BF16: return lsc_mul_size(elems, sizeof(uint16_t), data_bytes);
    case LSC_WEIGHTS_Q8:
        *data_bytes = elems;
        return lsc_mul_size(q8_blocks(K), N, scale_bytes) &&
               lsc_mul_size(*scale_bytes, sizeof(float), scale_bytes);
    }
    return false;
}

/* float32 -> bfloat16 bits, rounding to nearest even (NaN stays NaN). */
static uint16_t f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

static float bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

void lsc_weights_convert(const lsc_f32u *w, int src_nk, size_t K, size_t N,
                         lsc_weight_type type, void *data, float *scale, lsc_weights *out) {
    out->type = type;
    out->layout = LSC_LAYOUT_NK;
    out->panels_from_nk = 0;
    out->data = data;
    out->scale = NULL;
    if (type == LSC_WEIGHTS_F32) {
        float *d = data;
        for (size_t n = 0; n < N; n++)
            for (size_t k = 0; k < K; k++) d[n * K + k] = src_nk ? w[n * K + k] : w[k * N + n];
        return;
    }
    /* 16 outputs x one block of k at a time: for the [K, N] layout each of
     * the block's rows gives one 64-byte line of 16 outputs, so the
     * transposition reads every cache line once */
    for (size_t n0 = 0; n0 < N; n0 += 16) {
        size_t nc = N - n0 < 16 ? N - n0 : 16;
        for (size_t k0 = 0; k0 < K; k0 += LSC_Q8_BLOCK) {
            size_t len = K - k0 < LSC_Q8_BLOCK ? K - k0 : LSC_Q8_BLOCK;
            float tile[16][LSC_Q8_BLOCK];
            for (size_t i = 0; i < len; i++)
                for (size_t c = 0; c < nc; c++)
                    tile[c][i] = src_nk ? w[(n0 + c) * K + k0 + i] : w[(k0 + i) * N + n0 + c];
            for (size_t c = 0; c < nc; c++) {
                size_t n = n0 + c;
                const float *v = tile[c];
                if (type == LSC_WEIGHTS_BF16) {
                    uint16_t *d = (uint16_t *)data + n * K + k0;
                    for (size_t i = 0; i < len; i++) d[i] = f32_to_bf16(v[i]);
                    continue;
                }
                float amax = abs_max(v, len);
                float s = amax / 127.0f, inv = s > 0.0f ? 1.0f / s : 0.0f;
                int8_t *q = (int8_t *)data + n * K + k0;
                for (size_t i = 0; i < len; i++) q[i] = (int8_t)round_even(v[i] * inv);
                scale[n * q8_blocks(K) + k0 / LSC_Q8_BLOCK] = s;
            }
        }
    }
    if (type == LSC_WEIGHTS_Q8) out->scale = scale;
}

/* Rows of a [K, N] matrix put in panels at a time. */
#define KN_PIECE_ROWS 32

bool lsc_weights_panels_size(size_t K, size_t N, size_t *floats) {
    size_t cols = N / LSC_PANEL_COLS * LSC_PANEL_COLS + (N % LSC_PANEL_COLS ? LSC_PANEL_COLS : 0);
    return cols >= N && lsc_mul_size(cols, K, floats);
}

void lsc_weights_panels(const lsc_f32u *w, int src_nk, size_t K, size_t N, float *data,
                        lsc_weights *out) {
    *out = (lsc_weights){.type = LSC_WEIGHTS_F32, .layout = LSC_LAYOUT_PANELS, .data = data, .panels_from_nk = src_nk};
    const size_t P = LSC_PANEL_COLS;
    if (!src_nk) {
        /* [K, N]: a few rows at a time across every panel, so that w is read
         * front to back and each panel written in runs (one panel at a time
         * over all of K would read one line per row: a cache miss each) */
        for (size_t k0 = 0; k0 < K; k0 += KN_PIECE_ROWS) {
            size_t k1 = K - k0 < KN_PIECE_ROWS ? K : k0 + KN_PIECE_ROWS;
            for (size_t n0 = 0; n0 < N; n0 += P) {
                size_t nc = N - n0 < P ? N - n0 : P;
                for (size_t k = k0; k < k1; k++) {
                    float *row = data + n0 * K + k * P;
                    memcpy(row, w + k * N + n0, nc * sizeof(float));
                    for (size_t c = nc; c < P; c++) row[c] = 0.0f;
                }
            }
        }
        return;
    }
    for (size_t n0 = 0; n0 < N; n0 += P) { /* [N, K]: each output front to back */
        size_t nc = N - n0 < P ? N - n0 : P;
        float *panel = data + n0 * K;
        for (size_t c = 0; c < P; c++)
            for (size_t k = 0; k < K; k++) panel[k * P + c] = c < nc ? w[(n0 + c) * K + k] : 0.0f;
    }
}

/* Index of element (k, n) in the layout. */
static size_t weights_index(const lsc_weights *w, size_t K, size_t N, size_t k, size_t n) {
    switch (w->layout) {
    case LSC_LAYOUT_NK: return n * K + k;
    case LSC_LAYOUT_PANELS: return n / LSC_PANEL_COLS * LSC_PANEL_COLS * K + k * LSC_PANEL_COLS + n % LSC_PANEL_COLS;
    default: return k * N + n;
    }
}

float lsc_weights_get(const lsc_weights *w, size_t K, size_t N, size_t k, size_t n) {
    size_t i = weights_index(w, K, N, k, n);
    switch (w->type) {
    case LSC_WEIGHTS_F32: return ((const lsc_f32u *)w->data)[i];
    case LSC_WEIGHTS_BF16: return bf16_to_f32(((const uint16_t *)w->data)[i]);
    case LSC_WEIGHTS_Q8:
        return w->scale[n * q8_blocks(K) + k / LSC_Q8_BLOCK] * (float)((const int8_t *)w->data)[i];
    }
    return 0.0f;
}

void lsc_q8_quantize_x(const float *x, size_t K, int16_t *xq, float *xs) {
    for (size_t k0 = 0, b = 0; k0 < K; k0 += LSC_Q8_BLOCK, b++) {
        size_t len = K - k0 < LSC_Q8_BLOCK ? K - k0 : LSC_Q8_BLOCK;
        float amax = abs_max(x + k0, len);
        float inv = amax > 0.0f ? 32767.0f / amax : 0.0f;
        xs[b] = amax / 32767.0f;
        for (size_t i = 0; i < len; i++) xq[k0 + i] = (int16_t)round_even(x[k0 + i] * inv);
    }
}

void lsc_weights_column(const lsc_weights *w, size_t K, size_t N, size_t n, float *out) {
    for (size_t k = 0; k < K; k++) out[k] = lsc_weights_get(w, K, N, k, n);
}

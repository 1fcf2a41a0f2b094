/* test_kernels_ref.c - the reference kernels against plain double-precision
 * loops and hand-computed values, with weights at odd (unaligned) addresses as
 * in a mmap'd safetensors file; the dispatching entry points against the
 * references. */
#include "check.h"
#include "kernels/levels.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Deterministic values in [-1, 1). */
static float rnd(uint32_t *s) {
    *s = *s * 1664525u + 1013904223u;
    return (float)((*s >> 8) & 0xffff) / 32768.0f - 1.0f;
}

/* A float array placed one byte past an aligned address (freed via *base). */
static lsc_f32u *unaligned(size_t n, uint32_t *s, void **base) {
    char *b = malloc(n * sizeof(float) + 8);
    lsc_f32u *p = (lsc_f32u *)(b + 1);
    for (size_t i = 0; i < n; i++) p[i] = rnd(s);
    *base = b;
    return p;
}

/* The best level on the calling thread, scratch for the shapes below. */
static lsc_kernels *kern;

static void test_matmul_kn(void) {
    uint32_t s = 1;
    size_t shapes[][3] = {{1, 1, 1}, {3, 5, 7}, {9, 33, 17}, {5, 64, 96}};
    for (size_t c = 0; c < sizeof shapes / sizeof shapes[0]; c++) {
        size_t T = shapes[c][0], K = shapes[c][1], N = shapes[c][2];
        void *wb, *bb;
        float *x = malloc(T * K * sizeof *x), *y = malloc(T * N * sizeof *y),
              *y2 = malloc(T * N * sizeof *y2);
        for (size_t i = 0; i < T * K; i++) x[i] = rnd(&s);
        lsc_f32u *w = unaligned(K * N, &s, &wb), *b = unaligned(N, &s, &bb);
        lsc_matmul_kn_ref(x, w, b, y, T, K, N);
        double worst = 0;
        for (size_t t = 0; t < T; t++)
            for (size_t n = 0; n < N; n++) {
                double acc = b[n];
                for (size_t k = 0; k < K; k++) acc += (double)x[t * K + k] * w[k * N + n];
                worst = fmax(worst, fabs(acc - y[t * N + n]));
            }
        CHECK(worst <= 1e-5 * (double)K);
        lsc_matmul_kn_ref(x, w, NULL, y2, T, K, N);
        for (size_t t = 0; t < T; t++)
            for (size_t n = 0; n < N; n++) CHECK_NEAR(y[t * N + n] - b[n], y2[t * N + n], 1e-5);
        lsc_matmul_kn(kern, x, w, b, y2, T, K, N);
        for (size_t i = 0; i < T * N; i++) CHECK_NEAR(y[i], y2[i], 1e-5 * (double)K);
        free(x), free(y), free(y2), free(wb), free(bb);
    }
}

static void test_matmul_nk(void) {
    uint32_t s = 2;
    size_t shapes[][3] = {{1, 1, 1}, {1, 7, 3}, {4, 33, 19}, {70, 32, 50}};
    for (size_t c = 0; c < sizeof shapes / sizeof shapes[0]; c++) {
        size_t T = shapes[c][0], K = shapes[c][1], N = shapes[c][2];
        void *wb;
        float *x = malloc(T * K * sizeof *x), *y = malloc(T * N * sizeof *y),
              *y2 = malloc(T * N * sizeof *y2);
        for (size_t i = 0; i < T * K; i++) x[i] = rnd(&s);
        lsc_f32u *w = unaligned(N * K, &s, &wb);
        lsc_matmul_nk_ref(x, w, y, T, K, N);
        double worst = 0;
        for (size_t t = 0; t < T; t++)
            for (size_t n = 0; n < N; n++) {
                double acc = 0;
                for (size_t k = 0; k < K; k++) acc += (double)x[t * K + k] * w[n * K + k];
                worst = fmax(worst, fabs(acc - y[t * N + n]));
            }
        CHECK(worst <= 1e-5 * (double)K);
        lsc_matmul_nk(kern, x, w, y2, T, K, N);
        for (size_t i = 0; i < T * N; i++) CHECK_NEAR(y[i], y2[i], 1e-5 * (double)K);
        free(x), free(y), free(y2), free(wb);
    }
}

static void test_layernorm(void) {
    /* one row by hand: x = {1, 2, 3, 4}: mean 2.5, var 1.25 */
    float x[8] = {1, 2, 3, 4, 10, 10, 10, 10}, y[8];
    float g[4] = {1, 2, 1, 1}, b[4] = {0, 0, 1, 0};
    lsc_layernorm_ref(x, g, b, y, 2, 4, 1e-5f);
    double inv = 1.0 / sqrt(1.25 + 1e-5);
    CHECK_NEAR(y[0], -1.5 * inv, 1e-6);
    CHECK_NEAR(y[1], 2 * -0.5 * inv, 1e-6);
    CHECK_NEAR(y[2], 0.5 * inv + 1, 1e-6);
    CHECK_NEAR(y[3], 1.5 * inv, 1e-6);
    /* a constant row normalizes to the bias */
    CHECK_NEAR(y[4], 0, 1e-6);
    CHECK_NEAR(y[6], 1, 1e-6);
    /* in place */
    lsc_layernorm_ref(x, g, b, x, 2, 4, 1e-5f);
    CHECK(memcmp(x, y, sizeof y) == 0);
}

static void test_activations(void) {
    struct {
        lsc_act act;
        float in, want;
    } cases[] = {
        {LSC_ACT_GELU_NEW, 1.0f, 0.8411920f},  {LSC_ACT_GELU_NEW, -1.0f, -0.1588080f},
        {LSC_ACT_GELU_NEW, 0.0f, 0.0f},         {LSC_ACT_GELU, 1.0f, 0.8413447f},
        {LSC_ACT_GELU, -2.0f, -0.0455003f},     {LSC_ACT_GELU_FAST, 1.0f, 0.8411920f},
        {LSC_ACT_QUICK_GELU, 1.0f, 0.8457958f}, {LSC_ACT_RELU, -3.0f, 0.0f},
        {LSC_ACT_RELU, 3.0f, 3.0f},             {LSC_ACT_RELU6, 7.0f, 6.0f},
        {LSC_ACT_SILU, 1.0f, 0.7310586f},       {LSC_ACT_SIGMOID, 0.0f, 0.5f},
        {LSC_ACT_TANH, 1.0f, 0.7615942f},       {LSC_ACT_LINEAR, -4.5f, -4.5f},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        float v = cases[i].in, w = cases[i].in;
        lsc_act_apply_ref(cases[i].act, &v, 1);
        lsc_act_apply(kern, cases[i].act, &w, 1);
        CHECK_NEAR(v, cases[i].want, 2e-6);
        CHECK_NEAR(w, v, 1e-6);
    }
    float big[3] = {20, -20, 5};
    lsc_gelu_new_ref(big, 3);
    CHECK_NEAR(big[0], 20, 1e-5);
    CHECK_NEAR(big[1], 0, 1e-5);
}

/* lsc_q8_quantize_x by hand: each block's scale is its largest |x| / 32767
 * (NaNs skipped, as fmaxf does; a NaN itself becomes 0), values round to the
 * nearest integer with ties to even, and an all-zero block gives scale 0
 * and zeros. */
static void test_q8_quantize_x(void) {
    float x[69] = {0};
    /* block 0: max 32767, so x * 32767 / max is x itself */
    const float b0[10] = {NAN, 32767, 0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 3.49f, -32767};
    const int16_t q0[10] = {0, 32767, 0, 2, 2, 0, -2, -2, 3, -32767};
    memcpy(x, b0, sizeof b0);
    /* block 1: max 2, so 1 -> 16383.5 (a tie: 16384) and 0.5 -> 8191.75 */
    x[32] = 2.0f;
    x[33] = 1.0f;
    x[34] = -1.0f;
    x[35] = 0.5f;
    /* block 2: five zeros (a partial block) */
    int16_t xq[69];
    float xs[3];
    memset(xq, 0x55, sizeof xq);
    lsc_q8_quantize_x(x, 69, xq, xs);
    CHECK(xs[0] == 1.0f);
    for (int i = 0; i < 10; i++) CHECK(xq[i] == q0[i]);
    for (int i = 10; i < 32; i++) CHECK(xq[i] == 0);
    CHECK(xs[1] == 2.0f / 32767.0f);
    CHECK(xq[32] == 32767 && xq[33] == 16384 && xq[34] == -16384 && xq[35] == 8192);
    CHECK(xs[2] == 0.0f);
    for (int i = 64; i < 69; i++) CHECK(xq[i] == 0);
}

int main(void) {
    CHECK(lsc_kernels_new(LSC_SIMD_BEST, NULL, &kern, NULL) == LSC_OK);
    CHECK(lsc_kernels_reserve(kern, 70, 64, 96, 0, NULL) == LSC_OK);
    RUN(test_matmul_kn);
    RUN(test_matmul_nk);
    RUN(test_layernorm);
    RUN(test_activations);
    RUN(test_q8_quantize_x);
    lsc_kernels_free(kern);
    return CHECK_DONE();
}

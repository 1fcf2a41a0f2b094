/* test_kernels.c - every fast kernel against its reference, on odd shapes
 * (T = 1 and T > 1, K and N not multiples of 8, unaligned weights), at every
 * SIMD level this CPU has and at 1, 2 and 3 threads; results must also be
 * bit-identical across thread counts. Prints the max differences. */
#include "check.h"
#include "kernels/levels.h"
#include "pool.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

/* A deterministic uniform float in [-1, 1). */
static float frand(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) * (1.0 / (1 << 24))) * 2.0f - 1.0f;
}

static float *rand_vec(size_t n, float scale) {
    float *v = malloc((n ? n : 1) * sizeof *v);
    for (size_t i = 0; i < n; i++) v[i] = frand() * scale;
    return v;
}

/* n floats placed `offset` bytes past a malloc'd address (so possibly
 * unaligned), filled with random values; *base is what to free. */
static lsc_f32u *rand_weights(size_t n, size_t offset, void **base) {
    char *raw = malloc(n * sizeof(float) + 64);
    for (size_t i = 0; i < n; i++) {
        float v = frand();
        memcpy(raw + offset + i * sizeof(float), &v, sizeof v);
    }
    *base = raw;
    return (lsc_f32u *)(void *)(raw + offset);
}

static double max_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > m || d != d) m = d;
    }
    return m;
}

typedef struct shape {
    size_t T, K, N, offset;
} shape;

static const shape shapes[] = {
    {1, 1, 1, 0},    {1, 7, 5, 1},     {1, 37, 29, 2},   {1, 64, 768, 0}, {1, 300, 1000, 3},
    {2, 5, 3, 1},    {7, 33, 45, 2},   {6, 16, 16, 0},   {7, 768, 100, 1}, {13, 300, 70, 3},
    {19, 257, 273, 0}, {64, 96, 200, 1}, {5, 1024, 37, 2},
    /* T = 1 on more row groups and k blocks (16-row tiles, partial blocks) */
    {1, 768, 100, 1}, {1, 200, 47, 2}, {1, 1040, 35, 0}, {1, 16, 33, 3},
    /* [K, N] at 2 threads: two blocks read whole, the third in column ranges */
    {1, 768, 520, 1},
};

static lsc_simd levels[3];
static int n_levels;
/* The kernels of each level on 1, 2 and 3 threads, scratch reserved for
 * every shape below. */
static lsc_pool *pools[3];
static lsc_kernels *kerns[3][3];

/* The AVX-512 kernels sum in the AVX2 kernels' order: the AVX2 level's
 * result (kept in `avx2`) must come back bit for bit. */
static void same_as_avx2(lsc_simd level, const float *got, float *avx2, size_t n) {
    if (level == LSC_SIMD_AVX2) memcpy(avx2, got, n * sizeof *avx2);
    if (level == LSC_SIMD_AVX512) CHECK(memcmp(avx2, got, n * sizeof *avx2) == 0);
}

/* lsc_matmul_kn and lsc_matmul_nk at every level and thread count against
 * the references; and identical bits at 1, 2, 3 threads. */
static void test_matmul(void) {
    double worst_kn = 0, worst_nk = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        shape sh = shapes[s];
        void *wbase, *bbase;
        float *x = rand_vec(sh.T * sh.K, 1.0f);
        lsc_f32u *w = rand_weights(sh.K * sh.N, sh.offset, &wbase);
        lsc_f32u *b = rand_weights(sh.N, sh.offset, &bbase);
        float *ref = malloc(sh.T * sh.N * sizeof *ref);
        float *got = malloc(sh.T * sh.N * sizeof *got);
        float *one = malloc(sh.T * sh.N * sizeof *one);
        float *avx2 = malloc(sh.T * sh.N * sizeof *avx2);
        double tol = 2e-6 * (double)sh.K + 1e-6;
        for (int nk = 0; nk < 2; nk++) {
            if (nk) lsc_matmul_nk_ref(x, w, ref, sh.T, sh.K, sh.N);
            else lsc_matmul_kn_ref(x, w, s % 2 ? b : NULL, ref, sh.T, sh.K, sh.N);
            for (int l = 0; l < n_levels; l++) {
                for (int p = 0; p < 3; p++) {
                    memset(got, 0xff, sh.T * sh.N * sizeof *got); /* NaN: catches gaps */
                    if (nk) lsc_matmul_nk(kerns[l][p], x, w, got, sh.T, sh.K, sh.N);
                    else lsc_matmul_kn(kerns[l][p], x, w, s % 2 ? b : NULL, got, sh.T, sh.K, sh.N);
                    double d = max_diff(got, ref, sh.T * sh.N);
                    if (nk) worst_nk = d > worst_nk ? d : worst_nk;
                    else worst_kn = d > worst_kn ? d : worst_kn;
                    if (!(d <= tol))
                        fprintf(stderr, "  matmul_%s %s threads=%d T=%zu K=%zu N=%zu: max diff %.3g > %.3g\n",
                                nk ? "nk" : "kn", lsc_simd_name(levels[l]), p + 1, sh.T, sh.K,
                                sh.N, d, tol);
                    CHECK(d <= tol);
                    if (p == 0) memcpy(one, got, sh.T * sh.N * sizeof *one);
                    else CHECK(memcmp(one, got, sh.T * sh.N * sizeof *one) == 0);
                }
                same_as_avx2(levels[l], one, avx2, sh.T * sh.N);
            }
        }
        free(x);
        free(wbase);
        free(bbase);
        free(ref);
        free(got);
        free(one);
        free(avx2);
    }
    printf("  matmul_kn max diff vs ref %.3g, matmul_nk %.3g (tol 2e-6 K + 1e-6)\n", worst_kn,
           worst_nk);
}

/* F32 [K, N] products of T = 1 .. 17 rows (the T = 1 path, the unpacked
 * small-T one up to LSC_SMALL_T_MAX, the GEMM above it) give every row the
 * bits of lsc_gemm_blocked_ref at every fast level and thread count: a
 * row's result does not depend on how many rows share its product. */
static void test_small_t(void) {
    const shape sh[] = {{17, 37, 45, 1}, {17, 300, 200, 2}, {17, 768, 273, 3}, {17, 600, 130, 0}};
    size_t checked = 0;
    for (size_t s = 0; s < sizeof sh / sizeof sh[0]; s++) {
        void *wbase, *bbase;
        size_t K = sh[s].K, N = sh[s].N, Tmax = sh[s].T;
        float *x = rand_vec(Tmax * K, 1.0f);
        lsc_f32u *w = rand_weights(K * N, sh[s].offset, &wbase);
        lsc_f32u *b = rand_weights(N, sh[s].offset, &bbase);
        const lsc_f32u *bias = s % 2 ? b : NULL;
        float *ref = malloc(Tmax * N * sizeof *ref), *got = malloc(Tmax * N * sizeof *got);
        lsc_gemm_blocked_ref(x, w, bias, ref, Tmax, K, N, 0, N);
        for (int l = 0; l < n_levels; l++) {
            if (levels[l] == LSC_SIMD_REF) continue; /* the plain level sums in plain k order */
            for (int p = 0; p < 3; p++)
                for (size_t T = 1; T <= Tmax; T++) {
                    /* rows Tmax - T .. Tmax - 1: each row also in another place of the batch */
                    memset(got, 0xff, T * N * sizeof *got);
                    lsc_matmul_kn(kerns[l][p], x + (Tmax - T) * K, w, bias, got, T, K, N);
                    bool same = memcmp(got, ref + (Tmax - T) * N, T * N * sizeof *got) == 0;
                    if (!same)
                        fprintf(stderr, "  small T: %s threads=%d T=%zu K=%zu N=%zu: max diff %.3g vs the blocked reference\n",
                                lsc_simd_name(levels[l]), p + 1, T, K, N,
                                max_diff(got, ref + (Tmax - T) * N, T * N));
                    CHECK(same);
                    checked++;
                }
#if defined(__x86_64__)
            /* the small-T kernel itself on every T, past the dispatcher's crossover */
            if (levels[l] == LSC_SIMD_AVX2) {
                lsc_weights wt = {.type = LSC_WEIGHTS_F32, .layout = LSC_LAYOUT_KN, .data = w};
                for (size_t T = 1; T <= Tmax; T++) {
                    memset(got, 0xff, T * N * sizeof *got);
                    lsc_level_avx2.gemm_small(x, &wt, bias, got, T, K, N, 0, N);
                    CHECK(memcmp(got, ref, T * N * sizeof *got) == 0);
                    checked++;
                }
            }
#endif
        }
        free(x);
        free(wbase);
        free(bbase);
        free(ref);
        free(got);
    }
    /* more rows than one GEMM pass takes (GEMM_ROW_BLOCK, 512): the blocks
     * of rows change no bit either */
    size_t T = 1100, K = 300, N = 70;
    void *wbase;
    float *x = rand_vec(T * K, 1.0f);
    lsc_f32u *w = rand_weights(K * N, 2, &wbase);
    float *ref = malloc(T * N * sizeof *ref), *got = malloc(T * N * sizeof *got);
    lsc_gemm_blocked_ref(x, w, w, ref, T, K, N, 0, N); /* bias: W's first row */
    for (int l = 0; l < n_levels; l++) {
        if (levels[l] == LSC_SIMD_REF) continue;
        for (int p = 0; p < 3; p++) {
            CHECK(lsc_kernels_reserve(kerns[l][p], T, K, N, 0, NULL) == LSC_OK);
            memset(got, 0xff, T * N * sizeof *got);
            lsc_matmul_kn(kerns[l][p], x, w, w, got, T, K, N);
            CHECK(memcmp(got, ref, T * N * sizeof *got) == 0);
            checked++;
        }
    }
    free(x);
    free(wbase);
    free(ref);
    free(got);
    printf("  F32 [K, N], T = 1..17 and 1100: %zu products bit-identical to lsc_gemm_blocked_ref\n",
           checked);
}

/* F32 weights in panels (lsc_weights_panels, what the model keeps when the
 * weights are read into memory): made from [K, N] and from [N, K] they are
 * the same floats; every product on them, T = 1 .. 17 and 1100 rows, gives
 * the bits of the same product on [K, N] (lsc_gemm_blocked_ref at the fast
 * levels, lsc_matmul_kn_ref at the plain one) at every thread count. */
static void test_panels(void) {
    const shape sh[] = {{17, 37, 45, 1}, {17, 300, 200, 2}, {17, 768, 273, 3}, {17, 600, 130, 0},
                        {32, 300, 70, 1}, {1100, 300, 70, 2}};
    size_t checked = 0;
    for (size_t s = 0; s < sizeof sh / sizeof sh[0]; s++) {
        void *wbase, *bbase;
        size_t K = sh[s].K, N = sh[s].N, Tmax = sh[s].T, floats = 0;
        float *x = rand_vec(Tmax * K, 1.0f);
        lsc_f32u *w = rand_weights(K * N, sh[s].offset, &wbase);
        lsc_f32u *b = rand_weights(N, sh[s].offset, &bbase);
        const lsc_f32u *bias = s % 2 ? NULL : b;
        CHECK(lsc_weights_panels_size(K, N, &floats) && floats == (N + 15) / 16 * 16 * K);
        float *wt = malloc(K * N * sizeof *wt), *p1 = aligned_alloc(64, floats * sizeof(float));
        float *p2 = aligned_alloc(64, floats * sizeof(float));
        for (size_t k = 0; k < K; k++)
            for (size_t n = 0; n < N; n++) wt[n * K + k] = w[k * N + n];
        lsc_weights pw, pw2;
        lsc_weights_panels(w, 0, K, N, p1, &pw);
        lsc_weights_panels(wt, 1, K, N, p2, &pw2);
        CHECK(memcmp(p1, p2, floats * sizeof(float)) == 0);
        CHECK(pw.layout == LSC_LAYOUT_PANELS && pw.data == p1);
        bool get_ok = true;
        for (size_t k = 0; k < K; k += 7)
            for (size_t n = 0; n < N; n++) get_ok &= lsc_weights_get(&pw, K, N, k, n) == w[k * N + n];
        CHECK(get_ok);
        float *blocked = malloc(Tmax * N * sizeof *blocked), *plain = malloc(Tmax * N * sizeof *plain);
        float *got = malloc(Tmax * N * sizeof *got);
        lsc_gemm_blocked_ref(x, w, bias, blocked, Tmax, K, N, 0, N);
        for (int l = 0; l < n_levels; l++)
            for (int p = 0; p < 3; p++) {
                CHECK(lsc_kernels_reserve(kerns[l][p], Tmax, K, N, 0, NULL) == LSC_OK);
                size_t t_first = Tmax > 17 ? Tmax : 1; /* 32: three tiles; 1100: the row blocks */
                for (size_t T = t_first; T <= Tmax; T++) {
                    const float *xt = x + (Tmax - T) * K;
                    const float *want = blocked + (Tmax - T) * N;
                    if (levels[l] == LSC_SIMD_REF) {
                        lsc_matmul_kn_ref(xt, w, bias, plain, T, K, N);
                        want = plain;
                    }
                    memset(got, 0xff, T * N * sizeof *got);
                    lsc_matmul(kerns[l][p], xt, &pw, bias, got, T, K, N);
                    bool same = memcmp(got, want, T * N * sizeof *got) == 0;
                    /* made from [N, K]: the plain level sums as lsc_matmul_nk_ref */
                    if (levels[l] == LSC_SIMD_REF) {
                        lsc_matmul_nk_ref(xt, wt, plain, T, K, N);
                        for (size_t i = 0; bias && i < T * N; i++) plain[i] += bias[i % N];
                    }
                    float *got2 = malloc(T * N * sizeof *got2);
                    lsc_matmul(kerns[l][p], xt, &pw2, bias, got2, T, K, N);
                    same = same && memcmp(got2, want, T * N * sizeof *got2) == 0;
                    free(got2);
                    if (!same)
                        fprintf(stderr, "  panels: %s threads=%d T=%zu K=%zu N=%zu: max diff %.3g\n",
                                lsc_simd_name(levels[l]), p + 1, T, K, N, max_diff(got, want, T * N));
                    CHECK(same);
                    checked++;
                }
            }
#if defined(__x86_64__)
        if (lsc_simd_best() != LSC_SIMD_REF) { /* the AVX-512 GEMM packs panels with AVX2's packing */
            lsc_weights kn = {.type = LSC_WEIGHTS_F32, .layout = LSC_LAYOUT_KN, .data = w};
            float *a = aligned_alloc(64, LSC_GEMM_PACK_AVX2 * sizeof(float));
            float *c = aligned_alloc(64, LSC_GEMM_PACK_AVX2 * sizeof(float));
            size_t kc = K < LSC_GEMM_KC ? K : LSC_GEMM_KC, k0 = K - kc, j0 = N > 32 ? 16 : 0;
            size_t nc = N - j0 < 128 ? N - j0 : 128;
            lsc_gemm_pack_avx2(&kn, K, N, k0, kc, j0, nc, a);
            lsc_gemm_pack_avx2(&pw, K, N, k0, kc, j0, nc, c);
            CHECK(memcmp(a, c, (nc + 15) / 16 * 16 * kc * sizeof(float)) == 0);
            free(a);
            free(c);
        }
#endif
        free(x);
        free(wbase);
        free(bbase);
        free(wt);
        free(p1);
        free(p2);
        free(blocked);
        free(plain);
        free(got);
    }
    printf("  F32 in panels, T = 1..17, 32 and 1100: %zu products bit-identical to the same on [K, N]\n",
           checked);
}

/* Conversion to BF16 and Q8 stays within the format's rounding error, and
 * lsc_matmul on every format and layout matches lsc_matmul_ref at every level
 * and thread count, with identical bits across thread counts. */
static void test_weight_formats(void) {
    const lsc_weight_type types[3] = {LSC_WEIGHTS_F32, LSC_WEIGHTS_BF16, LSC_WEIGHTS_Q8};
    double worst[3] = {0, 0, 0}, conv[3] = {0, 0, 0};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        shape sh = shapes[s];
        void *wbase, *bbase;
        float *x = rand_vec(sh.T * sh.K, 1.0f);
        lsc_f32u *w = rand_weights(sh.K * sh.N, sh.offset, &wbase);
        lsc_f32u *b = rand_weights(sh.N, sh.offset, &bbase);
        float *ref = malloc(sh.T * sh.N * sizeof *ref), *got = malloc(sh.T * sh.N * sizeof *got);
        float *one = malloc(sh.T * sh.N * sizeof *one);
        float *avx2 = malloc(sh.T * sh.N * sizeof *avx2);
        for (int ti = 0; ti < 3; ti++) {
            int src_nk = (int)(s % 2);
            size_t db, sb;
            CHECK(lsc_weights_size(types[ti], sh.K, sh.N, &db, &sb));
            void *data = malloc(db + 1);
            float *scale = malloc(sb + 4);
            lsc_weights wt;
            lsc_weights_convert(w, src_nk, sh.K, sh.N, types[ti], data, scale, &wt);
            for (size_t k = 0; k < sh.K; k++)
                for (size_t n = 0; n < sh.N; n++) {
                    float orig = src_nk ? w[n * sh.K + k] : w[k * sh.N + n];
                    double e = fabs(lsc_weights_get(&wt, sh.K, sh.N, k, n) - orig);
                    conv[ti] = e > conv[ti] ? e : conv[ti];
                }
            lsc_matmul_ref(x, &wt, b, ref, sh.T, sh.K, sh.N);
            double tol = 2e-6 * (double)sh.K + 1e-6;
            /* the T > 1 Q8 product uses x unrounded: add the bound on the
             * reference's 16-bit rounding of x (|x|, |w| < 1) */
            if (types[ti] == LSC_WEIGHTS_Q8 && sh.T > 1) tol += (double)sh.K * 0.5 / 32767;
            for (int l = 0; l < n_levels; l++) {
                for (int p = 0; p < 3; p++) {
                    memset(got, 0xff, sh.T * sh.N * sizeof *got);
                    lsc_matmul(kerns[l][p], x, &wt, b, got, sh.T, sh.K, sh.N);
                    double d = max_diff(got, ref, sh.T * sh.N);
                    worst[ti] = d > worst[ti] ? d : worst[ti];
                    CHECK(d <= tol);
                    if (p == 0) memcpy(one, got, sh.T * sh.N * sizeof *one);
                    else CHECK(memcmp(one, got, sh.T * sh.N * sizeof *one) == 0);
                }
                /* the AVX-512 BF16 T = 1 kernel sums in other lanes than
                 * AVX2's (checked against the reference above) */
                if (types[ti] != LSC_WEIGHTS_BF16 || sh.T > 1)
                    same_as_avx2(levels[l], one, avx2, sh.T * sh.N);
            }
            free(data);
            free(scale);
        }
        free(x);
        free(wbase);
        free(bbase);
        free(ref);
        free(got);
        free(one);
        free(avx2);
    }
    /* weights are in [-1, 1): bf16 keeps 8 bits, q8 steps are <= 1/127 */
    CHECK(conv[0] == 0.0);
    CHECK(conv[1] <= 1.0 / 256);
    CHECK(conv[2] <= 0.5 / 127 + 1e-7);
    printf("  conversion max error: bf16 %.3g (tol 2^-8), q8 %.3g (tol 0.5/127)\n", conv[1], conv[2]);
    printf("  lsc_matmul max diff vs ref: f32 nk %.3g, bf16 %.3g, q8 %.3g (tol 2e-6 K + 1e-6,"
           " + K / 65534 for q8 at T > 1)\n",
           worst[0], worst[1], worst[2]);
}

/* Weights with the spread of real ones: rows whose scales differ by up to
 * 100x (as GPT-2's do across output features) and rare outliers 30x the
 * rest. With these the Q8 block layout matters: each weight's error must be
 * within half a step of its own 32-weight block, max|w| / 254 (a scale per
 * row or per tensor gives the small blocks steps many times too coarse), and
 * BF16 within half a unit in the last place of its 8 significant bits
 * (truncation gives up to a whole unit). Both bounds are the formats' exact rounding bounds, so
 * the measured worst ratio to them is close to 1 and printed. */
static lsc_f32u *real_weights(size_t K, size_t N, int src_nk, void **base) {
    float *w = malloc(K * N * sizeof *w + 4);
    for (size_t n = 0; n < N; n++) {
        float row_scale = powf(10.0f, frand()); /* 0.1 .. 10 */
        for (size_t k = 0; k < K; k++) {
            float v = frand() * row_scale * 0.05f;
            if ((rng_state >> 20) % 97 == 0) v *= 30.0f; /* an outlier */
            w[src_nk ? n * K + k : k * N + n] = v;
        }
    }
    *base = w;
    return (lsc_f32u *)w;
}

static void test_real_weight_conversion(void) {
    const size_t kn[][2] = {{768, 64}, {300, 70}, {45, 33}};
    double q8_ratio = 0, bf16_ratio = 0;
    int q8_bad = 0, bf16_bad = 0;
    for (size_t s = 0; s < 3; s++)
        for (int src_nk = 0; src_nk < 2; src_nk++) {
            size_t K = kn[s][0], N = kn[s][1];
            void *base;
            lsc_f32u *w = real_weights(K, N, src_nk, &base);
            for (int ti = 0; ti < 2; ti++) {
                lsc_weight_type type = ti ? LSC_WEIGHTS_Q8 : LSC_WEIGHTS_BF16;
                size_t db, sb;
                CHECK(lsc_weights_size(type, K, N, &db, &sb));
                void *data = malloc(db + 1);
                float *scale = malloc(sb + 4);
                lsc_weights wt;
                lsc_weights_convert(w, src_nk, K, N, type, data, scale, &wt);
                for (size_t n = 0; n < N; n++)
                    for (size_t k0 = 0; k0 < K; k0 += LSC_Q8_BLOCK) {
                        size_t k1 = k0 + LSC_Q8_BLOCK < K ? k0 + LSC_Q8_BLOCK : K;
                        double amax = 0;
                        for (size_t k = k0; k < k1; k++) {
                            double v = fabs((double)(src_nk ? w[n * K + k] : w[k * N + n]));
                            amax = v > amax ? v : amax;
                        }
                        for (size_t k = k0; k < k1; k++) {
                            double orig = src_nk ? w[n * K + k] : w[k * N + n];
                            double e = fabs((double)lsc_weights_get(&wt, K, N, k, n) - orig);
                            int ex;
                            frexp(orig, &ex); /* |w| = m 2^ex, m in [0.5, 1): the ulp is 2^(ex - 8) */
                            double bound = ti ? amax / 254.0 * (1 + 1e-6) : ldexp(1.0, ex - 9);
                            double r = bound > 0 ? e / bound : (e > 0 ? INFINITY : 0);
                            if (ti) {
                                q8_ratio = r > q8_ratio ? r : q8_ratio;
                                q8_bad += !(r <= 1.0);
                            } else {
                                bf16_ratio = r > bf16_ratio ? r : bf16_ratio;
                                bf16_bad += !(r <= 1.0);
                            }
                        }
                    }
                free(data);
                free(scale);
            }
            free(base);
        }
    CHECK(q8_bad == 0);
    CHECK(bf16_bad == 0);
    printf("  real-spread weights: q8 error / (block max / 254) at most %.4f, bf16 error / "
           "(ulp / 2) at most %.4f (both must be <= 1)\n", q8_ratio, bf16_ratio);
}

/* lsc_layernorm and lsc_gelu_new against the references (layernorm at two
 * epsilons). */
static void test_rows(void) {
    const size_t Es[] = {1, 7, 32, 45, 768};
    const size_t Ts[] = {1, 3, 70};
    double worst_ln = 0, worst_gelu = 0;
    for (size_t ei = 0; ei < 5; ei++)
        for (size_t ti = 0; ti < 3; ti++) {
            size_t T = Ts[ti], E = Es[ei];
            void *gb, *bb;
            float *x = rand_vec(T * E, 3.0f);
            for (size_t i = 0; i < T * E; i++) x[i] += 0.5f; /* a non-zero mean */
            lsc_f32u *g = rand_weights(E, 1, &gb), *b = rand_weights(E, 2, &bb);
            float *ref = malloc(T * E * sizeof *ref), *got = malloc(T * E * sizeof *got);
            /* GPT-2's epsilon, and one large enough that where it is added
             * (inside the square root) moves every output well past the
             * tolerance */
            const float eps = ti == 1 ? 0.5f : 1e-5f;
            lsc_layernorm_ref(x, g, b, ref, T, E, eps);
            float *gx = rand_vec(T * E * 4, 12.0f), *gref = malloc(T * E * 4 * sizeof *gref);
            float *gavx2 = malloc(T * E * 4 * sizeof *gavx2);
            memcpy(gref, gx, T * E * 4 * sizeof *gref);
            lsc_gelu_new_ref(gref, T * E * 4);
            for (int l = 0; l < n_levels; l++) {
                lsc_layernorm(kerns[l][1], x, g, b, got, T, E, eps);
                double d = max_diff(got, ref, T * E);
                worst_ln = d > worst_ln ? d : worst_ln;
                CHECK(d <= 1e-5);
                float *gg = malloc(T * E * 4 * sizeof *gg);
                memcpy(gg, gx, T * E * 4 * sizeof *gg);
                lsc_gelu_new(kerns[l][1], gg, T * E * 4);
                d = max_diff(gg, gref, T * E * 4);
                worst_gelu = d > worst_gelu ? d : worst_gelu;
                CHECK(d <= 1e-5);
                same_as_avx2(levels[l], gg, gavx2, T * E * 4);
                free(gg);
            }
            free(gavx2);
            free(x);
            free(gb);
            free(bb);
            free(ref);
            free(got);
            free(gx);
            free(gref);
        }
    printf("  layernorm max diff vs ref %.3g (tol 1e-5), gelu_new %.3g (tol 1e-5)\n", worst_ln,
           worst_gelu);
}

/* lsc_attention against lsc_attention_ref: new rows after a cache, several
 * head sizes (64 has its own path), strided q inside a fused qkv row. */
static void test_attention(void) {
    const size_t cases[][4] = {/* T, n_past, H, D */
                               {1, 0, 3, 64}, {1, 37, 3, 64}, {7, 0, 2, 64}, {5, 13, 3, 12},
                               {9, 4, 4, 8},  {3, 2, 2, 1},   {40, 0, 12, 64}, {1, 200, 5, 20},
                               {37, 5, 2, 64}, {18, 0, 3, 24}};
    double worst = 0;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        size_t T = cases[c][0], n_past = cases[c][1], H = cases[c][2], D = cases[c][3];
        size_t E = H * D, P = n_past + T;
        float *qkv = rand_vec(T * 3 * E, 2.0f);
        /* keys transposed [E, P + 3] (a cache longer than P), values [P, E] */
        float *k = rand_vec(E * (P + 3), 2.0f), *v = rand_vec(P * E, 1.0f);
        float *ref = malloc(T * E * sizeof *ref), *got = malloc(T * E * sizeof *got);
        float *one = malloc(T * E * sizeof *one), *avx2 = malloc(T * E * sizeof *avx2);
        lsc_attn_args a = {qkv, k, v, ref, 3 * E, P + 3, E, E, T, n_past, H, D,
                           sqrtf((float)D), c % 3 ? 1.0f : 3.0f};
        float *row = malloc(P * sizeof *row);
        lsc_attention_ref(&a, row);
        free(row);
        a.z = got;
        for (int l = 0; l < n_levels; l++) {
            for (int p = 0; p < 3; p++) {
                memset(got, 0xff, T * E * sizeof *got);
                lsc_attention(kerns[l][p], &a);
                double d = max_diff(got, ref, T * E);
                worst = d > worst ? d : worst;
                CHECK(d <= 1e-5);
                if (p == 0) memcpy(one, got, T * E * sizeof *one);
                else CHECK(memcmp(one, got, T * E * sizeof *one) == 0);
            }
            same_as_avx2(levels[l], one, avx2, T * E);
            /* the steps the hooked forward path runs give the same bits */
            float *S = malloc(H * T * P * sizeof *S);
            memset(got, 0xff, T * E * sizeof *got);
            lsc_attn_scores(kerns[l][1], &a, S);
            lsc_attn_softmax(kerns[l][1], &a, S);
            for (size_t i = 0; i < H * T; i++) { /* a pattern: rows sum to 1, 0 past the causal end */
                double s = 0;
                for (size_t p = 0; p < P; p++) s += S[i * P + p];
                CHECK_NEAR(s, 1.0, 1e-5);
                CHECK(S[i * P + P - 1] == 0.0f || i % T == T - 1);
            }
            lsc_attn_values(kerns[l][1], &a, S);
            CHECK(memcmp(one, got, T * E * sizeof *one) == 0);
            free(S);
        }
        free(qkv);
        free(avx2);
        free(k);
        free(v);
        free(ref);
        free(got);
        free(one);
    }
    printf("  attention max diff vs ref %.3g (tol 1e-5)\n", worst);
}

/* The vector exp against expf, including the clamped ends and -inf. */
static void test_exp(void) {
#if !defined(__x86_64__)
    printf("SKIP test_exp: the vector exp is the x86 levels'\n");
    return;
#else
    if (lsc_simd_best() == LSC_SIMD_REF) {
        printf("SKIP test_exp: the vector exp needs AVX2\n");
        return;
    }
    float x[203], out[203];
    for (int i = 0; i < 200; i++) x[i] = -100.0f + (float)i * 0.9f;
    x[200] = -INFINITY;
    x[201] = 0.0f;
    x[202] = 1e-3f;
    float sum = lsc_exp_sub_avx2(x, 0.0f, out, 203);
    double worst = 0, s = 0;
    for (int i = 0; i < 203; i++) {
        double e = exp((double)x[i]);
        s += out[i];
        if (x[i] < -87.3f) CHECK(out[i] == 0.0f);
        else if (x[i] <= 88.0f) {
            double rel = fabs(out[i] - e) / e;
            worst = rel > worst ? rel : worst;
        }
    }
    CHECK(worst < 4e-7);
    CHECK_NEAR(sum, s, 1e-5 * s);
    printf("  exp max relative error %.3g (tol 4e-7)\n", worst);
#endif
}

/* The pool runs every index once, splits cover the range, and bad thread
 * counts are refused. */
static void count_job(void *arg, int ith, int nth) {
    _Atomic int *hits = arg;
    atomic_fetch_add(&hits[ith], 1);
    atomic_fetch_add(&hits[15], nth);
}

static void test_pool(void) {
    for (int n = 1; n <= 4; n++) {
        lsc_pool *pool = NULL;
        CHECK(lsc_pool_new(n, &pool, NULL) == LSC_OK);
        CHECK(lsc_pool_n_threads(pool) == n);
        _Atomic int hits[16] = {0};
        for (int r = 0; r < 1000; r++) lsc_pool_run(pool, count_job, hits);
        for (int i = 0; i < n; i++) CHECK(atomic_load(&hits[i]) == 1000);
        CHECK(atomic_load(&hits[15]) == 1000 * n * n);
        lsc_pool_free(pool);
    }
    lsc_pool_free(NULL);
    CHECK(lsc_pool_n_threads(NULL) == 1);
    lsc_pool *pool = NULL;
    lsc_error err;
    CHECK(lsc_pool_new(-1, &pool, &err) == LSC_ERR_INVALID_ARG && pool == NULL);
    CHECK(lsc_pool_new(100000, &pool, &err) == LSC_ERR_INVALID_ARG);
    CHECK(lsc_pool_new(0, &pool, NULL) == LSC_OK && lsc_pool_n_threads(pool) >= 1);
    lsc_pool_free(pool);
    size_t covered = 0, prev_end = 0;
    for (int i = 0; i < 3; i++) {
        size_t b, e;
        lsc_pool_split(100, 16, i, 3, &b, &e);
        CHECK(b == prev_end);
        CHECK(b % 16 == 0);
        covered += e - b;
        prev_end = e;
    }
    CHECK(covered == 100);
}

/* Levels: names, the table of each, capping and refusal. */
static void test_levels(void) {
    CHECK(!strcmp(lsc_simd_name(LSC_SIMD_AVX2), "avx2"));
    CHECK(!strcmp(lsc_simd_name(LSC_SIMD_AVX512), "avx512"));
    CHECK(!strcmp(lsc_simd_name(LSC_SIMD_NEON), "neon"));
    for (int l = 0; l < n_levels; l++) CHECK(lsc_kernels_level(kerns[l][0]) == levels[l]);
    lsc_kernels *k = NULL;
    lsc_error err;
    /* a level of the other architecture is refused with a message */
#if defined(__x86_64__)
    CHECK(lsc_kernels_new(LSC_SIMD_NEON, NULL, &k, &err) == LSC_ERR_UNSUPPORTED && !k);
#else
    CHECK(lsc_kernels_new(LSC_SIMD_AVX2, NULL, &k, &err) == LSC_ERR_UNSUPPORTED && !k);
#endif
    CHECK(strstr(err.message, "cannot run") != NULL);
    CHECK(lsc_kernels_new(LSC_SIMD_BEST, NULL, &k, NULL) == LSC_OK);
    CHECK(lsc_kernels_level(k) == lsc_simd_default());
    lsc_kernels_free(k);
    CHECK(!strcmp(lsc_simd_level(), lsc_simd_name(lsc_simd_default())));
    printf("  best level on this CPU: %s\n", lsc_simd_name(lsc_simd_best()));
}

int main(void) {
    /* every level this CPU runs, whatever LSC_SIMD says */
    unsetenv("LSC_SIMD");
    levels[n_levels++] = LSC_SIMD_REF;
    lsc_simd best = lsc_simd_best();
    if (best == LSC_SIMD_AVX2 || best == LSC_SIMD_AVX512) levels[n_levels++] = LSC_SIMD_AVX2;
    if (best == LSC_SIMD_AVX512) levels[n_levels++] = LSC_SIMD_AVX512;
    if (best == LSC_SIMD_NEON) levels[n_levels++] = LSC_SIMD_NEON;
    CHECK(lsc_pool_new(2, &pools[1], NULL) == LSC_OK);
    CHECK(lsc_pool_new(3, &pools[2], NULL) == LSC_OK);
    for (int l = 0; l < n_levels; l++)
        for (int p = 0; p < 3; p++) {
            CHECK(lsc_kernels_new(levels[l], pools[p], &kerns[l][p], NULL) == LSC_OK);
            CHECK(lsc_kernels_reserve(kerns[l][p], 64, 1040, 1000, 300, NULL) == LSC_OK);
        }
    /* a level this CPU lacks is not tested here: say so (make test lists
     * these lines at its end), never pass in silence */
#if defined(__x86_64__)
    if (best == LSC_SIMD_REF)
        printf("SKIP avx2 level: the CPU lacks AVX2/FMA, src/kernels/avx2.c is not tested here\n");
    if (best != LSC_SIMD_AVX512)
        printf("SKIP avx512 level: the CPU lacks AVX-512 (F, BW, VL, DQ), src/kernels/avx512.c "
               "is not tested here\n");
#endif
    RUN(test_levels);
    RUN(test_pool);
    RUN(test_matmul);
    RUN(test_small_t);
    RUN(test_panels);
    RUN(test_weight_formats);
    RUN(test_real_weight_conversion);
    RUN(test_rows);
    RUN(test_attention);
    RUN(test_exp);
    for (int l = 0; l < n_levels; l++)
        for (int p = 0; p < 3; p++) lsc_kernels_free(kerns[l][p]);
    lsc_pool_free(pools[1]);
    lsc_pool_free(pools[2]);
    return CHECK_DONE();
}

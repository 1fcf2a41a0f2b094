/* avx2.c - the AVX2+FMA level (compiled with -mavx2 -mfma -mf16c and called
 * only when the CPU has them; see dispatch.c); uses weights.c below it. Each computes one slice of
 * the output columns [n0, n1) so that the threads of a pool can share a
 * product without sharing any output, and every output element is summed in
 * the same order whatever the slice: results are bit-identical at every
 * thread count. Weights may be unaligned (loads are unaligned). */
#include "levels.h"

#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */
/* ------------------------------------------------------------------------ */

static inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline __m256 loadu(const lsc_f32u *p) { return _mm256_loadu_ps((const float *)p); }

/* exp(x) for 8 floats, Cephes' polynomial: within 2 ulp of expf on
 * [-87.3, 88.3]; 0 below (and for -inf), exp(88.3) above (no inf, no
 * denormals). */
static inline __m256 exp256(__m256 x) {
    __m256 under = _mm256_cmp_ps(x, _mm256_set1_ps(LSC_EXP_MIN), _CMP_LT_OQ);
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(LSC_EXP_MIN)), _mm256_set1_ps(LSC_EXP_MAX));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(LSC_EXP_LOG2E)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LSC_EXP_LN2_HI), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LSC_EXP_LN2_LO), r);
    __m256 p = _mm256_set1_ps(LSC_EXP_P0);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(LSC_EXP_P1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(LSC_EXP_P2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(LSC_EXP_P3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(LSC_EXP_P4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(LSC_EXP_P5));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_andnot_ps(under, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
}

/* ------------------------------------------------------------------------ */
/* T = 1: matrix-vector products that stream each weight once               */
/* ------------------------------------------------------------------------ */

/* How many rows ahead lsc_matvec_kn_avx2 prefetches (16: 1.04-1.11x decode
 * at 2 threads on mapped weights over none, bench/README.md; 32 the same). */
#define KN_AHEAD 16
/* Columns [n, n + 8) of rows k .. k + 3 (w0 .. w3, x0 .. x3) added to y. */
#define KN_STEP(n)                                                                         \
    do {                                                                                   \
        __m256 acc = _mm256_loadu_ps(y + (n));                                             \
        acc = _mm256_fmadd_ps(x0, loadu(w0 + (n)), acc);                                   \
        acc = _mm256_fmadd_ps(x1, loadu(w1 + (n)), acc);                                   \
        acc = _mm256_fmadd_ps(x2, loadu(w2 + (n)), acc);                                   \
        acc = _mm256_fmadd_ps(x3, loadu(w3 + (n)), acc);                                   \
        _mm256_storeu_ps(y + (n), acc);                                                    \
    } while (0)

/* y[n] = b[n] + sum_k x[k] W[k,n] for n in [n0, n1), W [K, N]. Reads four
 * weight rows at a time front to back (sequential streams the prefetcher
 * follows) while the output slice stays in L1. Per element the order is
 * fixed: y = b; then y = fma(x[k], W[k], y) for k = 0, 1, ... */
void lsc_matvec_kn_avx2(const float *x, const lsc_f32u *w, const lsc_f32u *b, float *y,
                        size_t K, size_t N, size_t n0, size_t n1) {
    size_t nv = n0 + (n1 - n0) / 8 * 8;
    for (size_t n = n0; n < n1; n++) y[n] = b ? b[n] : 0.0f;
    size_t k = 0;
    for (; k + 4 <= K; k += 4) {
        const lsc_f32u *w0 = w + k * N, *w1 = w0 + N, *w2 = w1 + N, *w3 = w2 + N;
        __m256 x0 = _mm256_set1_ps(x[k]), x1 = _mm256_set1_ps(x[k + 1]);
        __m256 x2 = _mm256_set1_ps(x[k + 2]), x3 = _mm256_set1_ps(x[k + 3]);
        /* rows KN_AHEAD further on, at the same columns: a thread given a
         * column range reads each row in pieces, and the hardware
         * prefetcher restarts on every piece */
        const char *a0 = (const char *)(w0 + KN_AHEAD * N), *a1 = a0 + 4 * N,
                   *a2 = a1 + 4 * N, *a3 = a2 + 4 * N;
        size_t n = n0;
        for (; n + 16 <= nv; n += 16) {
            _mm_prefetch(a0 + 4 * n, _MM_HINT_T0);
            _mm_prefetch(a1 + 4 * n, _MM_HINT_T0);
            _mm_prefetch(a2 + 4 * n, _MM_HINT_T0);
            _mm_prefetch(a3 + 4 * n, _MM_HINT_T0);
            KN_STEP(n);
            KN_STEP(n + 8);
        }
        for (; n < nv; n += 8) KN_STEP(n);
        for (; n < n1; n++) {
            float acc = y[n];
            acc = fmaf(x[k], w0[n], acc);
            acc = fmaf(x[k + 1], w1[n], acc);
            acc = fmaf(x[k + 2], w2[n], acc);
            acc = fmaf(x[k + 3], w3[n], acc);
            y[n] = acc;
        }
    }
    for (; k < K; k++) {
        const lsc_f32u *w0 = w + k * N;
        __m256 x0 = _mm256_set1_ps(x[k]);
        size_t n = n0;
        for (; n < nv; n += 8)
            _mm256_storeu_ps(y + n, _mm256_fmadd_ps(x0, loadu(w0 + n), _mm256_loadu_ps(y + n)));
        for (; n < n1; n++) y[n] = fmaf(x[k], w0[n], y[n]);
    }
}

/* x rearranged for BF16 rows: in each group of 16, the 8 even-indexed then
 * the 8 odd-indexed values. A BF16 pair (w[2i], w[2i+1]) loaded as one
 * 32-bit lane gives w[2i+1] as the float (lane & 0xffff0000) and w[2i] as
 * (lane << 16), so 16 weights cost one load, one AND, one shift, two FMAs. */
void lsc_bf16_split_x(const float *x, size_t K, float *xr) {
    size_t k = 0;
    for (; k + 16 <= K; k += 16)
        for (size_t i = 0; i < 8; i++) {
            xr[k + i] = x[k + 2 * i];
            xr[k + 8 + i] = x[k + 2 * i + 1];
        }
    for (; k < K; k++) xr[k] = x[k];
}

static inline float bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

#define BF16_STEP(i)                                                                       \
    do {                                                                                   \
        __m256i v = _mm256_loadu_si256((const __m256i *)(w + i * K + k));                  \
        ev##i = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(v, 16)), xe, ev##i); \
        od##i = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_and_si256(v, hi)), xo, od##i);  \
    } while (0)

/* The reduction of a BF16 row: hsum(even + odd sums), then the tail k0..K-1
 * (where the split x is x itself). */
static inline float bf16_finish(const float *x, const uint16_t *r, size_t K, size_t k0,
                                __m256 ev, __m256 od) {
    float s = hsum256(_mm256_add_ps(ev, od));
    for (size_t k = k0; k < K; k++) s = fmaf(bf16_to_f32(r[k]), x[k], s);
    return s;
}

/* y[n] = b[n] + sum_k x[k] W[n,k] for BF16 W [N, K], n in [n0, n1), four
 * rows at a time (eight FMA chains, four streams); every row is summed in the
 * same order: even- and odd-indexed partial sums over groups of 16, reduced,
 * then the scalar tail, then the bias. xr is x after lsc_bf16_split_x. */
void lsc_matvec_bf16_avx2(const float *xr, const uint16_t *w0, const lsc_f32u *b, float *y,
                          size_t K, size_t n0, size_t n1) {
    const float *x = xr; /* the tail past the last group of 16 is unsplit */
    const __m256i hi = _mm256_set1_epi32((int)0xffff0000u);
    size_t kv = K / 16 * 16, n = n0;
    for (; n + 4 <= n1; n += 4) {
        const uint16_t *w = w0 + n * K;
        __m256 ev0 = _mm256_setzero_ps(), od0 = ev0, ev1 = ev0, od1 = ev0, ev2 = ev0, od2 = ev0,
               ev3 = ev0, od3 = ev0;
        /* the four rows two groups ahead (8 K bytes from w + 8 K), front
         * to back, 128 bytes a step: one linear stream. Per-row lines a
         * few steps ahead (four short streams) read 10.7-12.4 GB/s on
         * Zen 3 where this reads 14.9-15.4 (bench/README.md) */
        const char *next = (const char *)(w + 8 * K);
        for (size_t k = 0; k < kv; k += 16) {
            __m256 xe = _mm256_loadu_ps(xr + k), xo = _mm256_loadu_ps(xr + k + 8);
            _mm_prefetch(next + 8 * k, _MM_HINT_T0);
            _mm_prefetch(next + 8 * k + 64, _MM_HINT_T0);
            BF16_STEP(0);
            BF16_STEP(1);
            BF16_STEP(2);
            BF16_STEP(3);
        }
        y[n] = bf16_finish(x, w, K, kv, ev0, od0);
        y[n + 1] = bf16_finish(x, w + K, K, kv, ev1, od1);
        y[n + 2] = bf16_finish(x, w + 2 * K, K, kv, ev2, od2);
        y[n + 3] = bf16_finish(x, w + 3 * K, K, kv, ev3, od3);
    }
    for (; n < n1; n++) {
        const uint16_t *w = w0 + n * K;
        __m256 ev0 = _mm256_setzero_ps(), od0 = ev0;
        for (size_t k = 0; k < kv; k += 16) {
            __m256 xe = _mm256_loadu_ps(xr + k), xo = _mm256_loadu_ps(xr + k + 8);
            BF16_STEP(0);
        }
        y[n] = bf16_finish(x, w, K, kv, ev0, od0);
    }
    if (b)
        for (n = n0; n < n1; n++) y[n] += b[n];
}

/* One full Q8 block of a row (32 int8 weights at p) dotted with the 16-bit
 * x of the block (xq): exact int32 lane sums (each of four products, at most
 * 4 * 127 * 32767 < 2^24, so also exact as floats). */
static inline __m256 q8_block(const int8_t *p, const int16_t *xq) {
    __m256i w0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)p));
    __m256i w1 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(p + 16)));
    __m256i s = _mm256_add_epi32(
        _mm256_madd_epi16(w0, _mm256_loadu_si256((const __m256i *)xq)),
        _mm256_madd_epi16(w1, _mm256_loadu_si256((const __m256i *)(xq + 16))));
    return _mm256_cvtepi32_ps(s);
}

#define Q8_STEP(i)                                                                         \
    acc##i = _mm256_fmadd_ps(_mm256_set1_ps(sc[i * nb + blk] * xs[blk]),                   \
                             q8_block(q + i * K + blk * LSC_Q8_BLOCK, xq + blk * LSC_Q8_BLOCK), \
                             acc##i)

/* The reduction of a Q8 row, then its partial last block (exact integer sum)
 * when K is not a multiple of the block. */
static inline float q8_finish(const int16_t *xq, const float *xs, const int8_t *r,
                              const float *sc, size_t K, size_t nfull, __m256 acc) {
    float s = hsum256(acc);
    if (nfull * LSC_Q8_BLOCK < K) {
        int32_t t = 0;
        for (size_t k = nfull * LSC_Q8_BLOCK; k < K; k++) t += (int32_t)r[k] * xq[k];
        s = fmaf(sc[nfull] * xs[nfull], (float)t, s);
    }
    return s;
}

/* y[n] = b[n] + sum_blocks scale[n,blk] xs[blk] sum_{k in blk} q[n,k] xq[k]
 * for Q8 W [N, K], n in [n0, n1), x given rounded to 16 bits per block by
 * lsc_q8_quantize_x (xq, xs) (integer multiply-adds: two loads, two
 * widenings, two vpmaddwd, a convert and an FMA per 32 weights). Four rows
 * at a time; each row summed in the same order. */
void lsc_matvec_q8_avx2(const int16_t *xq, const float *xs, const int8_t *q0,
                        const float *scale, const lsc_f32u *b, float *y, size_t K, size_t n0,
                        size_t n1) {
    size_t nb = (K + LSC_Q8_BLOCK - 1) / LSC_Q8_BLOCK, nfull = K / LSC_Q8_BLOCK;
    size_t n = n0;
    for (; n + 4 <= n1; n += 4) {
        const int8_t *q = q0 + n * K;
        const float *sc = scale + n * nb;
        __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0, acc2 = acc0, acc3 = acc0;
        /* the next group of four rows, front to back, 128 bytes a block:
         * four groups ahead ran 1.14x slower at 2 threads (the last
         * quarter of each 64-row item prefetched rows of the other
         * thread's next item) and no faster at 1 (bench/README.md) */
        const char *next = (const char *)(q + 4 * K);
        for (size_t blk = 0; blk < nfull; blk++) {
            _mm_prefetch(next + 4 * LSC_Q8_BLOCK * blk, _MM_HINT_T0);
            _mm_prefetch(next + 4 * LSC_Q8_BLOCK * blk + 64, _MM_HINT_T0);
            Q8_STEP(0);
            Q8_STEP(1);
            Q8_STEP(2);
            Q8_STEP(3);
        }
        y[n] = q8_finish(xq, xs, q, sc, K, nfull, acc0);
        y[n + 1] = q8_finish(xq, xs, q + K, sc + nb, K, nfull, acc1);
        y[n + 2] = q8_finish(xq, xs, q + 2 * K, sc + 2 * nb, K, nfull, acc2);
        y[n + 3] = q8_finish(xq, xs, q + 3 * K, sc + 3 * nb, K, nfull, acc3);
    }
    for (; n < n1; n++) {
        const int8_t *q = q0 + n * K;
        const float *sc = scale + n * nb;
        __m256 acc0 = _mm256_setzero_ps();
        for (size_t blk = 0; blk < nfull; blk++) Q8_STEP(0);
        y[n] = q8_finish(xq, xs, q, sc, K, nfull, acc0);
    }
    if (b)
        for (n = n0; n < n1; n++) y[n] += b[n];
}

/* ------------------------------------------------------------------------ */
/* T > 1: cache-blocked, register-tiled GEMM                                 */
/* ------------------------------------------------------------------------ */

#define MR 6   /* rows of x per micro-tile */
#define NR LSC_GEMM_NR /* output columns per micro-tile (two ymm) */
#define KC LSC_GEMM_KC /* k block; also the T = 1 kernels' block, so that a
                          row's result does not depend on T */
#define NC 128 /* column block: the packed KC x NC weights (128 KiB) stay in L2 */
/* Rows up to which weights in panels are streamed one panel at a time (16
 * sequences: 1.03x the 8-panel blocks, bench/batch_bench A/B, 3 rounds) */
#define PANEL_STREAM_T_MAX 32
/* How far ahead of the first tile a panel stream is prefetched, at the
 * tiles' pace: 32 KiB beat 2-16 KiB and matched 64-128 KiB (the harness of
 * docs/performance.md). Paced vs the block stream, bench/batch_bench A/B on
 * the AMD EPYC: 8 sequences 1.15x wall (3 rounds, a quiet hour), 1.02-1.05x
 * per CPU-second (4 rounds, a busy one); 16 sequences 1.01-1.11x per
 * CPU-second in 3 of 4 rounds. */
#define PANEL_AHEAD_BYTES 32768

/* 8 weights (k .. k+7) of output n of an [N, K] matrix in any format, as
 * floats; k is a multiple of 8, so a Q8 group never straddles a block. */
static inline __m256 load8_nk(const lsc_weights *w, size_t K, size_t n, size_t k) {
    switch (w->type) {
    case LSC_WEIGHTS_BF16: {
        __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)w->data + n * K + k));
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    }
    case LSC_WEIGHTS_Q8: {
        __m128i q = _mm_loadl_epi64((const __m128i *)((const int8_t *)w->data + n * K + k));
        size_t nb = (K + LSC_Q8_BLOCK - 1) / LSC_Q8_BLOCK;
        return _mm256_mul_ps(_mm256_set1_ps(w->scale[n * nb + k / LSC_Q8_BLOCK]),
                             _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)));
    }
    default: return loadu((const lsc_f32u *)w->data + n * K + k);
    }
}

/* Transposes the 8x8 block r[0..7] (rows) in place into columns. */
static inline void transpose8(__m256 r[8]) {
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
    r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
    r[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
    r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
    r[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
    r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
    r[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
    r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

/* Packs W[k0:k0+kc, j0:j0+nc] (W seen as [K, N], whatever its storage) into
 * ceil(nc/NR) panels of [kc][NR] floats, zero-padded past nc (kernels.h). */
/* Rows of W fetched ahead while packing [K, N] weights. */
#define PACK_AHEAD 8

void lsc_gemm_pack_avx2(const lsc_weights *w, size_t K, size_t N, size_t k0, size_t kc, size_t j0,
                   size_t nc, float *buf) {
    if (w->layout == LSC_LAYOUT_PANELS) { /* already packed (j0 is a panel's first column) */
        for (size_t p = 0; p < nc; p += NR)
            memcpy(buf + p * kc, (const float *)w->data + (j0 + p) * K + k0 * NR,
                   kc * NR * sizeof(float));
        return;
    }
    if (w->layout == LSC_LAYOUT_KN) { /* F32 [K, N]: rows are already panel rows; each read front to back */
        size_t nfull = nc / NR * NR;
        for (size_t k = 0; k < kc; k++) {
            const lsc_f32u *src = (const lsc_f32u *)w->data + (k0 + k) * N + j0;
            if (k + PACK_AHEAD < kc) { /* short row pieces: the hardware prefetcher
                                       * would not start on them in time */
                const char *ahead = (const char *)(src + PACK_AHEAD * N);
                for (size_t b = 0; b < nc * sizeof(float) + 63; b += 64)
                    _mm_prefetch(ahead + b, _MM_HINT_T0);
            }
            for (size_t p = 0; p < nfull; p += NR) {
                _mm256_store_ps(buf + p * kc + k * NR, loadu(src + p));
                _mm256_store_ps(buf + p * kc + k * NR + 8, loadu(src + p + 8));
            }
            if (nfull < nc)
                for (size_t c = 0; c < NR; c++)
                    buf[nfull * kc + k * NR + c] = nfull + c < nc ? src[nfull + c] : 0.0f;
        }
        return;
    }
    for (size_t p = 0; p < nc; p += NR) {
        size_t nr = nc - p < NR ? nc - p : NR;
        float *dst = buf + p * kc;
        /* [N, K]: 8 outputs x 8 k at a time, transposed */
        size_t kv = kc / 8 * 8;
        for (size_t c0 = 0; c0 < NR; c0 += 8) {
            for (size_t k = 0; k < kv; k += 8) {
                __m256 r[8];
                for (size_t i = 0; i < 8; i++)
                    r[i] = c0 + i < nr ? load8_nk(w, K, j0 + p + c0 + i, k0 + k)
                                       : _mm256_setzero_ps();
                transpose8(r);
                for (size_t i = 0; i < 8; i++) _mm256_store_ps(dst + (k + i) * NR + c0, r[i]);
            }
            for (size_t k = kv; k < kc; k++)
                for (size_t c = c0; c < c0 + 8; c++)
                    dst[k * NR + c] =
                        c < nr ? lsc_weights_get(w, K, N, k0 + k, j0 + p + c) : 0.0f;
        }
    }
}

/* Cache-line prefetches issued from inside the micro-kernel's loop, of one
 * of two kinds:
 * - a block stream: the next block of W (rows `stride` bytes apart), a line
 *   or two a k step until the call's quota is met, so that the next block
 *   arrives while this one is computed instead of stalling the packing that
 *   follows (with few rows the packing's misses were half of a batched
 *   decode step, docs/performance.md);
 * - when `ahead` is set, a contiguous stream: one line every `every` k
 *   steps, for weights in panels read front to back: the requests go out
 *   at the pace the tiles use W, where the block stream front-loads them
 *   into the first half of each call. */
typedef struct prefetch_stream {
    const char *row;   /* the first byte of the row being fetched */
    size_t stride;     /* bytes between rows */
    size_t row_bytes;
    size_t off;        /* next byte of the row, from its first line */
    size_t left;       /* lines still to fetch */
    size_t quota;      /* lines this micro-kernel call fetches */
    int per_k;         /* lines per k step: 1, or 2 where one would not keep up */
    uintptr_t ahead;   /* the contiguous stream's next line (it may lie past W:
                          prefetches do not fault) */
    unsigned every, count; /* a line every `every` k steps; steps to the next */
} prefetch_stream;

static inline __attribute__((always_inline)) void prefetch_next(prefetch_stream *s) {
    if (!s->quota) return;
    const char *line = (const char *)((uintptr_t)s->row & ~(uintptr_t)63) + s->off;
    _mm_prefetch(line, _MM_HINT_T0);
    s->quota--;
    s->left--;
    s->off += 64;
    if (line + 64 >= s->row + s->row_bytes) { /* past the row's last byte */
        s->off = 0;
        s->row += s->stride;
    }
}

/* The prefetches of one k step; `paced` is a constant in each tile, so that
 * the loop carries no test of the kind. */
static inline __attribute__((always_inline)) void prefetch_step(prefetch_stream *s,
                                                                const int paced) {
    if (paced) {
        if (--s->count == 0) {
            s->count = s->every;
            _mm_prefetch((const char *)s->ahead, _MM_HINT_T0);
            s->ahead += 64;
        }
        return;
    }
    prefetch_next(s);
    if (s->per_k == 2) prefetch_next(s);
}

/* The mr x 16 micro-kernel (mr = 1..6, a constant once inlined): acc =
 * A[0:mr, 0:kc] @ Bp[0:kc, 0:16] with A rows `lda` apart and Bp packed,
 * each element summed from zero in k order; then C = acc + bias (first k
 * block) or C += acc, for the nr valid columns. Tiles of any height give
 * the same bits, so T rows are cut into tiles of at most 6 with none padded
 * (8 rows: two of 4, not 6 + 2 padded to 12). The call fetches its quota of
 * the prefetch stream along the way. */
static inline __attribute__((always_inline)) void micro_tile(
    const float *a, size_t lda, const float *bp, size_t kc, float *c, size_t ldc, int first,
    const lsc_f32u *bias, const int mr, size_t nr, prefetch_stream *pf, const int paced) {
    /* named accumulators: an array indexed in a loop was kept on the stack */
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    prefetch_stream s = *pf; /* in registers for the loop */
    for (size_t k = 0; k < kc; k++) {
        prefetch_step(&s, paced);
        __m256 b0 = _mm256_load_ps(bp + k * NR), b1 = _mm256_load_ps(bp + k * NR + 8);
#define ROW(i, lo, hi)                                                                         \
    if (mr > i) {                                                                              \
        __m256 av = _mm256_broadcast_ss(a + i * lda + k);                                      \
        lo = _mm256_fmadd_ps(av, b0, lo);                                                      \
        hi = _mm256_fmadd_ps(av, b1, hi);                                                      \
    }
        ROW(0, c00, c01)
        ROW(1, c10, c11)
        ROW(2, c20, c21)
        ROW(3, c30, c31)
        ROW(4, c40, c41)
        ROW(5, c50, c51)
#undef ROW
    }
    __m256 acc[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21},
                         {c30, c31}, {c40, c41}, {c50, c51}};
    *pf = s;
    if (nr == NR) {
        __m256 bias0 = _mm256_setzero_ps(), bias1 = bias0;
        if (first && bias) {
            bias0 = loadu(bias);
            bias1 = loadu(bias + 8);
        }
#pragma GCC unroll 6
        for (int i = 0; i < mr; i++) {
            float *ci = c + i * ldc;
            if (first) {
                _mm256_storeu_ps(ci, bias ? _mm256_add_ps(acc[i][0], bias0) : acc[i][0]);
                _mm256_storeu_ps(ci + 8, bias ? _mm256_add_ps(acc[i][1], bias1) : acc[i][1]);
            } else {
                _mm256_storeu_ps(ci, _mm256_add_ps(_mm256_loadu_ps(ci), acc[i][0]));
                _mm256_storeu_ps(ci + 8, _mm256_add_ps(_mm256_loadu_ps(ci + 8), acc[i][1]));
            }
        }
        return;
    }
    float tile[NR];
    for (int i = 0; i < mr; i++) {
        _mm256_storeu_ps(tile, acc[i][0]);
        _mm256_storeu_ps(tile + 8, acc[i][1]);
        for (size_t j = 0; j < nr; j++) {
            float *cij = c + i * ldc + j;
            if (first) *cij = bias ? tile[j] + bias[j] : tile[j];
            else *cij = *cij + tile[j];
        }
    }
}

/* micro_Mx16 with a block stream, micro_Mx16_paced with a paced one */
#define MICRO(m, name, paced)                                                                  \
    static void name(const float *a, size_t lda, const float *bp, size_t kc, float *c,        \
                     size_t ldc, int first, const lsc_f32u *bias, size_t nr,                   \
                     prefetch_stream *pf) {                                                    \
        micro_tile(a, lda, bp, kc, c, ldc, first, bias, m, nr, pf, paced);                     \
    }
#define MICROS(m) MICRO(m, micro_##m##x16, 0) MICRO(m, micro_##m##x16_paced, 1)
MICROS(1)
MICROS(2)
MICROS(3)
MICROS(4)
MICROS(5)
MICROS(6)
#undef MICROS
#undef MICRO

typedef void (*micro_fn)(const float *a, size_t lda, const float *bp, size_t kc, float *c,
                         size_t ldc, int first, const lsc_f32u *bias, size_t nr,
                         prefetch_stream *pf);
/* [paced][rows] */
static const micro_fn micro_kernels[2][MR + 1] = {
    {NULL, micro_1x16, micro_2x16, micro_3x16, micro_4x16, micro_5x16, micro_6x16},
    {NULL, micro_1x16_paced, micro_2x16_paced, micro_3x16_paced, micro_4x16_paced,
     micro_5x16_paced, micro_6x16_paced}};

/* The stream over W's block [k0, k0 + kc) x [j0, j0 + nc) as it lies in
 * memory: kc rows of nc elements ([K, N]) or nc rows of kc ([N, K]); Q8's
 * scales are small and left to the hardware. */
static prefetch_stream block_stream(const lsc_weights *w, size_t K, size_t N, size_t k0,
                                    size_t kc, size_t j0, size_t nc) {
    size_t esize = w->type == LSC_WEIGHTS_F32 ? 4 : w->type == LSC_WEIGHTS_BF16 ? 2 : 1;
    prefetch_stream s = {0};
    size_t rows;
    switch (w->layout) {
    case LSC_LAYOUT_PANELS: /* a [kc][16] piece of each panel */
        rows = (nc + NR - 1) / NR;
        s.row = (const char *)w->data + (j0 * K + k0 * NR) * esize;
        s.stride = K * NR * esize;
        s.row_bytes = kc * NR * esize;
        break;
    case LSC_LAYOUT_NK:
        rows = nc;
        s.row = (const char *)w->data + (j0 * K + k0) * esize;
        s.stride = K * esize;
        s.row_bytes = kc * esize;
        break;
    default:
        rows = kc;
        s.row = (const char *)w->data + (k0 * N + j0) * esize;
        s.stride = N * esize;
        s.row_bytes = nc * esize;
    }
    uintptr_t first = (uintptr_t)s.row;
    s.left = rows * (((first + s.row_bytes - 1) >> 6) - (first >> 6) + 1);
    return s;
}

/* y[T, n0:n1] = x[T,K] @ W + b for the columns [n0, n1), W in any format
 * and layout (packing converts it); b may be NULL. Loops, from
 * outside in: column blocks of NC, k blocks of KC (weights packed into L2,
 * the next block prefetched meanwhile), tiles of at most MR rows (an
 * mr x KC slice of x in L1), NR-wide panels. Every element is summed in k
 * blocks of KC, each from zero in k order, added to the running value
 * (which starts as the first block + bias). */
void lsc_gemm_w_avx2(const float *x, const lsc_weights *w, const lsc_f32u *b, float *y,
                     size_t T, size_t K, size_t N, size_t n0, size_t n1, float *packed_b) {
    size_t tiles = (T + MR - 1) / MR;
    int in_panels = w->layout == LSC_LAYOUT_PANELS;
    /* Weights already in panels are used where they lie; with few rows one
     * panel at a time, so that the slice of W is read front to back as one
     * stream (a block is reused from L1 by the row tiles), with more rows NC
     * columns at a time (a block reused from L2). */
    int stream = in_panels && T <= PANEL_STREAM_T_MAX;
    size_t ncb = stream ? NR : NC;
    for (size_t j0 = n0; j0 < n1; j0 += ncb) {
        size_t nc = n1 - j0 < ncb ? n1 - j0 : ncb, panels = (nc + NR - 1) / NR;
        for (size_t k0 = 0; k0 < K; k0 += KC) {
            size_t kc = K - k0 < KC ? K - k0 : KC;
            const float *bp = packed_b; /* panel p of the block at bp + p * pstride */
            size_t pstride = kc;
            if (in_panels) {
                bp = (const float *)w->data + j0 * K + k0 * NR;
                pstride = K;
            } else {
                lsc_gemm_pack_avx2(w, K, N, k0, kc, j0, nc, packed_b);
            }
            /* unless streamed (below): the next block of this slice, spread
             * over this block's calls */
            prefetch_stream next = {0};
            size_t per_call = 0;
            if (!stream) {
                if (k0 + KC < K)
                    next = block_stream(w, K, N, k0 + KC, K - k0 - KC < KC ? K - k0 - KC : KC,
                                        j0, nc);
                else if (j0 + ncb < n1)
                    next = block_stream(w, K, N, 0, K < KC ? K : KC, j0 + ncb,
                                        n1 - j0 - ncb < ncb ? n1 - j0 - ncb : ncb);
                per_call = (next.left + tiles * panels - 1) / (tiles * panels);
                next.per_k = per_call > kc ? 2 : 1;
            }
            size_t i0 = 0;
            for (size_t t = 0; t < tiles; t++) {
                size_t mr = T / tiles + (t < T % tiles); /* even tiles, none padded */
                /* streamed: the first tile reads a new line of the panel every
                 * k step, so the tiles share the lines PANEL_AHEAD_BYTES
                 * ahead of this block, each fetching one every `tiles` steps */
                prefetch_stream ahead = {
                    .ahead = (uintptr_t)bp + PANEL_AHEAD_BYTES + t * kc / tiles * 64,
                    .every = (unsigned)tiles,
                    .count = 1};
                for (size_t p = 0; p < nc; p += NR) {
                    next.quota = next.left < per_call ? next.left : per_call;
                    micro_kernels[stream][mr](x + i0 * K + k0, K, bp + p * pstride, kc,
                                      y + i0 * N + j0 + p, N, k0 == 0, b ? b + j0 + p : NULL,
                                      nc - p < NR ? nc - p : NR, stream ? &ahead : &next);
                }
                i0 += mr;
            }
        }
    }
}

/* The product for a few rows (T <= LSC_SMALL_T_MAX) of F32 [K, N] weights:
 * lsc_gemm_w_avx2's per-element order (each k block summed from zero by fma
 * in k order, added to the first block + bias: the same bits), without its
 * packed copy of W. Each k block of a column range is streamed once, eight
 * weight rows at a time front to back (as lsc_gemm_pack_avx2 reads them,
 * with the same software prefetch), and every row of x is summed against
 * them while they are in L1, into partial sums kept in L1. Its loads and
 * stores of those sums grow with T, so it beats packing only for a few
 * rows (docs/performance.md: 6x16 register tiles on unpacked, strided W
 * lost to the packed GEMM at every T). */
#define SMALL_NC 128 /* columns whose partial sums stay in L1 */
#define SMALL_AHEAD 16 /* weight rows fetched ahead */

void lsc_gemm_small_avx2(const float *x, const lsc_weights *w, const lsc_f32u *b, float *y,
                         size_t T, size_t K, size_t N, size_t n0, size_t n1) {
    const lsc_f32u *W = w->data;
    float part[LSC_SMALL_T_MAX * SMALL_NC] __attribute__((aligned(32)));
    for (size_t t0 = 0; t0 < T; t0 += LSC_SMALL_T_MAX) {
        size_t tn = T - t0 < LSC_SMALL_T_MAX ? T - t0 : LSC_SMALL_T_MAX;
        for (size_t j0 = n0; j0 < n1; j0 += SMALL_NC) {
            size_t nc = n1 - j0 < SMALL_NC ? n1 - j0 : SMALL_NC, nv = nc / 8 * 8;
            for (size_t k0 = 0; k0 < K; k0 += KC) {
                size_t k1 = K - k0 < KC ? K : k0 + KC, k = k0;
                memset(part, 0, sizeof part);
                for (; k < k1; k += k + 8 <= k1 ? 8 : 1) {
                    size_t nk = k + 8 <= k1 ? 8 : 1; /* rows this step: 8, or 1 at a block's end */
                    const lsc_f32u *wk = W + k * N + j0;
                    if (k + SMALL_AHEAD + nk <= K)
                        for (size_t r = 0; r < nk; r++) {
                            const char *ahead = (const char *)(wk + (SMALL_AHEAD + r) * N);
                            for (size_t o = 0; o < nc * sizeof(float) + 63; o += 64)
                                _mm_prefetch(ahead + o, _MM_HINT_T0);
                        }
                    for (size_t t = 0; t < tn; t++) {
                        const float *xt = x + (t0 + t) * K + k;
                        float *pt = part + t * SMALL_NC;
                        if (nk == 8) {
                            __m256 xv[8];
                            for (size_t r = 0; r < 8; r++) xv[r] = _mm256_set1_ps(xt[r]);
                            size_t j = 0;
                            for (; j < nv; j += 8) {
                                __m256 acc = _mm256_load_ps(pt + j);
                                for (size_t r = 0; r < 8; r++)
                                    acc = _mm256_fmadd_ps(xv[r], loadu(wk + r * N + j), acc);
                                _mm256_store_ps(pt + j, acc);
                            }
                            for (; j < nc; j++)
                                for (size_t r = 0; r < 8; r++) pt[j] = fmaf(xt[r], wk[r * N + j], pt[j]);
                        } else {
                            __m256 x0 = _mm256_set1_ps(xt[0]);
                            size_t j = 0;
                            for (; j < nv; j += 8)
                                _mm256_store_ps(pt + j, _mm256_fmadd_ps(x0, loadu(wk + j),
                                                                        _mm256_load_ps(pt + j)));
                            for (; j < nc; j++) pt[j] = fmaf(xt[0], wk[j], pt[j]);
                        }
                    }
                }
                for (size_t t = 0; t < tn; t++) { /* the block into y, as the GEMM adds it */
                    float *yt = y + (t0 + t) * N + j0;
                    const float *pt = part + t * SMALL_NC;
                    for (size_t j = 0; j < nc; j++)
                        yt[j] = k0 ? yt[j] + pt[j] : (b ? pt[j] + b[j0 + j] : pt[j]);
                }
            }
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Elementwise and row kernels                                               */
/* ------------------------------------------------------------------------ */

/* LayerNorm of rows [t0, t1) of x [T, E] into y (may equal x): mean and
 * biased variance in float with 8-wide partial sums, as lsc_layernorm_ref
 * defines up to rounding. */
void lsc_layernorm_avx2(const float *x, const lsc_f32u *g, const lsc_f32u *b, float *y,
                        size_t E, float eps, size_t t0, size_t t1) {
    size_t ev = E / 8 * 8;
    for (size_t t = t0; t < t1; t++) {
        const float *xt = x + t * E;
        float *yt = y + t * E;
        __m256 s = _mm256_setzero_ps();
        for (size_t i = 0; i < ev; i += 8) s = _mm256_add_ps(s, _mm256_loadu_ps(xt + i));
        float sum = hsum256(s);
        for (size_t i = ev; i < E; i++) sum += xt[i];
        float mean = sum / (float)E;
        __m256 m = _mm256_set1_ps(mean);
        __m256 v = _mm256_setzero_ps();
        for (size_t i = 0; i < ev; i += 8) {
            __m256 d = _mm256_sub_ps(_mm256_loadu_ps(xt + i), m);
            v = _mm256_fmadd_ps(d, d, v);
        }
        float var = hsum256(v);
        for (size_t i = ev; i < E; i++) var += (xt[i] - mean) * (xt[i] - mean);
        var /= (float)E;
        float rstd = 1.0f / sqrtf(var + eps);
        __m256 r = _mm256_set1_ps(rstd);
        for (size_t i = 0; i < ev; i += 8) {
            __m256 d = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(xt + i), m), r);
            _mm256_storeu_ps(yt + i, _mm256_fmadd_ps(d, loadu(g + i), loadu(b + i)));
        }
        for (size_t i = ev; i < E; i++) yt[i] = (xt[i] - mean) * rstd * g[i] + b[i];
    }
}

/* gelu_new in place on x[0:n], as x * sigmoid(2u), u = sqrt(2/pi) (x +
 * 0.044715 x^3): the same function as 0.5 x (1 + tanh(u)) without the
 * cancellation of 1 + tanh(u) for negative u. */
void lsc_gelu_new_avx2(float *x, size_t n) {
    const __m256 c2 = _mm256_set1_ps(LSC_GELU_M2SQRT2PI);
    const __m256 c3 = _mm256_set1_ps(LSC_GELU_C3), one = _mm256_set1_ps(1.0f);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256 inner = _mm256_fmadd_ps(_mm256_mul_ps(c3, v), _mm256_mul_ps(v, v), v);
        __m256 e = exp256(_mm256_mul_ps(c2, inner));
        _mm256_storeu_ps(x + i, _mm256_div_ps(v, _mm256_add_ps(one, e)));
    }
    if (i < n) { /* the tail through the same vector code */
        float tmp[8] = {0};
        memcpy(tmp, x + i, (n - i) * sizeof(float));
        lsc_gelu_new_avx2(tmp, 8);
        memcpy(x + i, tmp, (n - i) * sizeof(float));
    }
}

/* out[i] = exp(x[i] - max) for i < n, returning the sum of the outputs (in
 * float, 8-wide partial sums); the softmax core of attention. */
float lsc_exp_sub_avx2(const float *x, float max, float *out, size_t n) {
    __m256 m = _mm256_set1_ps(max), s = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(x + i), m));
        _mm256_storeu_ps(out + i, e);
        s = _mm256_add_ps(s, e);
    }
    float sum = hsum256(s);
    if (i < n) {
        float tmp[8];
        for (size_t j = 0; j < 8; j++) tmp[j] = i + j < n ? x[i + j] - max : -INFINITY;
        __m256 e = exp256(_mm256_loadu_ps(tmp));
        _mm256_storeu_ps(tmp, e);
        for (size_t j = 0; i + j < n; j++) {
            out[i + j] = tmp[j];
            sum += tmp[j];
        }
    }
    return sum;
}

/* ------------------------------------------------------------------------ */
/* Causal self-attention                                                     */
/* ------------------------------------------------------------------------ */

/* Mask of the first n (0..8) lanes, for maskload / maskstore. */
static inline __m256i lanes8(size_t n) {
    static const int32_t ones[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    return _mm256_loadu_si256((const __m256i *)(ones + 8 - (n < 8 ? n : 8)));
}

/* The scaled scores of nr (1..4) query rows q[r] against keys [0, n) of
 * one head (kt: its D transposed rows, ks apart): s[r][p] = scale *
 * (q[r] . k_p), summed from zero in d order. Keys are read 8 at a time and
 * shared by the rows. */
static void scores_avx2(const float *const q[4], size_t nr, const float *kt, size_t ks,
                        size_t D, size_t n, float scale, float *const s[4]) {
    const __m256 sc = _mm256_set1_ps(scale);
    const float *q1 = q[nr > 1 ? 1 : 0], *q2 = q[nr > 2 ? 2 : 0], *q3 = q[nr > 3 ? 3 : 0];
    size_t p = 0;
    if (nr == 1) /* decode: 32 keys a pass, four chains (one chain of D
                    dependent FMAs per 8 keys was latency-bound); each key
                    still summed from zero in d order: the same bits */
        for (; p + 32 <= n; p += 32) {
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            for (size_t d = 0; d < D; d++) {
                const float *k = kt + d * ks + p;
                __m256 qd = _mm256_set1_ps(q[0][d]);
                a0 = _mm256_fmadd_ps(qd, _mm256_loadu_ps(k), a0);
                a1 = _mm256_fmadd_ps(qd, _mm256_loadu_ps(k + 8), a1);
                a2 = _mm256_fmadd_ps(qd, _mm256_loadu_ps(k + 16), a2);
                a3 = _mm256_fmadd_ps(qd, _mm256_loadu_ps(k + 24), a3);
            }
            _mm256_storeu_ps(s[0] + p, _mm256_mul_ps(a0, sc));
            _mm256_storeu_ps(s[0] + p + 8, _mm256_mul_ps(a1, sc));
            _mm256_storeu_ps(s[0] + p + 16, _mm256_mul_ps(a2, sc));
            _mm256_storeu_ps(s[0] + p + 24, _mm256_mul_ps(a3, sc));
        }
    for (; p < n; p += 8) {
        __m256i m = lanes8(n - p);
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        if (nr == 1) {
            for (size_t d = 0; d < D; d++)
                a0 = _mm256_fmadd_ps(_mm256_set1_ps(q[0][d]), _mm256_maskload_ps(kt + d * ks + p, m), a0);
        } else {
            for (size_t d = 0; d < D; d++) {
                __m256 k = _mm256_maskload_ps(kt + d * ks + p, m);
                a0 = _mm256_fmadd_ps(_mm256_set1_ps(q[0][d]), k, a0);
                a1 = _mm256_fmadd_ps(_mm256_set1_ps(q1[d]), k, a1);
                a2 = _mm256_fmadd_ps(_mm256_set1_ps(q2[d]), k, a2);
                a3 = _mm256_fmadd_ps(_mm256_set1_ps(q3[d]), k, a3);
            }
        }
        __m256 acc[4] = {a0, a1, a2, a3};
        for (size_t r = 0; r < nr; r++) _mm256_maskstore_ps(s[r] + p, m, _mm256_mul_ps(acc[r], sc));
    }
}

/* 1 / the softmax sum of the scores s[0:n), which become exp(s - max)
 * (the sum from lsc_exp_sub_avx2 at every level). */
static float softmax_exp(float *s, size_t n) {
    __m256 mv = _mm256_set1_ps(-INFINITY);
    size_t p = 0;
    for (; p + 8 <= n; p += 8) mv = _mm256_max_ps(mv, _mm256_loadu_ps(s + p));
    float m = -INFINITY, lane[8];
    _mm256_storeu_ps(lane, mv);
    for (int j = 0; j < 8; j++) m = lane[j] > m ? lane[j] : m;
    for (; p < n; p++) m = s[p] > m ? s[p] : m;
    return 1.0f / lsc_exp_sub_avx2(s, m, s, n);
}

/* z[0:D) = sum_p (w[p] inv) v_p over p in [0, n), each element from zero
 * in p order (v_p = v + p * vs). */
static void weighted_values(const float *w, float inv, const float *v, size_t vs, size_t D,
                            size_t n, float *z) {
    if (D == 64) { /* GPT-2's head size: the output row in registers */
        __m256 z0 = _mm256_setzero_ps(), z1 = z0, z2 = z0, z3 = z0, z4 = z0, z5 = z0, z6 = z0,
               z7 = z0;
        for (size_t p = 0; p < n; p++) {
            const float *vp = v + p * vs;
            __m256 wp = _mm256_set1_ps(w[p] * inv);
            z0 = _mm256_fmadd_ps(wp, _mm256_loadu_ps(vp), z0);
            z1 = _mm256_fmadd_ps(wp, _mm256_loadu_ps(vp + 8), z1);
            z2 = _mm256_fmadd_ps(wp, _mm256_loadu_ps(vp + 16), z2);
            z3 = _mm256_fmadd_ps(wp, _mm256_loadu_ps(vp + 24), z3);
            z4 = _mm256_fmadd_ps(wp, _mm256_loadu_ps(vp + 32), z4);
            z5 = _mm256_fmadd_ps(wp, _mm256_loadu_ps(vp + 40), z5);
            z6 = _mm256_fmadd_ps(wp, _mm256_loadu_ps(vp + 48), z6);
            z7 = _mm256_fmadd_ps(wp, _mm256_loadu_ps(vp + 56), z7);
        }
        _mm256_storeu_ps(z, z0);
        _mm256_storeu_ps(z + 8, z1);
        _mm256_storeu_ps(z + 16, z2);
        _mm256_storeu_ps(z + 24, z3);
        _mm256_storeu_ps(z + 32, z4);
        _mm256_storeu_ps(z + 40, z5);
        _mm256_storeu_ps(z + 48, z6);
        _mm256_storeu_ps(z + 56, z7);
        return;
    }
    size_t dv = D / 8 * 8;
    for (size_t d = 0; d < D; d++) z[d] = 0.0f;
    for (size_t p = 0; p < n; p++) {
        const float *vp = v + p * vs;
        float wv = w[p] * inv;
        __m256 wp = _mm256_set1_ps(wv);
        size_t d = 0;
        for (; d < dv; d += 8)
            _mm256_storeu_ps(z + d, _mm256_fmadd_ps(wp, _mm256_loadu_ps(vp + d), _mm256_loadu_ps(z + d)));
        for (; d < D; d++) z[d] = fmaf(wv, vp[d], z[d]);
    }
}

void lsc_attention_rows_avx2(const lsc_attn_args *a, size_t i0, size_t i1, float *scratch,
                             const lsc_attn_parts *parts) {
    const size_t D = a->D, P = a->n_past + a->T;
    const float scale = lsc_attn_scale(a);
    for (size_t i = i0; i < i1;) {
        /* up to 4 rows of one head: t .. t + nr - 1 */
        size_t h = i / a->T, t = i % a->T;
        size_t nr = i1 - i < 4 ? i1 - i : 4;
        if (nr > a->T - t) nr = a->T - t;
        const float *q[4];
        float *s[4];
        for (size_t r = 0; r < 4; r++) {
            q[r] = a->q + (t + (r < nr ? r : 0)) * a->q_stride + h * D;
            s[r] = scratch + r * P;
        }
        size_t n0 = a->n_past + t + 1; /* keys row t sees; row t + r sees n0 + r */
        (parts && parts->scores ? parts->scores : scores_avx2)(
            q, nr, a->kt + h * D * a->kt_stride, a->kt_stride, D, n0 + nr - 1, scale, s);
        float inv[4];
        for (size_t r = 0; r < nr; r++) inv[r] = softmax_exp(s[r], n0 + r);
        float *z[4];
        for (size_t r = 0; r < 4; r++) z[r] = a->z + (t + (r < nr ? r : 0)) * a->z_stride + h * D;
        if (!(parts && parts->values4 && nr == 4 &&
              parts->values4((const float *const *)s, inv, a->v + h * D, a->v_stride, D, n0,
                             z))) {
            for (size_t r = 0; r < nr; r++)
                weighted_values(s[r], inv[r], a->v + h * D, a->v_stride, D, n0 + r,
                                a->z + (t + r) * a->z_stride + h * D);
        }
        i += nr;
    }
}

/* The attention in steps, for the hooks that read or change the scores and
 * the pattern: the operations of lsc_attention_rows_avx2 on one row, so the
 * same bits (its other scores lanes are the same lane sums; the pattern is
 * the weight w[p] inv that it forms, and weighing the values by pattern[p]
 * 1.0f adds only zeros past the causal end, which change no sum). */
void lsc_attn_scores_avx2(const lsc_attn_args *a, size_t i, float *row) {
    size_t h = i / a->T, t = i % a->T, n = a->n_past + t + 1, P = a->n_past + a->T;
    const float *q[4];
    float *s[4];
    for (int r = 0; r < 4; r++) {
        q[r] = a->q + t * a->q_stride + h * a->D;
        s[r] = row;
    }
    scores_avx2(q, 1, a->kt + h * a->D * a->kt_stride, a->kt_stride, a->D, n, lsc_attn_scale(a), s);
    for (size_t p = n; p < P; p++) row[p] = -INFINITY;
}

void lsc_attn_softmax_avx2(float *row, size_t P) {
    size_t n = P; /* the causal end, or past it where a hook unmasked scores */
    while (n > 0 && row[n - 1] == -INFINITY) n--;
    float inv = softmax_exp(row, n);
    for (size_t p = 0; p < n; p++) row[p] *= inv;
    for (size_t p = n; p < P; p++) row[p] = 0.0f;
}

void lsc_attn_values_avx2(const lsc_attn_args *a, size_t i, const float *row) {
    size_t h = i / a->T, t = i % a->T;
    weighted_values(row, 1.0f, a->v + h * a->D, a->v_stride, a->D, a->n_past + a->T,
                    a->z + t * a->z_stride + h * a->D);
}

/* One KC block of the 8 G rows r[0 .. 8 G): acc[g] gets, per lane, the sum
 * from zero of row 8 g + lane's products k0 .. kend - 1, one k after another.
 * G = 2 keeps two independent FMA chains in flight (one chain of 8 dependent
 * FMAs per 8 x 8 piece held this kernel at ~17.5 GB/s from L2 on Zen 3, two
 * reach ~19.5: bench/README.md). */
static inline __attribute__((always_inline)) void nk_block(const lsc_f32u *const *r, const float *x,
                                                           size_t k0, size_t kend, int G,
                                                           __m256 *acc0, __m256 *acc1) {
    size_t kv = k0 + (kend - k0) / 8 * 8, k = k0;
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    for (; k < kv; k += 8) {
        if (k % 16 == 0) /* each row's line 4 ahead into L1 */
            for (int i = 0; i < 8 * G; i++) _mm_prefetch((const char *)(r[i] + k + 64), _MM_HINT_T0);
        __m256 m[8];
        for (int i = 0; i < 8; i++) m[i] = loadu(r[i] + k);
        transpose8(m);
        if (G == 1) {
            for (size_t j = 0; j < 8; j++) a0 = _mm256_fmadd_ps(_mm256_set1_ps(x[k + j]), m[j], a0);
        } else {
            __m256 q[8];
            for (int i = 0; i < 8; i++) q[i] = loadu(r[8 + i] + k);
            transpose8(q);
            for (size_t j = 0; j < 8; j++) {
                __m256 xj = _mm256_set1_ps(x[k + j]);
                a0 = _mm256_fmadd_ps(xj, m[j], a0);
                a1 = _mm256_fmadd_ps(xj, q[j], a1);
            }
        }
    }
    for (; k < kend; k++) {
        float col[16];
        for (int i = 0; i < 8 * G; i++) col[i] = r[i][k];
        __m256 xk = _mm256_set1_ps(x[k]);
        a0 = _mm256_fmadd_ps(xk, _mm256_loadu_ps(col), a0);
        if (G == 2) a1 = _mm256_fmadd_ps(xk, _mm256_loadu_ps(col + 8), a1);
    }
    *acc0 = a0;
    *acc1 = a1;
}

/* y[n] = b[n] + sum_k x[k] W[n,k] for F32 W [N, K], n in [n0, n1): sixteen
 * (then eight) rows at a time, read as 8 x 8 pieces and transposed, so that
 * each lane (one row) sums its products one k after another from zero within
 * each block of KC, and the blocks are added to the first block + bias:
 * exactly the order of lsc_gemm_w_avx2, so a row's logits do not depend on
 * how many rows were computed with it. The rows are read side by side, front
 * to back (streams the hardware prefetchers follow into L2), each row's next
 * lines prefetched into L1 a few lines ahead. */
void lsc_matvec_nk_avx2(const float *x, const lsc_f32u *w, const lsc_f32u *b, float *y,
                        size_t K, size_t n0, size_t n1) {
    for (size_t n = n0; n < n1;) {
        int G = n1 - n >= 16 ? 2 : 1;
        size_t nr = G == 2 ? 16 : (n1 - n < 8 ? n1 - n : 8);
        const lsc_f32u *r[16];
        for (size_t i = 0; i < 16; i++) r[i] = w + (n + (i < nr ? i : 0)) * K;
        __m256 c0 = _mm256_setzero_ps(), c1 = _mm256_setzero_ps();
        for (size_t k0 = 0; k0 < K; k0 += KC) {
            size_t kend = K - k0 < KC ? K : k0 + KC;
            __m256 a0, a1;
            if (G == 2) nk_block(r, x, k0, kend, 2, &a0, &a1);
            else nk_block(r, x, k0, kend, 1, &a0, &a1);
            if (k0 == 0) {
                float bv[16] = {0};
                for (size_t i = 0; b && i < nr; i++) bv[i] = b[n + i];
                c0 = b ? _mm256_add_ps(a0, _mm256_loadu_ps(bv)) : a0;
                c1 = b ? _mm256_add_ps(a1, _mm256_loadu_ps(bv + 8)) : a1;
            } else {
                c0 = _mm256_add_ps(c0, a0);
                c1 = _mm256_add_ps(c1, a1);
            }
        }
        float out[16];
        _mm256_storeu_ps(out, c0);
        _mm256_storeu_ps(out + 8, c1);
        memcpy(y + n, out, nr * sizeof(float));
        n += nr;
    }
}

static void attention_rows(const lsc_attn_args *a, size_t i0, size_t i1, float *scratch) {
    lsc_attention_rows_avx2(a, i0, i1, scratch, NULL);
}

const lsc_level lsc_level_avx2 = {
    .simd = LSC_SIMD_AVX2,
    .matvec_kn = lsc_matvec_kn_avx2,
    .matvec_nk = lsc_matvec_nk_avx2,
    .bf16_prep = lsc_bf16_split_x,
    .matvec_bf16 = lsc_matvec_bf16_avx2,
    .matvec_q8 = lsc_matvec_q8_avx2,
    .gemm = lsc_gemm_w_avx2,
    .gemm_pack = LSC_GEMM_PACK_AVX2,
    .gemm_panels = lsc_gemm_w_avx2,
    .gemm_small = lsc_gemm_small_avx2,
    .layernorm = lsc_layernorm_avx2,
    .gelu_new = lsc_gelu_new_avx2,
    .attention_rows = attention_rows,
    .attn_scores = lsc_attn_scores_avx2,
    .attn_softmax = lsc_attn_softmax_avx2,
    .attn_values = lsc_attn_values_avx2,
};

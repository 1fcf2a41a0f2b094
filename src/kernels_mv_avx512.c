/* kernels_mv_avx512.c - the AVX-512 T = 1 kernels (matrix-vector products;
 * compiled with -mavx512f -mavx512bw -mavx512vl -mavx512dq -mfma and called
 * only when the CPU has them; see simd.c). The F32 kernels sum every element
 * in the same order as their AVX2 counterparts (and as the GEMM), so the two
 * levels give the same bits. Weights may be unaligned. */
#include "kernels.h"

#include <immintrin.h>
#include <string.h>

#define KC LSC_GEMM_KC

/* Mask of the first n (0..16) lanes. */
static inline __mmask16 lanes(size_t n) {
    return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1);
}

/* ------------------------------------------------------------------------ */
/* F32 [N, K]: the unembedding                                               */
/* ------------------------------------------------------------------------ */

#define INLINE static inline __attribute__((always_inline))

/* The 16 x 16 tile W[0..15][k .. k+15] of the rows at p, K floats apart,
 * transposed: lane i of o[j] is p[i K + k + j]. The first two steps of the
 * transpose are done by the loads: 128-lane L of register (j, c) holds row
 * 4 L + j at k + 4 c .. + 3 (one load and three inserts from memory, which
 * run on two ports), then a 4 x 4 transpose inside each 128-bit lane gives
 * the columns. */
INLINE void tile16(const float *p, size_t K, size_t k, __m512 o[16]) {
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
        __m512 v[4];
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            const float *q = p + j * K + k + 4 * c;
            __m512 t = _mm512_castps128_ps512(_mm_loadu_ps(q));
            t = _mm512_insertf32x4(t, _mm_loadu_ps(q + 4 * K), 1);
            t = _mm512_insertf32x4(t, _mm_loadu_ps(q + 8 * K), 2);
            v[j] = _mm512_insertf32x4(t, _mm_loadu_ps(q + 12 * K), 3);
        }
        __m512 t0 = _mm512_unpacklo_ps(v[0], v[1]), t1 = _mm512_unpackhi_ps(v[0], v[1]);
        __m512 t2 = _mm512_unpacklo_ps(v[2], v[3]), t3 = _mm512_unpackhi_ps(v[2], v[3]);
        o[4 * c + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t0), _mm512_castps_pd(t2)));
        o[4 * c + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t0), _mm512_castps_pd(t2)));
        o[4 * c + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t1), _mm512_castps_pd(t3)));
        o[4 * c + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t1), _mm512_castps_pd(t3)));
    }
}

/* acc += the 16 k steps of the tile at k, one after another. */
INLINE __m512 tile16_fma(const float *x, const float *p, size_t K, size_t k, __m512 acc) {
    __m512 o[16];
    tile16(p, K, k, o);
#pragma GCC unroll 16
    for (int j = 0; j < 16; j++) acc = _mm512_fmadd_ps(_mm512_set1_ps(x[k + j]), o[j], acc);
    return acc;
}

/* The k steps [k, kend) (fewer than 16) one at a time, as columns. */
static inline __m512 cols_fma(const float *x, const float *p, size_t K, size_t k, size_t kend,
                              __m512 acc) {
    const lsc_f32u *r = (const lsc_f32u *)p;
    for (; k < kend; k++) {
        float col[16];
        for (size_t i = 0; i < 16; i++) col[i] = r[i * K + k];
        acc = _mm512_fmadd_ps(_mm512_set1_ps(x[k]), _mm512_loadu_ps(col), acc);
    }
    return acc;
}

/* How far ahead each row is prefetched into L1 (floats): a few lines. With
 * the sixteen rows read side by side, the hardware prefetchers bring the
 * lines to L2 but not far enough ahead into L1; prefetching the whole next
 * group instead (one far, contiguous span) was slower. */
#define NK_PREFETCH (5 * 16)

/* y[n] = b[n] + sum_k x[k] W[n,k] for F32 W [N, K], n in [n0, n1): sixteen
 * rows at a time in 16 x 16 transposed tiles, each lane (one row) summing
 * its products one k after another from zero within each block of KC, the
 * blocks added to the first block + bias: the order of lsc_matvec_nk_avx2
 * and of the GEMM. The sixteen rows are read side by side, front to back
 * (sixteen streams, which the hardware prefetchers follow). The last rows
 * (fewer than 16) go to lsc_matvec_nk_avx2, which sums in the same order. */
void lsc_matvec_nk_avx512(const float *x, const lsc_f32u *w, const lsc_f32u *b, float *y,
                          size_t K, size_t n0, size_t n1) {
    size_t n = n0;
    for (; n + 16 <= n1; n += 16) {
        const float *p = (const float *)(w + n * K);
        __m512 c = _mm512_setzero_ps();
        for (size_t k0 = 0; k0 < K; k0 += KC) {
            size_t kend = K - k0 < KC ? K : k0 + KC, k = k0;
            __m512 acc = _mm512_setzero_ps();
            for (; k + 16 <= kend; k += 16) {
#pragma GCC unroll 16
                for (int i = 0; i < 16; i++)
                    _mm_prefetch((const char *)(p + i * K + k + NK_PREFETCH), _MM_HINT_T0);
                acc = tile16_fma(x, p, K, k, acc);
            }
            acc = cols_fma(x, p, K, k, kend, acc);
            if (k0 == 0) c = b ? _mm512_add_ps(acc, _mm512_loadu_ps((const float *)b + n)) : acc;
            else c = _mm512_add_ps(c, acc);
        }
        _mm512_storeu_ps(y + n, c);
    }
    if (n < n1) lsc_matvec_nk_avx2(x, w, b, y, K, n, n1);
}

/* ------------------------------------------------------------------------ */
/* F32 [K, N]: the blocks' Conv1D weights                                    */
/* ------------------------------------------------------------------------ */

/* y[n] = b[n] + sum_k x[k] W[k,n] for n in [n0, n1), W [K, N]: four weight
 * rows at a time front to back, the output slice in L1; per element y = b,
 * then y = fma(x[k], W[k], y) for k = 0, 1, ...: lsc_matvec_kn_avx2's order. */
void lsc_matvec_kn_avx512(const float *x, const lsc_f32u *w, const lsc_f32u *b, float *y,
                          size_t K, size_t N, size_t n0, size_t n1) {
    for (size_t n = n0; n < n1; n++) y[n] = b ? b[n] : 0.0f;
    size_t k = 0;
    for (; k + 4 <= K; k += 4) {
        const float *w0 = (const float *)(w + k * N), *w1 = w0 + N, *w2 = w1 + N, *w3 = w2 + N;
        __m512 x0 = _mm512_set1_ps(x[k]), x1 = _mm512_set1_ps(x[k + 1]);
        __m512 x2 = _mm512_set1_ps(x[k + 2]), x3 = _mm512_set1_ps(x[k + 3]);
        for (size_t n = n0; n < n1; n += 16) {
            __mmask16 m = lanes(n1 - n);
            __m512 acc = _mm512_maskz_loadu_ps(m, y + n);
            acc = _mm512_fmadd_ps(x0, _mm512_maskz_loadu_ps(m, w0 + n), acc);
            acc = _mm512_fmadd_ps(x1, _mm512_maskz_loadu_ps(m, w1 + n), acc);
            acc = _mm512_fmadd_ps(x2, _mm512_maskz_loadu_ps(m, w2 + n), acc);
            acc = _mm512_fmadd_ps(x3, _mm512_maskz_loadu_ps(m, w3 + n), acc);
            _mm512_mask_storeu_ps(y + n, m, acc);
        }
    }
    for (; k < K; k++) {
        const float *w0 = (const float *)(w + k * N);
        __m512 x0 = _mm512_set1_ps(x[k]);
        for (size_t n = n0; n < n1; n += 16) {
            __mmask16 m = lanes(n1 - n);
            _mm512_mask_storeu_ps(y + n, m, _mm512_fmadd_ps(x0, _mm512_maskz_loadu_ps(m, w0 + n),
                                                           _mm512_maskz_loadu_ps(m, y + n)));
        }
    }
}

/* ------------------------------------------------------------------------ */
/* BF16 [N, K]                                                        */
/* ------------------------------------------------------------------------ */

/* Each row's weights this many bytes ahead are prefetched into L1 (the rows
 * read side by side are streams the hardware brings to L2; a prefetch of the
 * rows a few groups ahead, as the AVX2 kernel does, was slower here). */
#define BF16_PREFETCH 512

/* x rearranged for the AVX-512 BF16 rows: in each group of 32, the 16 even-
 * then the 16 odd-indexed values; the rest (K mod 32) as it is. */
void lsc_bf16_split_x32(const float *x, size_t K, float *xr) {
    size_t k = 0;
    for (; k + 32 <= K; k += 32)
        for (size_t i = 0; i < 16; i++) {
            xr[k + i] = x[k + 2 * i];
            xr[k + 16 + i] = x[k + 2 * i + 1];
        }
    for (; k < K; k++) xr[k] = x[k];
}

static inline float bf16_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* The reduction of a BF16 row, then the tail k0..K-1 (unsplit x). */
static inline float bf16_row_finish(const float *x, const uint16_t *r, size_t K, size_t k0,
                                    __m512 ev, __m512 od) {
    float s = _mm512_reduce_add_ps(_mm512_add_ps(ev, od));
    for (size_t k = k0; k < K; k++) s += bf16_f32(r[k]) * x[k];
    return s;
}

#define BF16_STEP512(i)                                                                    \
    do {                                                                                   \
        __m512i v = _mm512_loadu_si512((const void *)(w + i * K + k));                     \
        ev##i = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(v, 16)), xe, ev##i); \
        od##i = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_and_si512(v, hi)), xo, od##i);  \
    } while (0)

/* y[n] = b[n] + sum_k x[k] W[n,k] for BF16 W [N, K], n in [n0, n1): four
 * rows at a time, 32 weights (one 64-byte load) a step per row, x kept in
 * F32 (xr is x after lsc_bf16_split_x32: a BF16 pair in one 32-bit lane
 * gives w[2i+1] as lane & 0xffff0000 and w[2i] as lane << 16). Every row is
 * summed in the same order (even and odd partial sums, reduced, the scalar
 * tail, the bias), whatever the slice. */
void lsc_matvec_bf16_avx512(const float *xr, const uint16_t *w0, const lsc_f32u *b, float *y,
                            size_t K, size_t n0, size_t n1) {
    const __m512i hi = _mm512_set1_epi32((int)0xffff0000u);
    size_t kv = K / 32 * 32, n = n0;
    for (; n + 4 <= n1; n += 4) {
        const uint16_t *w = w0 + n * K;
        __m512 ev0 = _mm512_setzero_ps(), od0 = ev0, ev1 = ev0, od1 = ev0, ev2 = ev0, od2 = ev0,
               ev3 = ev0, od3 = ev0;
        for (size_t k = 0; k < kv; k += 32) {
            __m512 xe = _mm512_loadu_ps(xr + k), xo = _mm512_loadu_ps(xr + k + 16);
            const char *pf = (const char *)(w + k) + BF16_PREFETCH;
            _mm_prefetch(pf, _MM_HINT_T0);
            _mm_prefetch(pf + 2 * K, _MM_HINT_T0);
            _mm_prefetch(pf + 4 * K, _MM_HINT_T0);
            _mm_prefetch(pf + 6 * K, _MM_HINT_T0);
            BF16_STEP512(0);
            BF16_STEP512(1);
            BF16_STEP512(2);
            BF16_STEP512(3);
        }
        y[n] = bf16_row_finish(xr, w, K, kv, ev0, od0);
        y[n + 1] = bf16_row_finish(xr, w + K, K, kv, ev1, od1);
        y[n + 2] = bf16_row_finish(xr, w + 2 * K, K, kv, ev2, od2);
        y[n + 3] = bf16_row_finish(xr, w + 3 * K, K, kv, ev3, od3);
    }
    for (; n < n1; n++) {
        const uint16_t *w = w0 + n * K;
        __m512 ev0 = _mm512_setzero_ps(), od0 = ev0;
        for (size_t k = 0; k < kv; k += 32) {
            __m512 xe = _mm512_loadu_ps(xr + k), xo = _mm512_loadu_ps(xr + k + 16);
            BF16_STEP512(0);
        }
        y[n] = bf16_row_finish(xr, w, K, kv, ev0, od0);
    }
    if (b)
        for (n = n0; n < n1; n++) y[n] += b[n];
}

/* avx512.c - the AVX-512 level (compiled with -mavx512f -mavx512bw
 * -mavx512vl -mavx512dq -mfma and called only when the CPU has them; see
 * dispatch.c): the GEMM, the T = 1 matrix-vector products, gelu_new and the
 * attention's scores and weighted values. They sum every element in the same
 * order as their AVX2 counterparts, so the two levels give the same F32 bits;
 * where AVX-512 gains nothing they call the AVX2 level (the level below),
 * never the other way round. Weights may be unaligned. */
#include "levels.h"

#include <immintrin.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* T > 1: the GEMM, 12 x 32 tiles                                            */
/* ------------------------------------------------------------------------ */

#define MR LSC_GEMM_MR_AVX512 /* rows of x per micro-tile: 24 zmm accumulators */
#define KC LSC_GEMM_KC
#define NC 128 /* column block (the pool's work items are 128 columns) */
#define KB 512 /* rows of W packed at once */

/* Mask of the first n (0..16) lanes. */
static inline __mmask16 lanes(size_t n) {
    return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1);
}

/* The end of a tile of mr rows by nr (<= 32) columns: C = acc + bias (the
 * first k block; bias may be NULL) or C += acc, on the valid corner only
 * (masked: nothing is read or written past column nr). */
static inline __attribute__((always_inline)) void store_tile(const __m512 acc[][2], size_t mr,
                                                             float *c, size_t ldc, int first,
                                                             const lsc_f32u *bias, size_t nr) {
    __mmask16 m0 = lanes(nr), m1 = nr > 16 ? lanes(nr - 16) : 0;
    __m512 bias0 = _mm512_setzero_ps(), bias1 = bias0;
    if (first && bias) {
        bias0 = _mm512_maskz_loadu_ps(m0, (const float *)bias);
        bias1 = _mm512_maskz_loadu_ps(m1, (const float *)bias + 16);
    }
    for (size_t i = 0; i < mr; i++) {
        float *ci = c + i * ldc;
        __m512 v0, v1;
        if (first) {
            v0 = bias ? _mm512_add_ps(acc[i][0], bias0) : acc[i][0];
            v1 = bias ? _mm512_add_ps(acc[i][1], bias1) : acc[i][1];
        } else {
            v0 = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, ci), acc[i][0]);
            v1 = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, ci + 16), acc[i][1]);
        }
        _mm512_mask_storeu_ps(ci, m0, v0);
        _mm512_mask_storeu_ps(ci + 16, m1, v1);
    }
}

#define ROW(i)                                                                 \
    do {                                                                       \
        __m512 av = _mm512_set1_ps(a[k * MR + (i)]);                           \
        c##i##0 = _mm512_fmadd_ps(av, b0, c##i##0);                            \
        c##i##1 = _mm512_fmadd_ps(av, b1, c##i##1);                            \
    } while (0)

/* acc = A[0:12, 0:kc] @ [Bp0 | Bp1][0:kc, 0:32], A packed (the 12 values of
 * each k together), Bp0 and Bp1 two packed 16-wide panels; then C = acc +
 * bias (first k block) or C += acc on the mr x nr valid corner. Each lane
 * is one output element summed from zero in k order, as micro_6x16 of the
 * AVX2 GEMM does. */
static void micro_12x32(const float *a, const float *bp0, const float *bp1,
                        size_t kc, float *c, size_t ldc, int first, const lsc_f32u *bias,
                        size_t mr, size_t nr) {
    __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00,
           c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00, c60 = c00,
           c61 = c00, c70 = c00, c71 = c00, c80 = c00, c81 = c00, c90 = c00, c91 = c00,
           c100 = c00, c101 = c00, c110 = c00, c111 = c00;
    for (size_t k = 0; k < kc; k++) {
        __m512 b0 = _mm512_load_ps(bp0 + k * LSC_GEMM_NR);
        __m512 b1 = _mm512_load_ps(bp1 + k * LSC_GEMM_NR);
        ROW(0); ROW(1); ROW(2); ROW(3); ROW(4); ROW(5);
        ROW(6); ROW(7); ROW(8); ROW(9); ROW(10); ROW(11);
    }
    __m512 acc[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31},
                         {c40, c41}, {c50, c51}, {c60, c61}, {c70, c71},
                         {c80, c81}, {c90, c91}, {c100, c101}, {c110, c111}};
    store_tile(acc, mr, c, ldc, first, bias, nr);
}

void lsc_gemm_pack_x_avx512(const float *x, size_t T, size_t K, size_t panel, float *xp) {
    size_t r0 = panel * MR, mr = T - r0 < MR ? T - r0 : MR;
    float *dst = xp + panel * K * MR;
    const float *rows[MR];
    for (size_t r = 0; r < MR; r++) rows[r] = x + (r0 + (r < mr ? r : 0)) * K;
    if (mr == MR) { /* 4 rows x 4 k at a time, transposed */
        size_t k = 0;
        for (; k + 4 <= K; k += 4)
            for (size_t r = 0; r < MR; r += 4) {
                __m128 v0 = _mm_loadu_ps(rows[r] + k), v1 = _mm_loadu_ps(rows[r + 1] + k);
                __m128 v2 = _mm_loadu_ps(rows[r + 2] + k), v3 = _mm_loadu_ps(rows[r + 3] + k);
                _MM_TRANSPOSE4_PS(v0, v1, v2, v3);
                _mm_storeu_ps(dst + k * MR + r, v0);
                _mm_storeu_ps(dst + (k + 1) * MR + r, v1);
                _mm_storeu_ps(dst + (k + 2) * MR + r, v2);
                _mm_storeu_ps(dst + (k + 3) * MR + r, v3);
            }
        for (; k < K; k++)
            for (size_t r = 0; r < MR; r++) dst[k * MR + r] = rows[r][k];
        return;
    }
    for (size_t k = 0; k < K; k++)
        for (size_t r = 0; r < MR; r++) dst[k * MR + r] = r < mr ? rows[r][k] : 0.0f;
}

/* y[T, n0:n1] = x[T,K] @ W + b for the columns [n0, n1), x packed by
 * lsc_gemm_pack_x_avx512, with the same packing of W and per-element order
 * as lsc_gemm_w_avx2 (tiles of 12 rows by two panels). The loops differ:
 * KB rows of W at once, and each 12-row tile of y goes through all their k
 * blocks before the next, so that it stays in L1 instead of being reloaded
 * for every k block. Weights already in panels are read where they lie (the
 * block is reused from L2 by the row tiles), others are packed first.
 * (Prefetching the next rows of W during the products measured no faster.) */
void lsc_gemm_w_avx512(const float *xp, const lsc_weights *w, const lsc_f32u *b, float *y,
                       size_t T, size_t K, size_t N, size_t n0, size_t n1, float *packed_b) {
    int in_panels = w->layout == LSC_LAYOUT_PANELS;
    for (size_t j0 = n0; j0 < n1; j0 += NC) {
        size_t nc = n1 - j0 < NC ? n1 - j0 : NC;
        size_t nc_pad = (nc + LSC_GEMM_NR - 1) / LSC_GEMM_NR * LSC_GEMM_NR;
        for (size_t kb0 = 0; kb0 < K; kb0 += KB) {
            size_t kb1 = K - kb0 < KB ? K : kb0 + KB;
            if (!in_panels)
                for (size_t k0 = kb0; k0 < kb1; k0 += KC)
                    lsc_gemm_pack_avx2(w, K, N, k0, kb1 - k0 < KC ? kb1 - k0 : KC, j0, nc,
                                       packed_b + (k0 - kb0) * nc_pad);
            for (size_t i0 = 0; i0 < T; i0 += MR) {
                size_t mr = T - i0 < MR ? T - i0 : MR;
                for (size_t k0 = kb0; k0 < kb1; k0 += KC) {
                    size_t kc = kb1 - k0 < KC ? kb1 - k0 : KC;
                    const float *a = xp + (i0 * K + k0 * MR);
                    /* panel q of the block at blk + q * pstride floats */
                    const float *blk = packed_b + (k0 - kb0) * nc_pad;
                    size_t pstride = kc * LSC_GEMM_NR;
                    if (in_panels) {
                        blk = (const float *)w->data + j0 * K + k0 * LSC_GEMM_NR;
                        pstride = K * LSC_GEMM_NR;
                    }
                    for (size_t p = 0; p < nc; p += 2 * LSC_GEMM_NR) {
                        size_t nr = nc - p < 2 * LSC_GEMM_NR ? nc - p : 2 * LSC_GEMM_NR;
                        const float *bp0 = blk + p / LSC_GEMM_NR * pstride;
                        /* a lone last panel: computed twice, stored once */
                        const float *bp1 = nr > LSC_GEMM_NR ? bp0 + pstride : bp0;
                        micro_12x32(a, bp0, bp1, kc, y + i0 * N + j0 + p, N, k0 == 0,
                                    b ? b + j0 + p : NULL, mr, nr);
                    }
                }
            }
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Up to 32 rows against F32 weights in panels, read where they lie        */
/* ------------------------------------------------------------------------ */

#define FEW_MR 12 /* rows per tile: 24 zmm accumulators over two panels */
/* How far ahead of the first tile the two panel streams are prefetched, at
 * the tiles' pace: lsc_gemm_w_avx2's PANEL_AHEAD_BYTES. */
#define FEW_AHEAD_BYTES 32768

#define FEW_ROW(i)                                                                              \
    if (mr > i) {                                                                               \
        __m512 av = _mm512_set1_ps(a[(i) * lda + k]);                                           \
        c##i##0 = _mm512_fmadd_ps(av, b0, c##i##0);                                             \
        if (two) c##i##1 = _mm512_fmadd_ps(av, b1, c##i##1);                                    \
    }

/* acc = A[0:mr, 0:kc] @ [Bp0 | Bp1][0:kc, 0:32] with A's rows lda apart (x
 * as it is) and Bp0, Bp1 two panels ([kc][16] each, read in place; Bp1 only
 * when `two`), each element summed from zero in k order; then C = acc +
 * bias (first k block) or C += acc on the mr x nr valid corner: the
 * operations of lsc_gemm_w_avx2's micro-tile, sixteen lanes at a time, so
 * the same bits. Every `every` k steps one line of each panel
 * FEW_AHEAD_BYTES ahead is prefetched (the tiles of a block share them). */
static inline __attribute__((always_inline)) void few_tile(
    const float *a, size_t lda, const float *bp0, const float *bp1, size_t kc, float *c,
    size_t ldc, int first, const lsc_f32u *bias, const int mr, const int two, size_t nr,
    const char *ahead0, const char *ahead1, unsigned every) {
    __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00,
           c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00, c60 = c00,
           c61 = c00, c70 = c00, c71 = c00, c80 = c00, c81 = c00, c90 = c00, c91 = c00,
           c100 = c00, c101 = c00, c110 = c00, c111 = c00;
    unsigned count = every;
    for (size_t k = 0; k < kc; k++) {
        if (--count == 0) {
            count = every;
            _mm_prefetch(ahead0, _MM_HINT_T0);
            if (two) _mm_prefetch(ahead1, _MM_HINT_T0);
            ahead0 += 64;
            ahead1 += 64;
        }
        __m512 b0 = _mm512_loadu_ps(bp0 + k * LSC_GEMM_NR), b1 = b0;
        if (two) b1 = _mm512_loadu_ps(bp1 + k * LSC_GEMM_NR);
        FEW_ROW(0) FEW_ROW(1) FEW_ROW(2) FEW_ROW(3) FEW_ROW(4) FEW_ROW(5)
        FEW_ROW(6) FEW_ROW(7) FEW_ROW(8) FEW_ROW(9) FEW_ROW(10) FEW_ROW(11)
    }
    __m512 acc[FEW_MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31},
                             {c40, c41}, {c50, c51}, {c60, c61}, {c70, c71},
                             {c80, c81}, {c90, c91}, {c100, c101}, {c110, c111}};
    store_tile(acc, (size_t)mr, c, ldc, first, bias, nr); /* one panel: nr <= 16 */
}
#undef FEW_ROW

#define FEW(m, two)                                                                             \
    static void few_##m##_##two(const float *a, size_t lda, const float *bp0, const float *bp1, \
                                size_t kc, float *c, size_t ldc, int first,                     \
                                const lsc_f32u *bias, size_t nr, const char *ahead0,            \
                                const char *ahead1, unsigned every) {                           \
        few_tile(a, lda, bp0, bp1, kc, c, ldc, first, bias, m, two, nr, ahead0, ahead1, every); \
    }
#define FEWS(m) FEW(m, 0) FEW(m, 1)
FEWS(1) FEWS(2) FEWS(3) FEWS(4) FEWS(5) FEWS(6) FEWS(7) FEWS(8) FEWS(9) FEWS(10) FEWS(11) FEWS(12)
#undef FEWS
#undef FEW

typedef void (*few_fn)(const float *a, size_t lda, const float *bp0, const float *bp1, size_t kc,
                       float *c, size_t ldc, int first, const lsc_f32u *bias, size_t nr,
                       const char *ahead0, const char *ahead1, unsigned every);
/* [two panels][rows] */
static const few_fn few_tiles[2][FEW_MR + 1] = {
    {NULL, few_1_0, few_2_0, few_3_0, few_4_0, few_5_0, few_6_0, few_7_0, few_8_0, few_9_0,
     few_10_0, few_11_0, few_12_0},
    {NULL, few_1_1, few_2_1, few_3_1, few_4_1, few_5_1, few_6_1, few_7_1, few_8_1, few_9_1,
     few_10_1, few_11_1, few_12_1}};

/* y[T, n0:n1] = x[T,K] @ W + b for 1-32 rows of F32 weights in
 * panels, [N/16][K][16], n0 a multiple of 16: two panels at a time front to
 * back, each k block of them reused from L1 by the row tiles (at most 12
 * rows, none padded); per element lsc_gemm_w_avx2's order (each k block
 * from zero in k order, added to the first block + bias), so the same bits.
 * One row too: two panel streams at once beat the AVX2 tiles' one-panel
 * stream there as well (in-memory decode 1.05-1.10x at 2 threads, 1.01-1.04x
 * at 1, interleaved, 4 and 3 rounds). */
void lsc_gemm_panels_avx512(const float *x, const lsc_weights *w, const lsc_f32u *b, float *y,
                            size_t T, size_t K, size_t N, size_t n0, size_t n1, float *packed_b) {
    (void)packed_b; /* read in place: nothing is packed */
    const float *W = (const float *)w->data;
    size_t tiles = (T + FEW_MR - 1) / FEW_MR;
    for (size_t j0 = n0; j0 < n1; j0 += 2 * LSC_GEMM_NR) {
        size_t nr = n1 - j0 < 2 * LSC_GEMM_NR ? n1 - j0 : 2 * LSC_GEMM_NR;
        int two = nr > LSC_GEMM_NR;
        for (size_t k0 = 0; k0 < K; k0 += KC) {
            size_t kc = K - k0 < KC ? K - k0 : KC;
            const float *bp0 = W + j0 * K + k0 * LSC_GEMM_NR, *bp1 = bp0 + K * LSC_GEMM_NR;
            size_t i0 = 0;
            for (size_t t = 0; t < tiles; t++) {
                size_t mr = T / tiles + (t < T % tiles);
                size_t skip = FEW_AHEAD_BYTES + t * kc / tiles * 64;
                few_tiles[two][mr](x + i0 * K + k0, K, bp0, bp1, kc, y + i0 * N + j0, N,
                                   k0 == 0, b ? b + j0 : NULL, nr, (const char *)bp0 + skip,
                                   (const char *)bp1 + skip, (unsigned)tiles);
                i0 += mr;
            }
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Elementwise kernels: the AVX2 versions' operations, 16 lanes at a time    */
/* ------------------------------------------------------------------------ */

/* exp256 of avx2.c, operation for operation (so the same bits). */
static inline __m512 exp512(__m512 x) {
    __mmask16 under = _mm512_cmp_ps_mask(x, _mm512_set1_ps(LSC_EXP_MIN), _CMP_LT_OQ);
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(LSC_EXP_MIN)), _mm512_set1_ps(LSC_EXP_MAX));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(LSC_EXP_LOG2E)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LSC_EXP_LN2_HI), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LSC_EXP_LN2_LO), r);
    __m512 p = _mm512_set1_ps(LSC_EXP_P0);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(LSC_EXP_P1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(LSC_EXP_P2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(LSC_EXP_P3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(LSC_EXP_P4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(LSC_EXP_P5));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_maskz_mul_ps((__mmask16)~under, p, _mm512_castsi512_ps(e));
}

void lsc_gelu_new_avx512(float *x, size_t n) {
    const __m512 c2 = _mm512_set1_ps(LSC_GELU_M2SQRT2PI);
    const __m512 c3 = _mm512_set1_ps(LSC_GELU_C3), one = _mm512_set1_ps(1.0f);
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = lanes(n - i);
        __m512 v = _mm512_maskz_loadu_ps(m, x + i);
        __m512 inner = _mm512_fmadd_ps(_mm512_mul_ps(c3, v), _mm512_mul_ps(v, v), v);
        __m512 e = exp512(_mm512_mul_ps(c2, inner));
        _mm512_mask_storeu_ps(x + i, m, _mm512_div_ps(v, _mm512_add_ps(one, e)));
    }
}

/* ------------------------------------------------------------------------ */
/* Causal self-attention                                                     */
/* ------------------------------------------------------------------------ */

/* As scores_avx2 (avx2.c): 32 keys at a time (two independent
 * FMA chains per row, which FMA latency needs), shared by the rows. */
static void attn_scores(const float *const q[4], size_t nr, const float *kt, size_t ks,
                            size_t D, size_t n, float scale, float *const s[4]) {
    const __m512 sc = _mm512_set1_ps(scale);
    const float *q0 = q[0], *q1 = q[nr > 1 ? 1 : 0], *q2 = q[nr > 2 ? 2 : 0],
                *q3 = q[nr > 3 ? 3 : 0];
    for (size_t p = 0; p < n; p += 32) {
        __mmask16 m0 = lanes(n - p), m1 = n - p > 16 ? lanes(n - p - 16) : 0;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        __m512 b0 = a0, b1 = a0, b2 = a0, b3 = a0;
        const float *k = kt + p;
        if (nr == 1) {
            for (size_t d = 0; d < D; d++, k += ks) {
                __m512 x0 = _mm512_set1_ps(q0[d]);
                a0 = _mm512_fmadd_ps(x0, _mm512_maskz_loadu_ps(m0, k), a0);
                b0 = _mm512_fmadd_ps(x0, _mm512_maskz_loadu_ps(m1, k + 16), b0);
            }
        } else {
            for (size_t d = 0; d < D; d++, k += ks) {
                __m512 k0 = _mm512_maskz_loadu_ps(m0, k), k1 = _mm512_maskz_loadu_ps(m1, k + 16);
                __m512 x = _mm512_set1_ps(q0[d]);
                a0 = _mm512_fmadd_ps(x, k0, a0);
                b0 = _mm512_fmadd_ps(x, k1, b0);
                x = _mm512_set1_ps(q1[d]);
                a1 = _mm512_fmadd_ps(x, k0, a1);
                b1 = _mm512_fmadd_ps(x, k1, b1);
                x = _mm512_set1_ps(q2[d]);
                a2 = _mm512_fmadd_ps(x, k0, a2);
                b2 = _mm512_fmadd_ps(x, k1, b2);
                x = _mm512_set1_ps(q3[d]);
                a3 = _mm512_fmadd_ps(x, k0, a3);
                b3 = _mm512_fmadd_ps(x, k1, b3);
            }
        }
        __m512 lo[4] = {a0, a1, a2, a3}, hi[4] = {b0, b1, b2, b3};
        for (size_t r = 0; r < nr; r++) {
            _mm512_mask_storeu_ps(s[r] + p, m0, _mm512_mul_ps(lo[r], sc));
            _mm512_mask_storeu_ps(s[r] + p + 16, m1, _mm512_mul_ps(hi[r], sc));
        }
    }
}

#define VROW(r)                                                              \
    do {                                                                     \
        __m512 wp = _mm512_set1_ps(w##r[p] * inv##r);                        \
        z##r##0 = _mm512_fmadd_ps(wp, v0, z##r##0);                          \
        z##r##1 = _mm512_fmadd_ps(wp, v1, z##r##1);                          \
        z##r##2 = _mm512_fmadd_ps(wp, v2, z##r##2);                          \
        z##r##3 = _mm512_fmadd_ps(wp, v3, z##r##3);                          \
    } while (0)
#define VLOAD()                                                              \
    const float *vp = v + p * vs;                                            \
    __m512 v0 = _mm512_loadu_ps(vp), v1 = _mm512_loadu_ps(vp + 16);          \
    __m512 v2 = _mm512_loadu_ps(vp + 32), v3 = _mm512_loadu_ps(vp + 48)
#define VSTORE(r)                                                            \
    do {                                                                     \
        _mm512_storeu_ps(z[r], z##r##0);                                     \
        _mm512_storeu_ps(z[r] + 16, z##r##1);                                \
        _mm512_storeu_ps(z[r] + 32, z##r##2);                                \
        _mm512_storeu_ps(z[r] + 48, z##r##3);                                \
    } while (0)

/* z[r][0:64) = sum_p (w[r][p] inv[r]) v_p for four consecutive rows of a
 * head of size 64, row r seeing keys [0, n + r): each element from zero in
 * p order, as weighted_values of avx2.c, but the rows share the loads of v and
 * give the FMA units 16 independent chains. */
static bool attn_values4(const float *const w[4], const float inv[4], const float *v,
                         size_t vs, size_t D, size_t n, float *const z[4]) {
    if (D != 64) return false;
    const float *w0 = w[0], *w1 = w[1], *w2 = w[2], *w3 = w[3];
    float inv0 = inv[0], inv1 = inv[1], inv2 = inv[2], inv3 = inv[3];
    __m512 z00 = _mm512_setzero_ps(), z01 = z00, z02 = z00, z03 = z00, z10 = z00, z11 = z00,
           z12 = z00, z13 = z00, z20 = z00, z21 = z00, z22 = z00, z23 = z00, z30 = z00,
           z31 = z00, z32 = z00, z33 = z00;
    size_t p = 0;
    for (; p < n; p++) {
        VLOAD();
        VROW(0); VROW(1); VROW(2); VROW(3);
    }
    VSTORE(0);
    { VLOAD(); VROW(1); VROW(2); VROW(3); }
    VSTORE(1);
    p++;
    { VLOAD(); VROW(2); VROW(3); }
    VSTORE(2);
    p++;
    { VLOAD(); VROW(3); }
    VSTORE(3);
    return true;
}

void lsc_attention_rows_avx512(const lsc_attn_args *a, size_t i0, size_t i1, float *scratch) {
    static const lsc_attn_parts parts = {attn_scores, attn_values4};
    lsc_attention_rows_avx2(a, i0, i1, scratch, &parts);
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

/* The AVX2 level's kernels where AVX-512 has none (or gains nothing): Q8,
 * LayerNorm and the attention's steps for the hooks (the same bits). */
const lsc_level lsc_level_avx512 = {
    .simd = LSC_SIMD_AVX512,
    .matvec_kn = lsc_matvec_kn_avx512,
    .matvec_nk = lsc_matvec_nk_avx512,
    .bf16_prep = lsc_bf16_split_x32,
    .matvec_bf16 = lsc_matvec_bf16_avx512,
    .matvec_q8 = lsc_matvec_q8_avx2,
    .gemm = lsc_gemm_w_avx512,
    .gemm_pack = LSC_GEMM_PACK_AVX512,
    .gemm_panels = lsc_gemm_panels_avx512,
    .gemm_x_rows = LSC_GEMM_MR_AVX512,
    .gemm_pack_x = lsc_gemm_pack_x_avx512,
    .gemm_small = lsc_gemm_small_avx2, /* the bits of this level's GEMM too (no zmm
                                          * version: not measured on an AVX-512 CPU yet) */
    .layernorm = lsc_layernorm_avx2,
    .gelu_new = lsc_gelu_new_avx512,
    .attention_rows = lsc_attention_rows_avx512,
    .attn_scores = lsc_attn_scores_avx2,
    .attn_softmax = lsc_attn_softmax_avx2,
    .attn_values = lsc_attn_values_avx2,
};

/* kernels_avx512.c - the AVX-512 kernels (compiled with -mavx512f -mavx512bw
 * -mavx512vl -mavx512dq -mfma and called only when the CPU has them; see
 * simd.c). They sum every element in the same order as their AVX2
 * counterparts, so the two levels give the same bits. */
#include "kernels.h"

#include <immintrin.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* T > 1: the GEMM, 12 x 32 tiles                                            */
/* ------------------------------------------------------------------------ */

#define MR 12 /* rows of x per micro-tile: 24 zmm accumulators */
#define KC LSC_GEMM_KC
#define NC 512 /* column block: the packed KC x NC weights stay in L1/L2 */

/* Mask of the first n (0..16) lanes. */
static inline __mmask16 lanes(size_t n) {
    return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1);
}

#define ROW(i)                                                                 \
    do {                                                                       \
        __m512 av = _mm512_set1_ps(a[(i) * lda + k]);                          \
        c##i##0 = _mm512_fmadd_ps(av, b0, c##i##0);                            \
        c##i##1 = _mm512_fmadd_ps(av, b1, c##i##1);                            \
    } while (0)

/* acc = A[0:12, 0:kc] @ [Bp0 | Bp1][0:kc, 0:32], A rows `lda` apart, Bp0 and
 * Bp1 two packed 16-wide panels; then C = acc + bias (first k block) or
 * C += acc on the mr x nr valid corner. Each lane is one output element
 * summed from zero in k order, as micro_6x16 of the AVX2 GEMM does. */
static void micro_12x32(const float *a, size_t lda, const float *bp0, const float *bp1,
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

/* Scratch for the packed weights, one per thread (128 KiB). */
static _Thread_local float packed_b[KC * NC] __attribute__((aligned(64)));

/* y[T, n0:n1] = x[T,K] @ W + b for the columns [n0, n1), as lsc_gemm_w_avx2
 * (the same loops and packing; tiles of 12 rows by two packed panels). */
void lsc_gemm_w_avx512(const float *x, const lsc_weights *w, const lsc_f32u *b, float *y,
                       size_t T, size_t K, size_t N, size_t n0, size_t n1) {
    float apad[MR * KC] __attribute__((aligned(64)));
    for (size_t j0 = n0; j0 < n1; j0 += NC) {
        size_t nc = n1 - j0 < NC ? n1 - j0 : NC;
        for (size_t k0 = 0; k0 < K; k0 += KC) {
            size_t kc = K - k0 < KC ? K - k0 : KC;
            lsc_gemm_pack_avx2(w, K, N, k0, kc, j0, nc, packed_b);
            for (size_t i0 = 0; i0 < T; i0 += MR) {
                size_t mr = T - i0 < MR ? T - i0 : MR;
                const float *a = x + i0 * K + k0;
                size_t lda = K;
                if (mr < MR) { /* last rows: a zero-padded copy */
                    memset(apad, 0, sizeof apad);
                    for (size_t i = 0; i < mr; i++)
                        memcpy(apad + i * kc, x + (i0 + i) * K + k0, kc * sizeof(float));
                    a = apad;
                    lda = kc;
                }
                for (size_t p = 0; p < nc; p += 2 * LSC_GEMM_NR) {
                    size_t nr = nc - p < 2 * LSC_GEMM_NR ? nc - p : 2 * LSC_GEMM_NR;
                    const float *bp0 = packed_b + p * kc;
                    /* a lone last panel: computed twice, stored once */
                    const float *bp1 = nr > LSC_GEMM_NR ? bp0 + LSC_GEMM_NR * kc : bp0;
                    micro_12x32(a, lda, bp0, bp1, kc, y + i0 * N + j0 + p, N, k0 == 0,
                                b ? b + j0 + p : NULL, mr, nr);
                }
            }
        }
    }
}

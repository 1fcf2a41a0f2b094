/* neon.c - the aarch64 Advanced SIMD level (built only for aarch64; see
 * dispatch.c): the F32 matrix products, which dominate decode (the T = 1
 * products over [K, N] blocks and the [N, K] unembedding) and prefill (the
 * GEMM). Every output element is summed in the AVX2 level's order (fma in k
 * order within blocks of LSC_GEMM_KC, the blocks added to the first + bias),
 * so these give the AVX2 kernels' bits. The rest of the level is the
 * reference on slices (ref.c). Checked for correctness under qemu-user; no
 * speed is claimed until a real ARM machine measures it. */
#include "levels.h"

#include <arm_neon.h>
#include <math.h>
#include <string.h>

#define KC LSC_GEMM_KC
#define NR LSC_GEMM_NR /* columns of a packed panel (four q registers) */
#define MR 4           /* rows of x per micro-tile: 16 accumulators */
#define NC 128         /* column block: the packed KC x NC weights stay in L2 */

static inline float32x4_t loadu(const lsc_f32u *p) { return vld1q_f32((const float *)p); }

/* y[n] = b[n] + sum_k x[k] W[k,n] for n in [n0, n1), W [K, N]: y = b, then
 * y = fma(x[k], W[k,n], y) for k = 0, 1, ... (four weight rows a pass). */
void lsc_matvec_kn_neon(const float *x, const lsc_f32u *w, const lsc_f32u *b, float *y,
                        size_t K, size_t N, size_t n0, size_t n1) {
    size_t nv = n0 + (n1 - n0) / 4 * 4;
    for (size_t n = n0; n < n1; n++) y[n] = b ? b[n] : 0.0f;
    size_t k = 0;
    for (; k + 4 <= K; k += 4) {
        const lsc_f32u *w0 = w + k * N, *w1 = w0 + N, *w2 = w1 + N, *w3 = w2 + N;
        size_t n = n0;
        for (; n < nv; n += 4) {
            float32x4_t acc = vld1q_f32(y + n);
            acc = vfmaq_n_f32(acc, loadu(w0 + n), x[k]);
            acc = vfmaq_n_f32(acc, loadu(w1 + n), x[k + 1]);
            acc = vfmaq_n_f32(acc, loadu(w2 + n), x[k + 2]);
            acc = vfmaq_n_f32(acc, loadu(w3 + n), x[k + 3]);
            vst1q_f32(y + n, acc);
        }
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
        size_t n = n0;
        for (; n < nv; n += 4) vst1q_f32(y + n, vfmaq_n_f32(vld1q_f32(y + n), loadu(w0 + n), x[k]));
        for (; n < n1; n++) y[n] = fmaf(x[k], w0[n], y[n]);
    }
}

/* Transposes the 4 x 4 block r[0..3] (rows) into columns. */
static inline void transpose4(float32x4_t r[4]) {
    float32x4_t t0 = vtrn1q_f32(r[0], r[1]), t1 = vtrn2q_f32(r[0], r[1]);
    float32x4_t t2 = vtrn1q_f32(r[2], r[3]), t3 = vtrn2q_f32(r[2], r[3]);
    r[0] = vreinterpretq_f32_f64(vtrn1q_f64(vreinterpretq_f64_f32(t0), vreinterpretq_f64_f32(t2)));
    r[1] = vreinterpretq_f32_f64(vtrn1q_f64(vreinterpretq_f64_f32(t1), vreinterpretq_f64_f32(t3)));
    r[2] = vreinterpretq_f32_f64(vtrn2q_f64(vreinterpretq_f64_f32(t0), vreinterpretq_f64_f32(t2)));
    r[3] = vreinterpretq_f32_f64(vtrn2q_f64(vreinterpretq_f64_f32(t1), vreinterpretq_f64_f32(t3)));
}

/* y[n] = b[n] + sum_k x[k] W[n,k] for F32 W [N, K], n in [n0, n1): four
 * rows at a time, read as 4 x 4 tiles and transposed so that each lane (one
 * row) sums its products one k after another from zero within each block of
 * KC; the blocks are added to the first block + bias. */
void lsc_matvec_nk_neon(const float *x, const lsc_f32u *w, const lsc_f32u *b, float *y,
                        size_t K, size_t n0, size_t n1) {
    for (size_t n = n0; n < n1; n += 4) {
        size_t nr = n1 - n < 4 ? n1 - n : 4;
        const lsc_f32u *r[4];
        for (size_t i = 0; i < 4; i++) r[i] = w + (n + (i < nr ? i : 0)) * K;
        float32x4_t c = vdupq_n_f32(0.0f);
        for (size_t k0 = 0; k0 < K; k0 += KC) {
            size_t kend = K - k0 < KC ? K : k0 + KC, kv = k0 + (kend - k0) / 4 * 4, k = k0;
            float32x4_t acc = vdupq_n_f32(0.0f);
            for (; k < kv; k += 4) {
                float32x4_t m[4] = {loadu(r[0] + k), loadu(r[1] + k), loadu(r[2] + k),
                                    loadu(r[3] + k)};
                transpose4(m);
                acc = vfmaq_n_f32(acc, m[0], x[k]);
                acc = vfmaq_n_f32(acc, m[1], x[k + 1]);
                acc = vfmaq_n_f32(acc, m[2], x[k + 2]);
                acc = vfmaq_n_f32(acc, m[3], x[k + 3]);
            }
            for (; k < kend; k++) {
                float col[4] = {r[0][k], r[1][k], r[2][k], r[3][k]};
                acc = vfmaq_n_f32(acc, vld1q_f32(col), x[k]);
            }
            if (k0 == 0) {
                float bv[4] = {0, 0, 0, 0};
                if (b)
                    for (size_t i = 0; i < nr; i++) bv[i] = b[n + i];
                c = b ? vaddq_f32(acc, vld1q_f32(bv)) : acc;
            } else {
                c = vaddq_f32(c, acc);
            }
        }
        float out[4];
        vst1q_f32(out, c);
        memcpy(y + n, out, nr * sizeof(float));
    }
}

/* Packs W[k0:k0+kc, j0:j0+nc] (W seen as [K, N], whatever its format and
 * layout) into ceil(nc / NR) panels of [kc][NR] floats, zero-padded. */
static void pack_w(const lsc_weights *w, size_t K, size_t N, size_t k0, size_t kc, size_t j0,
                   size_t nc, float *buf) {
    size_t panels = (nc + NR - 1) / NR;
    memset(buf, 0, panels * kc * NR * sizeof *buf);
    if (w->type == LSC_WEIGHTS_F32 && w->layout == LSC_LAYOUT_KN) { /* rows are already panel rows */
        for (size_t k = 0; k < kc; k++) {
            const lsc_f32u *src = (const lsc_f32u *)w->data + (k0 + k) * N + j0;
            for (size_t c = 0; c < nc; c++) buf[c / NR * kc * NR + k * NR + c % NR] = src[c];
        }
        return;
    }
    for (size_t c = 0; c < nc; c++) /* [N, K]: each output's weights front to back */
        for (size_t k = 0; k < kc; k++)
            buf[c / NR * kc * NR + k * NR + c % NR] = lsc_weights_get(w, K, N, k0 + k, j0 + c);
}

/* acc = A[0:4, 0:kc] @ Bp[0:kc, 0:16] (A rows lda apart, Bp packed), each
 * element from zero in k order; then C = acc + bias (first k block) or
 * C += acc on the mr x nr valid corner. */
static void micro_4x16(const float *a, size_t lda, const float *bp, size_t kc, float *c,
                       size_t ldc, int first, const lsc_f32u *bias, size_t mr, size_t nr) {
    float32x4_t acc[MR][4];
    for (size_t i = 0; i < MR; i++)
        for (size_t j = 0; j < 4; j++) acc[i][j] = vdupq_n_f32(0.0f);
    for (size_t k = 0; k < kc; k++) {
        float32x4_t b0 = vld1q_f32(bp + k * NR), b1 = vld1q_f32(bp + k * NR + 4);
        float32x4_t b2 = vld1q_f32(bp + k * NR + 8), b3 = vld1q_f32(bp + k * NR + 12);
        for (size_t i = 0; i < MR; i++) {
            float av = a[i * lda + k];
            acc[i][0] = vfmaq_n_f32(acc[i][0], b0, av);
            acc[i][1] = vfmaq_n_f32(acc[i][1], b1, av);
            acc[i][2] = vfmaq_n_f32(acc[i][2], b2, av);
            acc[i][3] = vfmaq_n_f32(acc[i][3], b3, av);
        }
    }
    float tile[MR][NR];
    for (size_t i = 0; i < MR; i++)
        for (size_t j = 0; j < 4; j++) vst1q_f32(tile[i] + 4 * j, acc[i][j]);
    for (size_t i = 0; i < mr; i++)
        for (size_t j = 0; j < nr; j++) {
            float *cij = c + i * ldc + j;
            if (first) *cij = bias ? tile[i][j] + bias[j] : tile[i][j];
            else *cij = *cij + tile[i][j];
        }
}

/* y[T, n0:n1] = x[T,K] @ W + b for the columns [n0, n1), W in any format
 * and layout (packing converts it): column blocks of NC, k blocks of KC
 * (weights packed), row blocks of MR, NR-wide panels, as lsc_gemm_w_avx2. */
void lsc_gemm_w_neon(const float *x, const lsc_weights *w, const lsc_f32u *b, float *y,
                     size_t T, size_t K, size_t N, size_t n0, size_t n1, float *pack) {
    float apad[MR * KC];
    for (size_t j0 = n0; j0 < n1; j0 += NC) {
        size_t nc = n1 - j0 < NC ? n1 - j0 : NC;
        for (size_t k0 = 0; k0 < K; k0 += KC) {
            size_t kc = K - k0 < KC ? K - k0 : KC;
            pack_w(w, K, N, k0, kc, j0, nc, pack);
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
                for (size_t p = 0; p < nc; p += NR) {
                    size_t nr = nc - p < NR ? nc - p : NR;
                    micro_4x16(a, lda, pack + p * kc, kc, y + i0 * N + j0 + p, N, k0 == 0,
                               b ? b + j0 + p : NULL, mr, nr);
                }
            }
        }
    }
}

const lsc_level lsc_level_neon = {
    .simd = LSC_SIMD_NEON,
    .matvec_kn = lsc_matvec_kn_neon,
    .matvec_nk = lsc_matvec_nk_neon,
    .bf16_prep = lsc_bf16_prep_ref,
    .matvec_bf16 = lsc_matvec_bf16_ref,
    .matvec_q8 = lsc_matvec_q8_ref,
    .gemm = lsc_gemm_w_neon,
    .gemm_pack = LSC_GEMM_PACK_NEON,
    .gemm_panels = lsc_gemm_w_neon,
    .layernorm = lsc_layernorm_rows_ref,
    .gelu_new = lsc_gelu_new_ref,
    .attention_rows = lsc_attention_rows_ref,
    .attn_scores = lsc_attn_scores_ref,
    .attn_softmax = lsc_attn_softmax_ref,
    .attn_values = lsc_attn_values_ref,
};

/* levels.h - the kernels of each level, for the backend's own files and its
 * tests (private to src/kernels/; the model includes only kernels.h).
 *
 * Calls go one way: weights.c <- ref.c <- avx2.c <- avx512.c <- dispatch.c.
 * Every fast kernel has its reference here (the *_ref functions, ref.c),
 * which defines what it computes; tests compare each with it. */
#ifndef LSC_KERNELS_LEVELS_H
#define LSC_KERNELS_LEVELS_H

#include "kernels.h"

/* ------------------------------------------------------------------------ */
/* A level's table: the kernels dispatch.c splits over the threads. Each    */
/* level file defines its own (lsc_level_avx2, ...); the plain level has    */
/* none (dispatch.c runs the reference kernels whole on the calling thread). */
/* ------------------------------------------------------------------------ */

typedef struct lsc_level {
    lsc_simd simd;
    /* T = 1 slices of the output [n0, n1): F32 [K, N] (y = b, then fma in k
     * order), F32 [N, K], BF16 (x prepared once by bf16_prep) and Q8 (x
     * rounded by lsc_q8_quantize_x) [N, K] */
    void (*matvec_kn)(const float *x, const lsc_f32u *w, const lsc_f32u *b, float *y, size_t K,
                      size_t N, size_t n0, size_t n1);
    void (*matvec_nk)(const float *x, const lsc_f32u *w, const lsc_f32u *b, float *y, size_t K,
                      size_t n0, size_t n1);
    void (*bf16_prep)(const float *x, size_t K, float *xr);
    void (*matvec_bf16)(const float *xr, const uint16_t *w, const lsc_f32u *b, float *y,
                        size_t K, size_t n0, size_t n1);
    void (*matvec_q8)(const int16_t *xq, const float *xs, const int8_t *q, const float *scale,
                      const lsc_f32u *b, float *y, size_t K, size_t n0, size_t n1);
    /* T > 1: the GEMM on columns [n0, n1) with a thread's packing scratch
     * of gemm_pack floats; when gemm_x_rows > 0, x is first packed in
     * panels of that many rows by gemm_pack_x (panel i at x + i K rows) */
    void (*gemm)(const float *x, const lsc_weights *w, const lsc_f32u *b, float *y, size_t T,
                 size_t K, size_t N, size_t n0, size_t n1, float *pack);
    size_t gemm_pack;
    /* up to 32 rows of F32 weights in panels (any T, x unpacked): the GEMM
     * with the smallest tiles, the same bits as gemm */
    void (*gemm_panels)(const float *x, const lsc_weights *w, const lsc_f32u *b, float *y,
                        size_t T, size_t K, size_t N, size_t n0, size_t n1, float *pack);
    size_t gemm_x_rows;
    void (*gemm_pack_x)(const float *x, size_t T, size_t K, size_t panel, float *xp);
    /* 1 < T <= LSC_SMALL_T_MAX, F32 [K, N] weights: the GEMM's bits on
     * columns [n0, n1) with W read where it lies, unpacked (NULL: the GEMM) */
    void (*gemm_small)(const float *x, const lsc_weights *w, const lsc_f32u *b, float *y,
                       size_t T, size_t K, size_t N, size_t n0, size_t n1);
    /* rows [t0, t1) of LayerNorm; gelu_new in place */
    void (*layernorm)(const float *x, const lsc_f32u *g, const lsc_f32u *b, float *y, size_t E,
                      float eps, size_t t0, size_t t1);
    void (*gelu_new)(float *x, size_t n);
    /* attention rows [i0, i1) of [H, T] with 4 (n_past + T) floats of
     * scratch; and its steps for the hooks, one row at a time */
    void (*attention_rows)(const lsc_attn_args *a, size_t i0, size_t i1, float *scratch);
    void (*attn_scores)(const lsc_attn_args *a, size_t i, float *row);
    void (*attn_softmax)(float *row, size_t P);
    void (*attn_values)(const lsc_attn_args *a, size_t i, const float *row);
} lsc_level;

extern const lsc_level lsc_level_avx2, lsc_level_avx512, lsc_level_neon;

/* ------------------------------------------------------------------------ */
/* weights.c: formats                                                        */
/* ------------------------------------------------------------------------ */

/* Rounds x[0:K] to 16 bits per LSC_Q8_BLOCK block: xs[b] = max |x| / 32767
 * over the block, xq[k] = round(x[k] * 32767 / max) (0 when max is 0). */
void lsc_q8_quantize_x(const float *x, size_t K, int16_t *xq, float *xs);

/* W's element (k, n) as a float. */
float lsc_weights_get(const lsc_weights *w, size_t K, size_t N, size_t k, size_t n);

/* ------------------------------------------------------------------------ */
/* ref.c: the reference kernels                                              */
/* ------------------------------------------------------------------------ */

/* y[T,N] = x[T,K] @ W[K,N] + b[N]: W row-major [K, N]. b may be NULL. */
void lsc_matmul_kn_ref(const float *x, const lsc_f32u *w, const lsc_f32u *b, float *y,
                       size_t T, size_t K, size_t N);
/* y[T,N] = x[T,K] @ W[N,K]^T: W row-major [N, K]. */
void lsc_matmul_nk_ref(const float *x, const lsc_f32u *w, float *y, size_t T, size_t K,
                       size_t N);
/* The GEMM's per-element order (LSC_GEMM_KC below) on columns [n0, n1) of
 * y[T,N] = x[T,K] @ W[K,N] + b: each k block summed from zero by fma in k
 * order, added to the first block + bias. What every fast F32 [K, N]
 * product computes, whatever T: the definition of row bits that do not
 * depend on the batch. */
void lsc_gemm_blocked_ref(const float *x, const lsc_f32u *w, const lsc_f32u *b, float *y,
                          size_t T, size_t K, size_t N, size_t n0, size_t n1);
/* lsc_matmul for W in any format and layout. */
void lsc_matmul_ref(const float *x, const lsc_weights *w, const lsc_f32u *b, float *y,
                    size_t T, size_t K, size_t N);
/* lsc_layernorm, in double. */
void lsc_layernorm_ref(const float *x, const lsc_f32u *g, const lsc_f32u *b, float *y,
                       size_t T, size_t E, float eps);
/* gelu_new: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), in place. */
void lsc_gelu_new_ref(float *x, size_t n);
/* lsc_act_apply. */
void lsc_act_apply_ref(lsc_act act, float *x, size_t n);
/* lsc_attention, one row of the flattened [H, T] at a time in `row`
 * (n_past + T floats), by the three steps below. */
void lsc_attention_ref(const lsc_attn_args *a, float *row);
/* Row i = h T + t of the scores ([0, n_past + T): -inf past the causal end),
 * its softmax in place, and z's row from the pattern. */
void lsc_attn_scores_ref(const lsc_attn_args *a, size_t i, float *row);
void lsc_attn_softmax_ref(float *row, size_t P);
void lsc_attn_values_ref(const lsc_attn_args *a, size_t i, const float *row);

/* The reference on a slice of the output (the signatures of lsc_level's
 * entries; BF16 takes x as is), for levels with no kernel of their own. */
void lsc_bf16_prep_ref(const float *x, size_t K, float *xr);
void lsc_matvec_bf16_ref(const float *x, const uint16_t *w, const lsc_f32u *b, float *y,
                         size_t K, size_t n0, size_t n1);
void lsc_matvec_q8_ref(const int16_t *xq, const float *xs, const int8_t *q, const float *scale,
                       const lsc_f32u *b, float *y, size_t K, size_t n0, size_t n1);
void lsc_layernorm_rows_ref(const float *x, const lsc_f32u *g, const lsc_f32u *b, float *y,
                            size_t E, float eps, size_t t0, size_t t1);
void lsc_attention_rows_ref(const lsc_attn_args *a, size_t i0, size_t i1, float *row);

/* The scale the fast levels multiply q.k by (the same bits as dividing
 * 1.0f by each divisor in turn). */
static inline float lsc_attn_scale(const lsc_attn_args *a) {
    return 1.0f / a->div_d / a->div_layer;
}

/* ------------------------------------------------------------------------ */
/* dispatch.c: entry points for one kernel (the model needs none of them)    */
/* ------------------------------------------------------------------------ */

/* lsc_matmul on F32 [K, N] and [N, K] weights (no bias for [N, K]). */
void lsc_matmul_kn(lsc_kernels *k, const float *x, const lsc_f32u *w,
                   const lsc_f32u *b, float *y, size_t T, size_t K, size_t N);
void lsc_matmul_nk(lsc_kernels *k, const float *x, const lsc_f32u *w, float *y,
                   size_t T, size_t K, size_t N);
/* gelu_new in place on x[0:n], split over the pool. */
void lsc_gelu_new(lsc_kernels *k, float *x, size_t n);

/* ------------------------------------------------------------------------ */
/* Constants the AVX2 and AVX-512 levels share so that they give the same    */
/* bits                                                                      */
/* ------------------------------------------------------------------------ */

/* The vector exp (Cephes' polynomial) and gelu_new constants. */
#define LSC_EXP_MIN (-87.3f)
#define LSC_EXP_MAX 88.3f
#define LSC_EXP_LOG2E 1.44269504088896341f
#define LSC_EXP_LN2_HI 0.693359375f
#define LSC_EXP_LN2_LO (-2.12194440e-4f)
#define LSC_EXP_P0 1.9875691500e-4f
#define LSC_EXP_P1 1.3981999507e-3f
#define LSC_EXP_P2 8.3334519073e-3f
#define LSC_EXP_P3 4.1665795894e-2f
#define LSC_EXP_P4 1.6666665459e-1f
#define LSC_EXP_P5 5.0000001201e-1f
#define LSC_GELU_M2SQRT2PI (-2.0f * 0.7978845608028654f) /* -2 sqrt(2/pi) */
#define LSC_GELU_C3 0.044715f

/* The GEMM (T > 1) sums every element in k blocks of LSC_GEMM_KC, each from
 * zero in k order, added to the first block + bias; its packed weight
 * panels are LSC_GEMM_NR columns wide. The T = 1 kernels use the same k
 * blocks, so a row's result does not depend on how many rows share it. */
#define LSC_GEMM_KC 256
#define LSC_GEMM_NR 16
/* Products of 2 up to this many rows of F32 [K, N] weights skip the GEMM's
 * packing (gemm_small): the measured crossover (docs/performance.md; above
 * it the packed GEMM is faster, at 16 rows 2.7x). */
#define LSC_SMALL_T_MAX 3

/* ------------------------------------------------------------------------ */
/* avx2.c: the AVX2 + FMA level                                              */
/* ------------------------------------------------------------------------ */
/* Each kernel computes one slice of the output ([n0, n1) or rows [t0, t1))
 * so that the threads of a pool share a product without sharing an output. */

/* T = 1, F32: y[n0:n1] = x @ W + b, W [K, N] (y = b, then fma in k order)
 * and W [N, K] (the GEMM's per-element order). */
void lsc_matvec_kn_avx2(const float *x, const lsc_f32u *w, const lsc_f32u *b, float *y,
                        size_t K, size_t N, size_t n0, size_t n1);
void lsc_matvec_nk_avx2(const float *x, const lsc_f32u *w, const lsc_f32u *b, float *y,
                        size_t K, size_t n0, size_t n1);
/* T = 1, BF16 and Q8 [N, K] weights. BF16 takes x rearranged by
 * lsc_bf16_split_x (in each group of 16 the even- then the odd-indexed
 * values), Q8 takes x rounded by lsc_q8_quantize_x; the caller prepares x
 * once for all the threads. */
void lsc_bf16_split_x(const float *x, size_t K, float *xr);
void lsc_matvec_bf16_avx2(const float *xr, const uint16_t *w, const lsc_f32u *b, float *y,
                          size_t K, size_t n0, size_t n1);
void lsc_matvec_q8_avx2(const int16_t *xq, const float *xs, const int8_t *q,
                        const float *scale, const lsc_f32u *b, float *y, size_t K, size_t n0,
                        size_t n1);
/* The GEMM for any lsc_weights (T > 1), outputs [n0, n1), 6 x 16 tiles;
 * `pack` is the thread's scratch of LSC_GEMM_PACK_AVX2 floats, 64-byte
 * aligned. */
#define LSC_GEMM_PACK_AVX2 (LSC_GEMM_KC * 128)
void lsc_gemm_w_avx2(const float *x, const lsc_weights *w, const lsc_f32u *b, float *y,
                     size_t T, size_t K, size_t N, size_t n0, size_t n1, float *pack);
/* Packs W[k0:k0+kc, j0:j0+nc] (W seen as [K, N], whatever its format and
 * layout) into ceil(nc / LSC_GEMM_NR) panels of [kc][LSC_GEMM_NR] floats,
 * zero-padded past nc; buf is 32-byte aligned. */
void lsc_gemm_pack_avx2(const lsc_weights *w, size_t K, size_t N, size_t k0, size_t kc,
                        size_t j0, size_t nc, float *buf);
/* The level's gemm_small (levels' table): lsc_gemm_w_avx2's bits for F32
 * [K, N] weights, read unpacked; also the AVX-512 level's (same bits). */
void lsc_gemm_small_avx2(const float *x, const lsc_weights *w, const lsc_f32u *b, float *y,
                         size_t T, size_t K, size_t N, size_t n0, size_t n1);
/* LayerNorm of rows [t0, t1) (float sums, 8-wide). */
void lsc_layernorm_avx2(const float *x, const lsc_f32u *g, const lsc_f32u *b, float *y,
                        size_t E, float eps, size_t t0, size_t t1);
/* gelu_new in place. */
void lsc_gelu_new_avx2(float *x, size_t n);
/* out[i] = exp(x[i] - max), returning their float sum (the vector exp). */
float lsc_exp_sub_avx2(const float *x, float max, float *out, size_t n);

/* The parts of the attention that a level above AVX2 may swap in (NULL:
 * AVX2's own): the scaled scores s[r][0:n) of nr (1..4) query rows q[r] of
 * one head against its transposed keys kt (D rows, ks apart), summed from
 * zero in d order; and z[r][0:D) = sum_p (w[r][p] inv[r]) v_p for four
 * consecutive rows, row r seeing keys [0, n + r), each element summed from
 * zero in p order (returns false where it does not apply, e.g. D != 64). */
typedef struct lsc_attn_parts {
    void (*scores)(const float *const q[4], size_t nr, const float *kt, size_t ks, size_t D,
                   size_t n, float scale, float *const s[4]);
    bool (*values4)(const float *const w[4], const float inv[4], const float *v, size_t vs,
                    size_t D, size_t n, float *const z[4]);
} lsc_attn_parts;

/* Heads x rows [i0, i1) of the flattened [H, T] of one attention call,
 * four rows of a head at a time; `scratch` holds 4 (n_past + T) floats. */
void lsc_attention_rows_avx2(const lsc_attn_args *a, size_t i0, size_t i1, float *scratch,
                             const lsc_attn_parts *parts);
/* The steps of the attention for the hooks, one row (as the _ref ones): the
 * bits of lsc_attention_rows_avx2 (and of the AVX-512 level's, which sum
 * in the same order). */
void lsc_attn_scores_avx2(const lsc_attn_args *a, size_t i, float *row);
void lsc_attn_softmax_avx2(float *row, size_t P);
void lsc_attn_values_avx2(const lsc_attn_args *a, size_t i, const float *row);

/* ------------------------------------------------------------------------ */
/* avx512.c: the AVX-512 level                                               */
/* ------------------------------------------------------------------------ */

/* The T = 1 F32 kernels (the AVX2 ones' bits) and BF16 (x rearranged by
 * lsc_bf16_split_x32, groups of 32: not bit-identical to AVX2, other lane
 * sums; Q8 stays on the AVX2 kernel: a zmm version was slower). */
void lsc_matvec_nk_avx512(const float *x, const lsc_f32u *w, const lsc_f32u *b, float *y,
                          size_t K, size_t n0, size_t n1);
void lsc_matvec_kn_avx512(const float *x, const lsc_f32u *w, const lsc_f32u *b, float *y,
                          size_t K, size_t N, size_t n0, size_t n1);
void lsc_bf16_split_x32(const float *x, size_t K, float *xr);
void lsc_matvec_bf16_avx512(const float *xr, const uint16_t *w, const lsc_f32u *b, float *y,
                            size_t K, size_t n0, size_t n1);
/* The GEMM (12 x 32 tiles; the AVX2 GEMM's bits) on x packed in panels of
 * LSC_GEMM_MR_AVX512 rows: panel i holds rows 12 i .. 12 i + 11 (zeros past
 * T) as [K][12], at xp + i * K * 12; lsc_gemm_pack_x_avx512 writes one. */
#define LSC_GEMM_MR_AVX512 12
void lsc_gemm_pack_x_avx512(const float *x, size_t T, size_t K, size_t panel, float *xp);
#define LSC_GEMM_PACK_AVX512 (512 * 128)
void lsc_gemm_w_avx512(const float *xp, const lsc_weights *w, const lsc_f32u *b, float *y,
                       size_t T, size_t K, size_t N, size_t n0, size_t n1, float *pack);
/* The level's gemm_panels: 1-32 rows against F32 weights in panels, read in
 * place, two panels by up to 12 rows a tile; lsc_gemm_w_avx2's bits. */
void lsc_gemm_panels_avx512(const float *x, const lsc_weights *w, const lsc_f32u *b, float *y,
                            size_t T, size_t K, size_t N, size_t n0, size_t n1, float *pack);
/* lsc_gelu_new_avx2's operations 16 lanes at a time: the same bits. */
void lsc_gelu_new_avx512(float *x, size_t n);
/* lsc_attention_rows_avx2 with the AVX-512 scores and 4-row values. */
void lsc_attention_rows_avx512(const lsc_attn_args *a, size_t i0, size_t i1, float *scratch);

/* ------------------------------------------------------------------------ */
/* neon.c: the aarch64 Advanced SIMD level                                   */
/* ------------------------------------------------------------------------ */
/* The F32 products, which dominate decode and prefill, in the AVX2 level's
 * per-element order (so the same bits as AVX2 for them); everything else
 * is the reference on slices (above). */
void lsc_matvec_kn_neon(const float *x, const lsc_f32u *w, const lsc_f32u *b, float *y,
                        size_t K, size_t N, size_t n0, size_t n1);
void lsc_matvec_nk_neon(const float *x, const lsc_f32u *w, const lsc_f32u *b, float *y,
                        size_t K, size_t n0, size_t n1);
#define LSC_GEMM_PACK_NEON (LSC_GEMM_KC * 128)
void lsc_gemm_w_neon(const float *x, const lsc_weights *w, const lsc_f32u *b, float *y,
                     size_t T, size_t K, size_t N, size_t n0, size_t n1, float *pack);

#endif

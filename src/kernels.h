/* kernels.h - the numeric kernels of the forward pass (not public).
 *
 * Every kernel has a plain reference version (kernels.c, *_ref) that is the
 * definition of what it computes, and the dispatching entry point (no suffix)
 * that picks the fastest implementation for this CPU at run time. Tests compare
 * every fast kernel with its reference.
 *
 * `pool` runs the work on the context's threads; NULL means the calling thread.
 */
#ifndef LSC_KERNELS_H
#define LSC_KERNELS_H

#include "logitscope.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct lsc_pool;

/* A float that may sit at any address: safetensors data sections need not be
 * aligned (the real gpt2 file's starts at byte 14291) and F32 weights are used
 * in place from the mmap, so weight pointers use this type. */
typedef float lsc_f32u __attribute__((aligned(1)));

/* y[T,N] = x[T,K] @ W[K,N] + b[N]: W row-major [K, N] (GPT-2's Conv1D layout,
 * c_attn/c_proj/c_fc). b may be NULL. */
void lsc_matmul_kn(struct lsc_pool *pool, const float *x, const lsc_f32u *w,
                   const lsc_f32u *b, float *y, size_t T, size_t K, size_t N);
void lsc_matmul_kn_ref(const float *x, const lsc_f32u *w, const lsc_f32u *b, float *y,
                       size_t T, size_t K, size_t N);

/* y[T,N] = x[T,K] @ W[N,K]^T: W row-major [N, K] (the embedding / nn.Linear
 * layout, used by the unembedding). */
void lsc_matmul_nk(struct lsc_pool *pool, const float *x, const lsc_f32u *w, float *y,
                   size_t T, size_t K, size_t N);
void lsc_matmul_nk_ref(const float *x, const lsc_f32u *w, float *y, size_t T, size_t K,
                       size_t N);

/* y[T,E] = (x - mean) / sqrt(var + eps) * g + b per row (biased variance, as
 * torch.nn.LayerNorm). y may equal x. */
void lsc_layernorm_ref(const float *x, const lsc_f32u *g, const lsc_f32u *b, float *y,
                       size_t T, size_t E, float eps);

/* gelu_new: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), in place. */
void lsc_gelu_new_ref(float *x, size_t n);

/* Activation functions of the MLP (transformers' ACT2FN names). */
typedef enum lsc_act {
    LSC_ACT_GELU_NEW,   /* gelu_new, gelu_pytorch_tanh, gelu_python_tanh: tanh approximation */
    LSC_ACT_GELU,       /* gelu, gelu_python: exact erf form */
    LSC_ACT_GELU_FAST,  /* gelu_fast */
    LSC_ACT_QUICK_GELU, /* quick_gelu: x * sigmoid(1.702 x) */
    LSC_ACT_RELU,
    LSC_ACT_RELU6,
    LSC_ACT_SILU, /* silu, swish */
    LSC_ACT_SIGMOID,
    LSC_ACT_TANH,
    LSC_ACT_LINEAR /* identity */
} lsc_act;

/* Applies the activation `act` to x[n] in place, as transformers' ACT2FN. */
void lsc_act_apply(struct lsc_pool *pool, lsc_act act, float *x, size_t n);
void lsc_act_apply_ref(lsc_act act, float *x, size_t n);

/* ------------------------------------------------------------------------ */
/* Fast kernels and run-time dispatch (simd.c, kernels_avx2.c)               */
/* ------------------------------------------------------------------------ */
/*
 * The dispatching entry points (lsc_matmul_kn, lsc_matmul_nk, lsc_layernorm,
 * lsc_gelu_new) run the kernels of the active SIMD level on the pool's
 * threads. Level LSC_SIMD_REF runs the reference kernels on the calling
 * thread. The level is the best the CPU supports, unless the environment
 * variable LSC_SIMD names a lower one ("ref", "avx2", "avx512") or lsc_simd_force() set
 * one: the only process-wide setting, read-only after start-up except in
 * tests and benchmarks. Fast kernels split work by output column (or row)
 * and sum every element in an order that does not depend on the split, so
 * results are bit-identical at every thread count.
 */
typedef enum lsc_simd {
    LSC_SIMD_REF = 0,   /* plain C, the reference kernels */
    LSC_SIMD_AVX2 = 1,  /* AVX2 + FMA (+ F16C) */
    LSC_SIMD_AVX512 = 2 /* AVX-512 F, BW, VL, DQ (+ the AVX2 level's kernels) */
} lsc_simd;

/* The best level this CPU supports. */
lsc_simd lsc_simd_best(void);
/* The level the entry points use now. */
lsc_simd lsc_simd_active(void);
/* Makes `level` active; false (and no change) when the CPU lacks it. */
bool lsc_simd_force(lsc_simd level);
/* "ref", "avx2", "avx512". */
const char *lsc_simd_name(lsc_simd level);

/* y[T,E] = layernorm(x) (see lsc_layernorm_ref), rows split over the pool. */
void lsc_layernorm(struct lsc_pool *pool, const float *x, const lsc_f32u *g,
                   const lsc_f32u *b, float *y, size_t T, size_t E, float eps);
/* gelu_new in place on x[0:n], split over the pool. */
void lsc_gelu_new(struct lsc_pool *pool, float *x, size_t n);

/* AVX2 kernels (kernels_avx2.c), each on one slice of the output; called by
 * simd.c only when the CPU has AVX2 and FMA. */
void lsc_matvec_kn_avx2(const float *x, const lsc_f32u *w, const lsc_f32u *b, float *y,
                        size_t K, size_t N, size_t n0, size_t n1);
void lsc_matvec_nk_avx2(const float *x, const lsc_f32u *w, const lsc_f32u *b, float *y,
                        size_t K, size_t n0, size_t n1);
/* The AVX-512 T = 1 kernels (kernels_mv_avx512.c): the same slices; the F32
 * ones give the AVX2 ones' bits. */
void lsc_matvec_nk_avx512(const float *x, const lsc_f32u *w, const lsc_f32u *b, float *y,
                          size_t K, size_t n0, size_t n1);
void lsc_matvec_kn_avx512(const float *x, const lsc_f32u *w, const lsc_f32u *b, float *y,
                          size_t K, size_t N, size_t n0, size_t n1);
void lsc_layernorm_avx2(const float *x, const lsc_f32u *g, const lsc_f32u *b, float *y,
                        size_t E, float eps, size_t t0, size_t t1);
void lsc_gelu_new_avx2(float *x, size_t n);
/* lsc_gelu_new_avx2's operations 16 lanes at a time: the same bits. */
void lsc_gelu_new_avx512(float *x, size_t n);
float lsc_exp_sub_avx2(const float *x, float max, float *out, size_t n);

/* The vector exp (Cephes' polynomial) and gelu_new constants, shared by the
 * AVX2 and AVX-512 kernels so that they keep giving the same bits. */
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

/* ------------------------------------------------------------------------ */
/* Weight matrices in any of the lsc_weight_type formats (weights.c)         */
/* ------------------------------------------------------------------------ */
/*
 * F32 weights are used where they lie (the mmap), in the file's layout: [K, N]
 * for Conv1D, [N, K] for the embedding. BF16 and Q8 weights are converted at
 * load into [N, K] (each output's weights contiguous over k), which makes the
 * T = 1 product a set of dot products:
 *   BF16: uint16 [N, K], the top half of the float32 (round to nearest even).
 *   Q8:   int8 [N, K] and float scales [N, ceil(K / 32)]: the weights of
 *         output n at k in [32 b, 32 b + 32) are scale[n, b] * q[n, k], with
 *         scale = max |w| / 127 over the block and q = round(w / scale).
 *         A Q8 product first rounds each row of x to 16-bit integers per
 *         block (lsc_q8_quantize_x: relative error <= 2^-16 of the block's
 *         largest |x|), so the block sums are exact integer multiply-adds.
 */
#define LSC_Q8_BLOCK 32

typedef struct lsc_weights {
    lsc_weight_type type;
    int nk;              /* 1: stored [N, K]; 0: [K, N] (F32 only) */
    const void *data;    /* lsc_f32u, uint16_t or int8_t elements */
    const float *scale;  /* Q8 only: [N, ceil(K / LSC_Q8_BLOCK)] */
} lsc_weights;

/* Bytes of data (and of scale) that lsc_weights_convert writes for a K x N
 * matrix of `type`; false on overflow. */
bool lsc_weights_size(lsc_weight_type type, size_t K, size_t N, size_t *data_bytes,
                      size_t *scale_bytes);

/* Converts the F32 matrix `w` (layout [K, N] when src_nk == 0, else [N, K])
 * into `type` in [N, K] layout, writing `data` and (Q8) `scale`, sized by
 * lsc_weights_size; fills *out to point at them (the caller owns the
 * buffers). */
void lsc_weights_convert(const lsc_f32u *w, int src_nk, size_t K, size_t N,
                         lsc_weight_type type, void *data, float *scale, lsc_weights *out);

/* Rounds x[0:K] to 16 bits per LSC_Q8_BLOCK block: xs[b] = max |x| / 32767
 * over the block, xq[k] = round(x[k] * 32767 / max) (0 when max is 0). */
void lsc_q8_quantize_x(const float *x, size_t K, int16_t *xq, float *xs);

/* W's element (k, n) as a float. */
float lsc_weights_get(const lsc_weights *w, size_t K, size_t N, size_t k, size_t n);

/* y[T,N] = x[T,K] @ W + b[N] for W in any format and layout (b may be NULL):
 * the dispatching entry point and its reference. */
void lsc_matmul(struct lsc_pool *pool, const float *x, const lsc_weights *w,
                const lsc_f32u *b, float *y, size_t T, size_t K, size_t N);
void lsc_matmul_ref(const float *x, const lsc_weights *w, const lsc_f32u *b, float *y,
                    size_t T, size_t K, size_t N);

/* AVX2 kernels for BF16 and Q8 [N, K] weights, T = 1, outputs [n0, n1).
 * BF16 takes x rearranged by lsc_bf16_split_x (in each group of 16 the even-
 * then the odd-indexed values), Q8 takes x rounded by lsc_q8_quantize_x;
 * the caller prepares x once for all the threads. */
void lsc_bf16_split_x(const float *x, size_t K, float *xr);
void lsc_matvec_bf16_avx2(const float *xr, const uint16_t *w, const lsc_f32u *b, float *y,
                          size_t K, size_t n0, size_t n1);
void lsc_matvec_q8_avx2(const int16_t *xq, const float *xs, const int8_t *q,
                        const float *scale, const lsc_f32u *b, float *y, size_t K, size_t n0,
                        size_t n1);
/* BF16 at the AVX-512 level (kernels_mv_avx512.c), x rearranged by
 * lsc_bf16_split_x32 (groups of 32): not bit-identical to AVX2 (other lane
 * sums), the same numerics (x in F32). (Q8 stays on the AVX2 kernel: a
 * zmm version was slower.) */
void lsc_bf16_split_x32(const float *x, size_t K, float *xr);
void lsc_matvec_bf16_avx512(const float *xr, const uint16_t *w, const lsc_f32u *b, float *y,
                            size_t K, size_t n0, size_t n1);
/* The GEMM for any lsc_weights (T > 1), outputs [n0, n1): AVX2 (6 x 16
 * tiles) and AVX-512 (12 x 32 tiles). Both sum every element in the same
 * order (k blocks of LSC_GEMM_KC, each from zero in k order, added to the
 * first block + bias), so their results are bit-identical. */
#define LSC_GEMM_KC 256
#define LSC_GEMM_NR 16
void lsc_gemm_w_avx2(const float *x, const lsc_weights *w, const lsc_f32u *b, float *y,
                     size_t T, size_t K, size_t N, size_t n0, size_t n1);
/* The AVX-512 GEMM takes x packed in panels of LSC_GEMM_MR_AVX512 rows:
 * panel i holds rows 12 i .. 12 i + 11 (zeros past T) as [K][12], at
 * xp + i * K * 12; lsc_gemm_pack_x_avx512 writes one panel. */
#define LSC_GEMM_MR_AVX512 12
void lsc_gemm_pack_x_avx512(const float *x, size_t T, size_t K, size_t panel, float *xp);
void lsc_gemm_w_avx512(const float *xp, const lsc_weights *w, const lsc_f32u *b, float *y,
                       size_t T, size_t K, size_t N, size_t n0, size_t n1);
/* Packs W[k0:k0+kc, j0:j0+nc] (W seen as [K, N], whatever its format and
 * layout) into ceil(nc / LSC_GEMM_NR) panels of [kc][LSC_GEMM_NR] floats,
 * zero-padded past nc; buf is 32-byte aligned. */
void lsc_gemm_pack_avx2(const lsc_weights *w, size_t K, size_t N, size_t k0, size_t kc,
                        size_t j0, size_t nc, float *buf);

/* ------------------------------------------------------------------------ */
/* Causal self-attention (attention.c, kernels_avx2.c)                       */
/* ------------------------------------------------------------------------ */

/* Where the operands of one attention call lie. Query and value rows are
 * positions, head h of a row starting at float h * D; the keys are stored
 * transposed (the KV cache's layout), so that one load gives one dimension
 * of consecutive keys: dimension d of head h at position p is
 * kt[(h * D + d) * kt_stride + p]. Query row t is absolute position
 * n_past + t and attends to key/value positions 0 .. n_past + t. */
typedef struct lsc_attn_args {
    const float *q;  /* [T, q_stride]: the T new queries */
    const float *kt; /* [H * D, kt_stride]: keys of all positions, transposed */
    const float *v;  /* [n_past + T, v_stride]: values of all positions */
    float *z;        /* [T, z_stride]: out, the attention-weighted values */
    size_t q_stride, kt_stride, v_stride, z_stride;
    size_t T, n_past, H, D;
    float scale;     /* multiplies q.k (1/sqrt(D), / (layer+1) when asked) */
} lsc_attn_args;

/* z = softmax(scale q k^T, causal) v for every head and new position. Rows
 * are independent, so results do not depend on the thread count. */
void lsc_attention(struct lsc_pool *pool, const lsc_attn_args *a);
void lsc_attention_ref(const lsc_attn_args *a);
/* The reference on rows [i0, i1) of the flattened [H, T]. */
void lsc_attention_ref_rows(const lsc_attn_args *a, size_t i0, size_t i1);

/* Heads x rows [i0, i1) of the flattened [H, T] of one attention call,
 * four rows of a head at a time (kernels_avx2.c); `scratch` holds
 * 4 (n_past + T) floats. With `avx512`, the scores and the 4-row weighted
 * values of 64-wide heads use the AVX-512 kernels below. Every score is
 * summed from zero in d order and every output in position order, so both
 * levels give the same bits. */
void lsc_attention_rows(const lsc_attn_args *a, size_t i0, size_t i1, float *scratch,
                        bool avx512);
/* The scaled scores s[r][0:n) of nr (1..4) query rows q[r] of one head
 * against its transposed keys kt (D rows, ks apart), 32 keys at a time. */
void lsc_attn_scores_avx512(const float *const q[4], size_t nr, const float *kt, size_t ks,
                            size_t D, size_t n, float scale, float *const s[4]);
/* z[r][0:64) = sum_p (w[r][p] inv[r]) v_p for four consecutive rows, row r
 * seeing keys [0, n + r). */
void lsc_attn_values4_64_avx512(const float *const w[4], const float inv[4], const float *v,
                                size_t vs, size_t n, float *const z[4]);

#endif

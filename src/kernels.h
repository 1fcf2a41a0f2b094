/* kernels.h - what the model calls of the numeric kernels (not public).
 *
 * The kernels form one layered backend in src/kernels/, each file calling
 * only the ones below it:
 *
 *   weights.c   weight formats and conversion (F32, BF16, Q8)
 *   ref.c       the plain reference kernels: the definition of each kernel
 *   avx2.c      the AVX2 + FMA level (uses ref.c / weights.c)
 *   avx512.c    the AVX-512 level (uses avx2.c where it gains nothing)
 *   dispatch.c  chooses the level and splits each kernel over a thread pool
 *
 * The model calls the entry points below; the per-level kernels are
 * declared in src/kernels/levels.h, which only the backend and its tests
 * include.
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

/* ------------------------------------------------------------------------ */
/* Levels                                                                    */
/* ------------------------------------------------------------------------ */
/*
 * The entry points run the kernels of the active SIMD level on the pool's
 * threads. Level LSC_SIMD_REF runs the reference kernels on the calling
 * thread. The level is the best the CPU supports, unless the environment
 * variable LSC_SIMD names a lower one ("ref", "avx2", "avx512") or
 * lsc_simd_force() set one. Fast kernels split work by output column (or
 * row) and sum every element in an order that does not depend on the split,
 * so results are bit-identical at every thread count.
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

/* ------------------------------------------------------------------------ */
/* The entry points (dispatch.c)                                             */
/* ------------------------------------------------------------------------ */

/* y[T,N] = x[T,K] @ W + b[N] for W in any format and layout (b may be NULL).
 * For F32, [K, N] is GPT-2's Conv1D layout (c_attn/c_proj/c_fc) and [N, K]
 * the embedding's (the unembedding). */
void lsc_matmul(struct lsc_pool *pool, const float *x, const lsc_weights *w,
                const lsc_f32u *b, float *y, size_t T, size_t K, size_t N);

/* y[T,E] = (x - mean) / sqrt(var + eps) * g + b per row (biased variance, as
 * torch.nn.LayerNorm), rows split over the pool. y may equal x. */
void lsc_layernorm(struct lsc_pool *pool, const float *x, const lsc_f32u *g,
                   const lsc_f32u *b, float *y, size_t T, size_t E, float eps);

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

/* Where the operands of one causal self-attention call lie. Query and value
 * rows are positions, head h of a row starting at float h * D; the keys are
 * stored transposed (the KV cache's layout), so that one load gives one
 * dimension of consecutive keys: dimension d of head h at position p is
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

#endif

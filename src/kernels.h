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
 * Each entry point takes the context's lsc_kernels: its level's table, its
 * thread pool and its scratch.
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
/* Levels and the kernel table (dispatch.c)                                  */
/* ------------------------------------------------------------------------ */
/*
 * An lsc_kernels holds one level's table of kernels, the thread pool they run
 * on and their scratch (per-thread packing buffers, the prepared x of a
 * product, partial sums, attention rows), sized once; nothing is global.
 * It is used by one thread at a time (its context's). Level LSC_SIMD_REF
 * runs the reference kernels on the calling thread; the others split every
 * kernel by output column (or row) and sum each element in an order that
 * does not depend on the split, so results are bit-identical at every
 * thread count.
 */

/* The best level this CPU has (never LSC_SIMD_BEST). */
lsc_simd lsc_simd_best(void);
/* What LSC_SIMD_BEST means in this process: lsc_simd_best() capped by the
 * environment variable LSC_SIMD (an unknown name or a level the CPU lacks
 * keeps the best). */
lsc_simd lsc_simd_default(void);
/* "ref", "avx2", "avx512", "neon" ("best" for LSC_SIMD_BEST). */
const char *lsc_simd_name(lsc_simd level);

typedef struct lsc_kernels lsc_kernels;

/* Makes *out run `level` (LSC_SIMD_BEST: lsc_simd_default(); a level above
 * it is capped to it) on `pool` (NULL: the calling thread; it must outlive
 * *out). LSC_ERR_UNSUPPORTED when the CPU lacks the level. */
lsc_status lsc_kernels_new(lsc_simd level, struct lsc_pool *pool, lsc_kernels **out,
                           lsc_error *err);
void lsc_kernels_free(lsc_kernels *k);
lsc_simd lsc_kernels_level(const lsc_kernels *k);

/* Grows the scratch for products of up to T rows with up to K inputs and,
 * for F32 [K, N] weights, up to N outputs, and attention over up to P
 * positions. Every call below must stay within what was reserved. */
lsc_status lsc_kernels_reserve(lsc_kernels *k, size_t T, size_t K, size_t N, size_t P,
                               lsc_error *err);

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

/* How a matrix's elements lie in memory (F32 may use any; BF16 and Q8 are
 * always LSC_LAYOUT_NK):
 *   KN      [K, N], GPT-2's Conv1D layout, as in the file;
 *   NK      [N, K], the embedding's, as in the file;
 *   PANELS  ceil(N / 16) panels of [K][16] floats (zeros past N): the
 *           GEMM's packed layout, made once at load (lsc_weights_panels) so
 *           that a product of few rows streams W front to back instead of
 *           packing it again at every step (docs/performance.md). */
typedef enum lsc_layout { LSC_LAYOUT_KN, LSC_LAYOUT_NK, LSC_LAYOUT_PANELS } lsc_layout;
#define LSC_PANEL_COLS 16

typedef struct lsc_weights {
    lsc_weight_type type;
    lsc_layout layout;
    const void *data;    /* lsc_f32u, uint16_t or int8_t elements */
    const float *scale;  /* Q8 only: [N, ceil(K / LSC_Q8_BLOCK)] */
    int panels_from_nk;  /* PANELS made from [N, K]: the plain level sums as for [N, K] */
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

/* Floats of the panels of a K x N matrix (false on overflow), and the F32
 * matrix `w` (layout [K, N] when src_nk == 0, else [N, K]) copied into
 * them at `data` (64-byte aligned); fills *out to point at them. */
bool lsc_weights_panels_size(size_t K, size_t N, size_t *floats);
/* out[k] = W[k, n] for k < K (W seen as [K, N], any format and layout). */
void lsc_weights_column(const lsc_weights *w, size_t K, size_t N, size_t n, float *out);
void lsc_weights_panels(const lsc_f32u *w, int src_nk, size_t K, size_t N, float *data,
                        lsc_weights *out);

/* ------------------------------------------------------------------------ */
/* The entry points (dispatch.c)                                             */
/* ------------------------------------------------------------------------ */

/* y[T,N] = x[T,K] @ W + b[N] for W in any format and layout (b may be NULL).
 * For F32, [K, N] is GPT-2's Conv1D layout (c_attn/c_proj/c_fc) and [N, K]
 * the embedding's (the unembedding). */
void lsc_matmul(lsc_kernels *k, const float *x, const lsc_weights *w,
                const lsc_f32u *b, float *y, size_t T, size_t K, size_t N);

/* y[T,E] = (x - mean) / sqrt(var + eps) * g + b per row (biased variance, as
 * torch.nn.LayerNorm), rows split over the pool. y may equal x. */
void lsc_layernorm(lsc_kernels *k, const float *x, const lsc_f32u *g,
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
void lsc_act_apply(lsc_kernels *k, lsc_act act, float *x, size_t n);

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
    float div_d;     /* q.k is divided by div_d, then by div_layer (sqrt(D) and */
    float div_layer; /* layer + 1 when the config asks, else 1) */
} lsc_attn_args;

/* z = softmax(q k^T / div_d / div_layer, causal) v for every head and new
 * position. Rows are independent, so results do not depend on the thread
 * count. */
void lsc_attention(lsc_kernels *k, const lsc_attn_args *a);

/* lsc_attention for n sequences of a step (each on its own cache) in one
 * loop over the pool: a decode step of many sequences has little work in
 * each, which alone would run on one thread or wake the pool for a few
 * microseconds of work. The same bits as n calls. */
void lsc_attention_many(lsc_kernels *k, const lsc_attn_args *a, size_t n);

/* The same in three steps, for hooks that read or change the scores and the
 * pattern, S [H, T, n_past + T] (row i = h T + t; masked positions -inf in
 * the scores, 0 in the pattern): the same bits as lsc_attention when no
 * hook changes them. Run on the calling thread. */
void lsc_attn_scores(lsc_kernels *k, const lsc_attn_args *a, float *S);
void lsc_attn_softmax(lsc_kernels *k, const lsc_attn_args *a, float *S);
void lsc_attn_values(lsc_kernels *k, const lsc_attn_args *a, const float *S);

#endif

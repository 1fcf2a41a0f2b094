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

#include <stddef.h>

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

#endif

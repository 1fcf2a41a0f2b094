/* dispatch.c - run-time choice of the kernels' level and the entry points
 * that split each kernel over a thread pool (see kernels.h): the top of the
 * backend, the only file that names every level. */
#include "levels.h"
#include "internal.h"
#include "pool.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* -1 until first use; then the active lsc_simd. */
static _Atomic int active_level = -1;

lsc_simd lsc_simd_best(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return LSC_SIMD_REF;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        return LSC_SIMD_AVX512;
    return LSC_SIMD_AVX2;
#endif
    return LSC_SIMD_REF;
}

const char *lsc_simd_name(lsc_simd level) {
    switch (level) {
    case LSC_SIMD_REF: return "ref";
    case LSC_SIMD_AVX2: return "avx2";
    case LSC_SIMD_AVX512: return "avx512";
    }
    return "unknown";
}

const char *lsc_simd_level(void) { return lsc_simd_name(lsc_simd_active()); }

bool lsc_simd_force(lsc_simd level) {
    if (level != LSC_SIMD_REF && level > lsc_simd_best()) return false;
    atomic_store(&active_level, (int)level);
    return true;
}

lsc_simd lsc_simd_active(void) {
    int level = atomic_load(&active_level);
    if (level >= 0) return (lsc_simd)level;
    lsc_simd chosen = lsc_simd_best();
    const char *env = getenv("LSC_SIMD");
    /* a lower level when asked; one the CPU lacks (or an unknown name)
     * keeps the best */
    for (int l = LSC_SIMD_REF; env && l < (int)chosen; l++)
        if (!strcmp(env, lsc_simd_name((lsc_simd)l))) chosen = (lsc_simd)l;
    int expected = -1;
    atomic_compare_exchange_strong(&active_level, &expected, (int)chosen);
    return (lsc_simd)atomic_load(&active_level);
}

/* Products smaller than this many multiply-adds run on the calling thread:
 * waking the pool costs more than it saves. */
#define PARALLEL_MIN_MACS (64u * 1024u)

static lsc_pool *pool_for(lsc_pool *pool, size_t macs) {
    return macs < PARALLEL_MIN_MACS ? NULL : pool;
}

/* Work items: GEMM output columns, T = 1 output rows of [N, K] weights, and
 * T = 1 blocks of input rows of [K, N] weights (partial sums, added in block
 * order), so that each item reads its weights front to back. KN_ITEM_ROWS
 * equals the GEMM's k block, which makes F32 results at T = 1 bit-identical
 * to the same row computed in a T > 1 product; with few blocks (K = 768:
 * three) the blocks are also cut into column ranges, so that every thread
 * has work. */
#define GEMM_ITEM_COLS 128
#define NK_ITEM_ROWS 64
#define KN_ITEM_ROWS LSC_GEMM_KC

/* One matrix product for the pool's threads. */
typedef struct matmul_job {
    const float *x;
    const lsc_weights *w;
    const lsc_f32u *b;
    float *y;
    size_t T, K, N;
    float *partial; /* T = 1, [K, N] weights: [n_items, N] partial sums */
    const float *xr;    /* T = 1, BF16: x split by lsc_bf16_split_x */
    const int16_t *xq;  /* T = 1, Q8: x rounded by lsc_q8_quantize_x */
    const float *xs;
    float *xp;          /* T > 1, AVX-512: x packed by lsc_gemm_pack_x_avx512 */
    size_t n_threads;   /* of the pool that runs the job */
    size_t kn_chunks;   /* T = 1, [K, N] weights: column ranges per row block */
} matmul_job;

/* T > 1: output columns [128 i, 128 i + 128). */
static void gemm_item(void *arg, size_t i) {
    const matmul_job *j = arg;
    size_t n0 = i * GEMM_ITEM_COLS, n1 = n0 + GEMM_ITEM_COLS < j->N ? n0 + GEMM_ITEM_COLS : j->N;
    if (j->xp) lsc_gemm_w_avx512(j->xp, j->w, j->b, j->y, j->T, j->K, j->N, n0, n1);
    else lsc_gemm_w_avx2(j->x, j->w, j->b, j->y, j->T, j->K, j->N, n0, n1);
}

/* T > 1 at AVX-512: panel i of x packed for lsc_gemm_w_avx512. */
static void pack_x_item(void *arg, size_t i) {
    const matmul_job *j = arg;
    lsc_gemm_pack_x_avx512(j->x, j->T, j->K, i, j->xp);
}

/* T = 1, [N, K] weights in any format: output rows [64 i, 64 i + 64). */
static void rows_item(void *arg, size_t i) {
    const matmul_job *j = arg;
    const lsc_weights *w = j->w;
    size_t n0 = i * NK_ITEM_ROWS, n1 = n0 + NK_ITEM_ROWS < j->N ? n0 + NK_ITEM_ROWS : j->N;
    switch (w->type) {
    case LSC_WEIGHTS_F32:
        if (lsc_simd_active() >= LSC_SIMD_AVX512)
            lsc_matvec_nk_avx512(j->x, w->data, j->b, j->y, j->K, n0, n1);
        else
            lsc_matvec_nk_avx2(j->x, w->data, j->b, j->y, j->K, n0, n1);
        break;
    case LSC_WEIGHTS_BF16:
        if (lsc_simd_active() >= LSC_SIMD_AVX512)
            lsc_matvec_bf16_avx512(j->xr, w->data, j->b, j->y, j->K, n0, n1);
        else
            lsc_matvec_bf16_avx2(j->xr, w->data, j->b, j->y, j->K, n0, n1);
        break;
    case LSC_WEIGHTS_Q8:
        lsc_matvec_q8_avx2(j->xq, j->xs, w->data, w->scale, j->b, j->y, j->K, n0, n1);
        break;
    }
}

/* T = 1, F32 [K, N] weights: the partial product of the input rows of
 * block i / kn_chunks over its column range (chunk i % kn_chunks). */
static void kn_item(void *arg, size_t i) {
    const matmul_job *j = arg;
    size_t blk = i / j->kn_chunks, chunk = i % j->kn_chunks;
    size_t k0 = blk * KN_ITEM_ROWS, kb = j->K - k0 < KN_ITEM_ROWS ? j->K - k0 : KN_ITEM_ROWS;
    size_t n0, n1;
    lsc_pool_split(j->N, 16, (int)chunk, (int)j->kn_chunks, &n0, &n1);
    if (n0 >= n1) return;
    if (lsc_simd_active() >= LSC_SIMD_AVX512)
        lsc_matvec_kn_avx512(j->x + k0, (const lsc_f32u *)j->w->data + k0 * j->N, NULL,
                             j->partial + blk * j->N, kb, j->N, n0, n1);
    else
        lsc_matvec_kn_avx2(j->x + k0, (const lsc_f32u *)j->w->data + k0 * j->N, NULL,
                           j->partial + blk * j->N, kb, j->N, n0, n1);
}

/* T = 1 with no memory for the partial sums: output columns split evenly
 * (each element then summed in plain k order). */
static void kn_slice(void *arg, int ith, int nth) {
    const matmul_job *j = arg;
    size_t n0, n1;
    lsc_pool_split(j->N, 8, ith, nth, &n0, &n1);
    if (n0 >= n1) return;
    if (lsc_simd_active() >= LSC_SIMD_AVX512)
        lsc_matvec_kn_avx512(j->x, j->w->data, j->b, j->y, j->K, j->N, n0, n1);
    else
        lsc_matvec_kn_avx2(j->x, j->w->data, j->b, j->y, j->K, j->N, n0, n1);
}

void lsc_matmul(struct lsc_pool *pool, const float *x, const lsc_weights *w,
                const lsc_f32u *b, float *y, size_t T, size_t K, size_t N) {
    if (lsc_simd_active() == LSC_SIMD_REF) {
        lsc_matmul_ref(x, w, b, y, T, K, N);
        return;
    }
    matmul_job j = {x, w, b, y, T, K, N, NULL, NULL, NULL, NULL, NULL, 1, 1};
    pool = pool_for(pool, T * K * N);
    j.n_threads = (size_t)lsc_pool_n_threads(pool);
    if (T > 1) {
        size_t panels = (T + LSC_GEMM_MR_AVX512 - 1) / LSC_GEMM_MR_AVX512, bytes;
        /* no memory for packed x: the AVX2 GEMM, which needs none (same bits) */
        if (lsc_simd_active() >= LSC_SIMD_AVX512 &&
            lsc_mul_size(panels * LSC_GEMM_MR_AVX512 * sizeof(float), K, &bytes) &&
            (j.xp = malloc(bytes)))
            lsc_pool_for(pool, panels, pack_x_item, &j);
        lsc_pool_for(pool, (N + GEMM_ITEM_COLS - 1) / GEMM_ITEM_COLS, gemm_item, &j);
        free(j.xp);
    } else if (w->nk || w->type != LSC_WEIGHTS_F32) {
        /* x prepared once for every thread: on the stack when small */
        float stack[4096];
        size_t need = w->type == LSC_WEIGHTS_BF16 ? K * sizeof(float)
                    : w->type == LSC_WEIGHTS_Q8   ? K * sizeof(int16_t) + (K / LSC_Q8_BLOCK + 1) * sizeof(float)
                                                  : 0;
        void *buf = need <= sizeof stack ? (void *)stack : malloc(need);
        if (!buf) { /* no memory: the reference needs none for BF16 / one row */
            lsc_matmul_ref(x, w, b, y, T, K, N);
            return;
        }
        if (w->type == LSC_WEIGHTS_BF16) {
            if (lsc_simd_active() >= LSC_SIMD_AVX512) lsc_bf16_split_x32(x, K, buf);
            else lsc_bf16_split_x(x, K, buf);
            j.xr = buf;
        } else if (w->type == LSC_WEIGHTS_Q8) {
            j.xs = buf;
            j.xq = (int16_t *)((float *)buf + K / LSC_Q8_BLOCK + 1);
            lsc_q8_quantize_x(x, K, (int16_t *)j.xq, (float *)j.xs);
        }
        lsc_pool_for(pool, (N + NK_ITEM_ROWS - 1) / NK_ITEM_ROWS, rows_item, &j);
        if (buf != stack) free(buf);
    } else {
        size_t blocks = (K + KN_ITEM_ROWS - 1) / KN_ITEM_ROWS;
        j.partial = malloc(blocks * N * sizeof(float));
        if (!j.partial) { /* no memory: the plain order */
            lsc_pool_run(pool, kn_slice, &j);
            return;
        }
        /* at least four items a thread, column ranges of at least 128 */
        size_t want = 4 * j.n_threads;
        j.kn_chunks = j.n_threads > 1 && blocks < want ? (want + blocks - 1) / blocks : 1;
        if (j.kn_chunks > N / 128) j.kn_chunks = N / 128 ? N / 128 : 1;
        lsc_pool_for(pool, blocks * j.kn_chunks, kn_item, &j);
        /* y = b + p_0 + p_1 + ... in block order (a fixed order for any
         * number of threads) */
        for (size_t n = 0; n < N; n++) {
            float acc = b ? b[n] + j.partial[n] : j.partial[n];
            for (size_t i = 1; i < blocks; i++) acc += j.partial[i * N + n];
            y[n] = acc;
        }
        free(j.partial);
    }
}

void lsc_matmul_kn(struct lsc_pool *pool, const float *x, const lsc_f32u *w,
                   const lsc_f32u *b, float *y, size_t T, size_t K, size_t N) {
    lsc_weights wt = {LSC_WEIGHTS_F32, 0, w, NULL};
    lsc_matmul(pool, x, &wt, b, y, T, K, N);
}

void lsc_matmul_nk(struct lsc_pool *pool, const float *x, const lsc_f32u *w, float *y,
                   size_t T, size_t K, size_t N) {
    lsc_weights wt = {LSC_WEIGHTS_F32, 1, w, NULL};
    lsc_matmul(pool, x, &wt, NULL, y, T, K, N);
}

typedef struct rows_job {
    const float *x;
    const lsc_f32u *g, *b;
    float *y;
    size_t T, E;
    float eps;
} rows_job;

static void layernorm_slice(void *arg, int ith, int nth) {
    const rows_job *j = arg;
    size_t t0, t1;
    lsc_pool_split(j->T, 1, ith, nth, &t0, &t1);
    if (t0 < t1) lsc_layernorm_avx2(j->x, j->g, j->b, j->y, j->E, j->eps, t0, t1);
}

void lsc_layernorm(struct lsc_pool *pool, const float *x, const lsc_f32u *g,
                   const lsc_f32u *b, float *y, size_t T, size_t E, float eps) {
    if (lsc_simd_active() == LSC_SIMD_REF) {
        lsc_layernorm_ref(x, g, b, y, T, E, eps);
        return;
    }
    rows_job j = {x, g, b, y, T, E, eps};
    lsc_pool_run(pool_for(pool, T * E * 16), layernorm_slice, &j);
}

typedef struct gelu_job {
    float *x;
    size_t n;
} gelu_job;

static void gelu_slice(void *arg, int ith, int nth) {
    const gelu_job *j = arg;
    size_t i0, i1;
    lsc_pool_split(j->n, 64, ith, nth, &i0, &i1);
    if (i0 >= i1) return;
    if (lsc_simd_active() >= LSC_SIMD_AVX512) lsc_gelu_new_avx512(j->x + i0, i1 - i0);
    else lsc_gelu_new_avx2(j->x + i0, i1 - i0);
}

void lsc_gelu_new(struct lsc_pool *pool, float *x, size_t n) {
    if (lsc_simd_active() == LSC_SIMD_REF) {
        lsc_gelu_new_ref(x, n);
        return;
    }
    gelu_job j = {x, n};
    lsc_pool_run(pool_for(pool, n * 16), gelu_slice, &j);
}

/* Attention items: ATTN_ITEM_ROWS rows of one head (rows late in a causal
 * prefill cost more; the shared counter balances them). */
#define ATTN_ITEM_ROWS 16

static void attention_item(void *arg, size_t item) {
    const lsc_attn_args *a = arg;
    size_t per_head = (a->T + ATTN_ITEM_ROWS - 1) / ATTN_ITEM_ROWS;
    size_t h = item / per_head, t0 = item % per_head * ATTN_ITEM_ROWS;
    size_t t1 = t0 + ATTN_ITEM_ROWS < a->T ? t0 + ATTN_ITEM_ROWS : a->T;
    size_t need = 4 * (a->n_past + a->T); /* scores of 4 rows */
    float stack[4 * 1024];
    float *scratch = need <= sizeof stack / sizeof *stack ? stack : malloc(need * sizeof *scratch);
    size_t i0 = h * a->T + t0, i1 = h * a->T + t1;
    if (!scratch) lsc_attention_ref_rows(a, i0, i1); /* needs no memory */
    else if (lsc_simd_active() >= LSC_SIMD_AVX512) lsc_attention_rows_avx512(a, i0, i1, scratch);
    else lsc_attention_rows_avx2(a, i0, i1, scratch, NULL);
    if (scratch != stack) free(scratch);
}

void lsc_attention(struct lsc_pool *pool, const lsc_attn_args *a) {
    if (lsc_simd_active() == LSC_SIMD_REF) {
        lsc_attention_ref(a);
        return;
    }
    size_t P = a->n_past + a->T, per_head = (a->T + ATTN_ITEM_ROWS - 1) / ATTN_ITEM_ROWS;
    lsc_pool_for(pool_for(pool, a->H * a->T * P * a->D), a->H * per_head, attention_item,
                 (void *)a);
}

void lsc_act_apply(struct lsc_pool *pool, lsc_act act, float *x, size_t n) {
    if (act == LSC_ACT_GELU_NEW) lsc_gelu_new(pool, x, n); /* the only fast one */
    else lsc_act_apply_ref(act, x, n);
}

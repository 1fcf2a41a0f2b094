/* dispatch.c - chooses a level's table for each lsc_kernels and splits each
 * kernel over its thread pool (see kernels.h): the top of the backend, the
 * only file that names every level. No state is global: the table, the pool
 * and the scratch belong to the lsc_kernels (one per context). */
#include "levels.h"
#include "internal.h"
#include "pool.h"

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define LSC_X86 1
#endif
#if defined(__aarch64__) && !defined(LSC_NO_NEON)
#define LSC_NEON 1
#endif

lsc_simd lsc_simd_best(void) {
#if LSC_X86
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return LSC_SIMD_REF;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        return LSC_SIMD_AVX512;
    return LSC_SIMD_AVX2;
#elif LSC_NEON
    return LSC_SIMD_NEON; /* Advanced SIMD is part of every aarch64 CPU */
#else
    return LSC_SIMD_REF;
#endif
}

const char *lsc_simd_name(lsc_simd level) {
    switch (level) {
    case LSC_SIMD_BEST: return "best";
    case LSC_SIMD_REF: return "ref";
    case LSC_SIMD_AVX2: return "avx2";
    case LSC_SIMD_AVX512: return "avx512";
    case LSC_SIMD_NEON: return "neon";
    }
    return "unknown";
}

/* The levels this CPU runs, lowest first. */
static int cpu_levels(lsc_simd out[3]) {
    int n = 0;
    lsc_simd best = lsc_simd_best();
    out[n++] = LSC_SIMD_REF;
    if (best == LSC_SIMD_AVX2 || best == LSC_SIMD_AVX512) out[n++] = LSC_SIMD_AVX2;
    if (best == LSC_SIMD_AVX512) out[n++] = LSC_SIMD_AVX512;
    if (best == LSC_SIMD_NEON) out[n++] = LSC_SIMD_NEON;
    return n;
}

/* Where `level` stands among the CPU's levels (-1: the CPU lacks it). */
static int rank(lsc_simd level) {
    lsc_simd l[3];
    int n = cpu_levels(l);
    for (int i = 0; i < n; i++)
        if (l[i] == level) return i;
    return -1;
}

lsc_simd lsc_simd_default(void) {
    lsc_simd l[3];
    int n = cpu_levels(l);
    const char *env = getenv("LSC_SIMD");
    for (int i = 0; env && i < n; i++)
        if (!strcmp(env, lsc_simd_name(l[i]))) return l[i];
    return l[n - 1];
}

const char *lsc_simd_level(void) { return lsc_simd_name(lsc_simd_default()); }

struct lsc_kernels {
    const lsc_level *lv; /* NULL: the plain level */
    lsc_simd simd;
    lsc_pool *pool;
    int n_threads;
    float *pack;       /* [n_threads][lv->gemm_pack]: the GEMM's packed weights */
    void *pack_raw, *xbuf_raw; /* what malloc gave for the 64-byte aligned ones */
    size_t cap_T, cap_K, cap_N, cap_P;
    float *xbuf;       /* x prepared for a product: packed panels (T > 1) or
                          BF16 / Q8 x (T = 1) */
    float *partial;    /* T = 1, F32 [K, N]: partial sums of the k blocks */
    float *attn;       /* [n_threads][4 P]: attention rows (the plain level: one) */
    size_t attn_per_thread;
};

/* n floats at a 64-byte boundary inside a block from malloc (*raw, to free;
 * plain malloc so that the tests' allocation counting sees it). */
static float *alloc64(size_t n, void **raw) {
    size_t bytes;
    if (!lsc_mul_size(n ? n : 1, sizeof(float), &bytes) || !lsc_add_size(bytes, 63, &bytes) ||
        !(*raw = malloc(bytes)))
        return NULL;
    return (float *)(((uintptr_t)*raw + 63) & ~(uintptr_t)63);
}

static const lsc_level *table(lsc_simd level) {
    switch (level) {
#if LSC_X86
    case LSC_SIMD_AVX2: return &lsc_level_avx2;
    case LSC_SIMD_AVX512: return &lsc_level_avx512;
#endif
#if LSC_NEON
    case LSC_SIMD_NEON: return &lsc_level_neon;
#endif
    default: return NULL;
    }
}

lsc_status lsc_kernels_new(lsc_simd level, lsc_pool *pool, lsc_kernels **out, lsc_error *err) {
    *out = NULL;
    lsc_simd def = lsc_simd_default();
    if (level == LSC_SIMD_BEST) level = def;
    if (rank(level) < 0)
        return lsc_fail(err, LSC_ERR_UNSUPPORTED, "this CPU cannot run the '%s' kernels (best: %s)",
                        lsc_simd_name(level), lsc_simd_name(lsc_simd_best()));
    if (rank(level) > rank(def)) level = def; /* LSC_SIMD caps it */
    lsc_kernels *k = calloc(1, sizeof *k);
    if (!k) return lsc_fail(err, LSC_ERR_NOMEM, "out of memory");
    k->simd = level;
    k->lv = table(level);
    k->pool = pool;
    k->n_threads = lsc_pool_n_threads(pool);
    if (k->lv) {
        if (!(k->pack = alloc64((size_t)k->n_threads * k->lv->gemm_pack, &k->pack_raw))) {
            free(k);
            return lsc_fail(err, LSC_ERR_NOMEM, "cannot allocate the kernels' packing buffers");
        }
    }
    *out = k;
    return LSC_OK;
}

void lsc_kernels_free(lsc_kernels *k) {
    if (!k) return;
    free(k->pack_raw);
    free(k->xbuf_raw);
    free(k->partial);
    free(k->attn);
    free(k);
}

lsc_simd lsc_kernels_level(const lsc_kernels *k) { return k->simd; }

/* Work items: GEMM output columns, T = 1 output rows of [N, K] weights, and
 * T = 1 blocks of input rows of [K, N] weights (partial sums, added in block
 * order), so that each item reads its weights front to back. KN_ITEM_ROWS
 * equals the GEMM's k block, which makes F32 results at T = 1 bit-identical
 * to the same row computed in a T > 1 product; with few blocks (K = 768:
 * three) the blocks are also cut into column ranges, so that every thread
 * has work. */
#define GEMM_ITEM_COLS 128
/* Rows of one GEMM pass over F32 [K, N] weights: at 2048 rows, passes of 512
 * ran 1.06-1.17x faster than one (docs/performance.md); prefill up to 512
 * tokens is one pass as before. */
#define GEMM_ROW_BLOCK 512
/* Products of up to this many rows split the columns evenly between the
 * threads (gemm_slice); more rows take GEMM_ITEM_COLS items from a shared
 * counter, which balances a loaded machine better. */
#define GEMM_STATIC_T_MAX 32
#define NK_ITEM_ROWS 64
#define KN_ITEM_ROWS LSC_GEMM_KC
/* Attention items: ATTN_ITEM_ROWS rows of one head (rows late in a causal
 * prefill cost more; the shared counter balances them). */
#define ATTN_ITEM_ROWS 16

static size_t ceil_div(size_t a, size_t b) { return (a + b - 1) / b; }

/* Floats of x prepared for a product of T rows with K inputs. */
static size_t xbuf_floats(const lsc_kernels *k, size_t T, size_t K) {
    size_t t1 = K + K / LSC_Q8_BLOCK + 1; /* BF16: K; Q8: K int16 + the scales */
    size_t tn = k->lv && k->lv->gemm_x_rows ? ceil_div(T, k->lv->gemm_x_rows) * k->lv->gemm_x_rows * K : 0;
    return t1 > tn ? t1 : tn;
}

lsc_status lsc_kernels_reserve(lsc_kernels *k, size_t T, size_t K, size_t N, size_t P,
                               lsc_error *err) {
    /* each buffer grows only when it must (never in a decode loop whose
     * caller reserves the longest attention up front) */
    if (T < k->cap_T) T = k->cap_T;
    if (K < k->cap_K) K = k->cap_K;
    if (N < k->cap_N) N = k->cap_N;
    size_t nx = xbuf_floats(k, T, K), np = ceil_div(K, KN_ITEM_ROWS) * N;
    if (k->lv && (T > k->cap_T || K > k->cap_K || N > k->cap_N)) {
        void *xraw = NULL;
        float *x = alloc64(nx, &xraw), *p = malloc((np ? np : 1) * sizeof *p);
        if (!x || !p) {
            free(xraw);
            free(p);
            return lsc_fail(err, LSC_ERR_NOMEM, "cannot allocate kernel scratch for %zu x %zu x %zu",
                            T, K, N);
        }
        free(k->xbuf_raw);
        free(k->partial);
        k->xbuf_raw = xraw;
        k->xbuf = x;
        k->partial = p;
    }
    k->cap_T = T;
    k->cap_K = K;
    k->cap_N = N;
    if (P > k->cap_P) { /* 4 rows a thread; the plain level: one row */
        size_t per = k->lv ? 4 * P : P, n = k->lv ? (size_t)k->n_threads * per : per;
        float *at = malloc((n ? n : 1) * sizeof *at);
        if (!at)
            return lsc_fail(err, LSC_ERR_NOMEM, "cannot allocate attention scratch for %zu positions", P);
        free(k->attn);
        k->attn = at;
        k->attn_per_thread = per;
        k->cap_P = P;
    }
    return LSC_OK;
}

/* Products smaller than this many multiply-adds run on the calling thread:
 * waking the pool costs more than it saves. */
#define PARALLEL_MIN_MACS (64u * 1024u)

static lsc_pool *pool_for(lsc_kernels *k, size_t macs) {
    return macs < PARALLEL_MIN_MACS ? NULL : k->pool;
}

/* One matrix product for the pool's threads. */
typedef struct matmul_job {
    const lsc_kernels *k;
    const float *x;
    const lsc_weights *w;
    const lsc_f32u *b;
    float *y;
    size_t T, K, N;
    const float *xr;    /* T = 1, BF16: x prepared by bf16_prep */
    const int16_t *xq;  /* T = 1, Q8: x rounded by lsc_q8_quantize_x */
    const float *xs;
    float *xp;          /* T > 1: x packed by gemm_pack_x (or NULL) */
    size_t kn_whole;    /* T = 1, [K, N] weights: row blocks read whole, then */
    size_t kn_chunks;   /* the column ranges each later block is cut into */
    int few_panels;     /* few rows of weights in panels: the level's gemm_panels */
} matmul_job;

/* The GEMM on output columns [n0, n1) with thread ith's packing scratch. */
static void gemm_cols(const matmul_job *j, size_t n0, size_t n1, int ith) {
    const lsc_level *lv = j->k->lv;
    float *pack = j->k->pack + (size_t)ith * lv->gemm_pack;
    if (j->few_panels) lv->gemm_panels(j->x, j->w, j->b, j->y, j->T, j->K, j->N, n0, n1, pack);
    else lv->gemm(j->xp ? j->xp : j->x, j->w, j->b, j->y, j->T, j->K, j->N, n0, n1, pack);
}

/* T > GEMM_STATIC_T_MAX: output columns [128 i, 128 i + 128). */
static void gemm_item(void *arg, size_t i, int ith) {
    const matmul_job *j = arg;
    size_t n0 = i * GEMM_ITEM_COLS, n1 = n0 + GEMM_ITEM_COLS < j->N ? n0 + GEMM_ITEM_COLS : j->N;
    gemm_cols(j, n0, n1, ith);
}

/* T <= GEMM_STATIC_T_MAX: thread ith's even share of the columns, so that
 * it knows its next block of W and fetches it while it computes this one
 * (lsc_gemm_w_avx2): with few rows a step is mostly waiting for W. */
static void gemm_slice(void *arg, int ith, int nth) {
    const matmul_job *j = arg;
    size_t n0, n1;
    lsc_pool_split(j->N, LSC_GEMM_NR, ith, nth, &n0, &n1);
    if (n0 < n1) gemm_cols(j, n0, n1, ith);
}

/* 1 < T <= LSC_SMALL_T_MAX, F32 [K, N]: output columns [128 i, 128 i + 128)
 * of the unpacked product. */
static void small_item(void *arg, size_t i, int ith) {
    const matmul_job *j = arg;
    size_t n0 = i * GEMM_ITEM_COLS, n1 = n0 + GEMM_ITEM_COLS < j->N ? n0 + GEMM_ITEM_COLS : j->N;
    j->k->lv->gemm_small(j->x, j->w, j->b, j->y, j->T, j->K, j->N, n0, n1);
}

/* T > 1: panel i of x packed for the GEMM. */
static void pack_x_item(void *arg, size_t i, int ith) {
    const matmul_job *j = arg;
    j->k->lv->gemm_pack_x(j->x, j->T, j->K, i, j->xp);
}

/* T = 1, [N, K] weights in any format: output rows [64 i, 64 i + 64). */
static void rows_item(void *arg, size_t i, int ith) {
    const matmul_job *j = arg;
    const lsc_weights *w = j->w;
    const lsc_level *lv = j->k->lv;
    size_t n0 = i * NK_ITEM_ROWS, n1 = n0 + NK_ITEM_ROWS < j->N ? n0 + NK_ITEM_ROWS : j->N;
    switch (w->type) {
    case LSC_WEIGHTS_F32: lv->matvec_nk(j->x, w->data, j->b, j->y, j->K, n0, n1); break;
    case LSC_WEIGHTS_BF16: lv->matvec_bf16(j->xr, w->data, j->b, j->y, j->K, n0, n1); break;
    case LSC_WEIGHTS_Q8:
        lv->matvec_q8(j->xq, j->xs, w->data, w->scale, j->b, j->y, j->K, n0, n1);
        break;
    }
}

/* T = 1, F32 [K, N] weights: the partial product of the input rows of one
 * block over its column range: items [0, kn_whole) are blocks read whole,
 * the later ones kn_chunks column ranges of each remaining block. */
static void kn_item(void *arg, size_t i, int ith) {
    const matmul_job *j = arg;
    size_t blk = i, chunk = 0;
    if (i >= j->kn_whole) {
        blk = j->kn_whole + (i - j->kn_whole) / j->kn_chunks;
        chunk = (i - j->kn_whole) % j->kn_chunks;
    }
    size_t k0 = blk * KN_ITEM_ROWS, kb = j->K - k0 < KN_ITEM_ROWS ? j->K - k0 : KN_ITEM_ROWS;
    size_t n0, n1;
    lsc_pool_split(j->N, 16, (int)chunk, blk < j->kn_whole ? 1 : (int)j->kn_chunks, &n0, &n1);
    if (n0 >= n1) return;
    j->k->lv->matvec_kn(j->x + k0, (const lsc_f32u *)j->w->data + k0 * j->N, NULL,
                        j->k->partial + blk * j->N, kb, j->N, n0, n1);
}

void lsc_matmul(lsc_kernels *k, const float *x, const lsc_weights *w, const lsc_f32u *b,
                float *y, size_t T, size_t K, size_t N) {
    if (!k->lv) {
        lsc_matmul_ref(x, w, b, y, T, K, N);
        return;
    }
    /* T <= cap_T and K <= cap_K: the model reserved them (lsc_kernels_reserve) */
    matmul_job j = {.k = k, .x = x, .w = w, .b = b, .y = y, .T = T, .K = K, .N = N, .kn_chunks = 1};
    lsc_pool *pool = pool_for(k, T * K * N);
    size_t n_threads = (size_t)lsc_pool_n_threads(pool);
    int kn = w->type == LSC_WEIGHTS_F32 && w->layout == LSC_LAYOUT_KN;
    int panels = w->layout == LSC_LAYOUT_PANELS;
    if (T > 1 && T <= LSC_SMALL_T_MAX && k->lv->gemm_small && kn) {
        lsc_pool_for(pool, ceil_div(N, GEMM_ITEM_COLS), small_item, &j);
    } else if (T > 1 || panels) {
        /* F32 [K, N] (its packing is a plain copy) and panels (none): rows
         * in blocks of GEMM_ROW_BLOCK, so that the x each column block
         * re-reads stays in cache; the other formats' packing costs too much
         * to repeat. Weights in panels take this path for every T: the GEMM
         * with one row streams them as fast as a T = 1 kernel would. */
        size_t rb = kn || panels ? GEMM_ROW_BLOCK : T;
        for (size_t r0 = 0; r0 < T; r0 += rb) {
            j.x = x + r0 * K;
            j.y = y + r0 * N;
            j.T = T - r0 < rb ? T - r0 : rb;
            j.few_panels = panels && j.T <= GEMM_STATIC_T_MAX;
            if (k->lv->gemm_x_rows && !j.few_panels) {
                j.xp = k->xbuf;
                lsc_pool_for(pool, ceil_div(j.T, k->lv->gemm_x_rows), pack_x_item, &j);
            }
            if (j.T <= GEMM_STATIC_T_MAX) lsc_pool_run(pool, gemm_slice, &j);
            else lsc_pool_for(pool, ceil_div(N, GEMM_ITEM_COLS), gemm_item, &j);
        }
    } else if (w->layout == LSC_LAYOUT_NK) {
        /* x prepared once for every thread */
        if (w->type == LSC_WEIGHTS_BF16) {
            k->lv->bf16_prep(x, K, k->xbuf);
            j.xr = k->xbuf;
        } else if (w->type == LSC_WEIGHTS_Q8) {
            j.xs = k->xbuf;
            j.xq = (int16_t *)(k->xbuf + K / LSC_Q8_BLOCK + 1);
            lsc_q8_quantize_x(x, K, (int16_t *)j.xq, k->xbuf);
        }
        lsc_pool_for(pool, ceil_div(N, NK_ITEM_ROWS), rows_item, &j);
    } else {
        size_t blocks = ceil_div(K, KN_ITEM_ROWS);
        /* N <= cap_N, reserved likewise */
        /* Whole blocks are read front to back; a column range reads each
         * row in pieces, which streams slower. So the blocks that share out
         * evenly are read whole, and only the rest (K = 768 at 2 threads:
         * one of three) is cut into a column range a thread, of at least
         * 128 columns; they come last from the counter, so that they even
         * out the threads' ends (bench/README.md, "Where decode time
         * goes"). */
        size_t rest = blocks % n_threads;
        j.kn_chunks = rest && N / 128 > 1 ? (n_threads < N / 128 ? n_threads : N / 128) : 1;
        j.kn_whole = j.kn_chunks > 1 ? blocks - rest : blocks;
        lsc_pool_for(pool, j.kn_whole + (blocks - j.kn_whole) * j.kn_chunks, kn_item, &j);
        /* y = b + p_0 + p_1 + ... in block order (a fixed order for any
         * number of threads) */
        const float *part = k->partial;
        for (size_t n = 0; n < N; n++) {
            float acc = b ? b[n] + part[n] : part[n];
            for (size_t i = 1; i < blocks; i++) acc += part[i * N + n];
            y[n] = acc;
        }
    }
}

void lsc_matmul_kn(lsc_kernels *k, const float *x, const lsc_f32u *w, const lsc_f32u *b,
                   float *y, size_t T, size_t K, size_t N) {
    lsc_weights wt = {.type = LSC_WEIGHTS_F32, .layout = LSC_LAYOUT_KN, .data = w};
    lsc_matmul(k, x, &wt, b, y, T, K, N);
}

void lsc_matmul_nk(lsc_kernels *k, const float *x, const lsc_f32u *w, float *y, size_t T,
                   size_t K, size_t N) {
    lsc_weights wt = {.type = LSC_WEIGHTS_F32, .layout = LSC_LAYOUT_NK, .data = w};
    lsc_matmul(k, x, &wt, NULL, y, T, K, N);
}

typedef struct rows_job {
    const lsc_level *lv;
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
    if (t0 < t1) j->lv->layernorm(j->x, j->g, j->b, j->y, j->E, j->eps, t0, t1);
}

void lsc_layernorm(lsc_kernels *k, const float *x, const lsc_f32u *g, const lsc_f32u *b,
                   float *y, size_t T, size_t E, float eps) {
    if (!k->lv) {
        lsc_layernorm_ref(x, g, b, y, T, E, eps);
        return;
    }
    rows_job j = {k->lv, x, g, b, y, T, E, eps};
    lsc_pool_run(pool_for(k, T * E * 16), layernorm_slice, &j);
}

typedef struct gelu_job {
    const lsc_level *lv;
    float *x;
    size_t n;
} gelu_job;

static void gelu_slice(void *arg, int ith, int nth) {
    const gelu_job *j = arg;
    size_t i0, i1;
    lsc_pool_split(j->n, 64, ith, nth, &i0, &i1);
    if (i0 < i1) j->lv->gelu_new(j->x + i0, i1 - i0);
}

void lsc_gelu_new(lsc_kernels *k, float *x, size_t n) {
    if (!k->lv) {
        lsc_gelu_new_ref(x, n);
        return;
    }
    gelu_job j = {k->lv, x, n};
    lsc_pool_run(pool_for(k, n * 16), gelu_slice, &j);
}

void lsc_act_apply(lsc_kernels *k, lsc_act act, float *x, size_t n) {
    if (act == LSC_ACT_GELU_NEW) lsc_gelu_new(k, x, n); /* the only fast one */
    else lsc_act_apply_ref(act, x, n);
}

typedef struct attn_job {
    const lsc_kernels *k;
    const lsc_attn_args *a; /* [n] sequences */
    size_t n;
} attn_job;

/* Items of one sequence: ATTN_ITEM_ROWS rows of one head each. */
static size_t attn_items(const lsc_attn_args *a) { return a->H * ceil_div(a->T, ATTN_ITEM_ROWS); }

/* Item `item` of the sequences' items in turn. */
static void attention_item(void *arg, size_t item, int ith) {
    const attn_job *j = arg;
    const lsc_attn_args *a = j->a;
    for (size_t n = attn_items(a); item >= n; n = attn_items(++a)) item -= n;
    size_t per_head = ceil_div(a->T, ATTN_ITEM_ROWS);
    size_t h = item / per_head, t0 = item % per_head * ATTN_ITEM_ROWS;
    size_t t1 = t0 + ATTN_ITEM_ROWS < a->T ? t0 + ATTN_ITEM_ROWS : a->T;
    j->k->lv->attention_rows(a, h * a->T + t0, h * a->T + t1,
                             j->k->attn + (size_t)ith * j->k->attn_per_thread);
}

void lsc_attention(lsc_kernels *k, const lsc_attn_args *a) { lsc_attention_many(k, a, 1); }

void lsc_attention_many(lsc_kernels *k, const lsc_attn_args *a, size_t n) {
    /* P <= cap_P, reserved likewise */
    if (!k->lv) {
        for (size_t i = 0; i < n; i++) lsc_attention_ref(&a[i], k->attn);
        return;
    }
    size_t items = 0, macs = 0;
    for (size_t i = 0; i < n; i++) {
        items += attn_items(&a[i]);
        macs += a[i].H * a[i].T * (a[i].n_past + a[i].T) * a[i].D;
    }
    attn_job j = {k, a, n};
    if (items) lsc_pool_for(pool_for(k, macs), items, attention_item, &j);
}

void lsc_attn_scores(lsc_kernels *k, const lsc_attn_args *a, float *S) {
    size_t P = a->n_past + a->T;
    for (size_t i = 0; i < a->H * a->T; i++) {
        if (k->lv) k->lv->attn_scores(a, i, S + i * P);
        else lsc_attn_scores_ref(a, i, S + i * P);
    }
}

void lsc_attn_softmax(lsc_kernels *k, const lsc_attn_args *a, float *S) {
    size_t P = a->n_past + a->T;
    for (size_t i = 0; i < a->H * a->T; i++) {
        if (k->lv) k->lv->attn_softmax(S + i * P, P);
        else lsc_attn_softmax_ref(S + i * P, P);
    }
}

void lsc_attn_values(lsc_kernels *k, const lsc_attn_args *a, const float *S) {
    size_t P = a->n_past + a->T;
    for (size_t i = 0; i < a->H * a->T; i++) {
        if (k->lv) k->lv->attn_values(a, i, S + i * P);
        else lsc_attn_values_ref(a, i, S + i * P);
    }
}

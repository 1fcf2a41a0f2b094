/* kernels_bench.c - measures the kernels against the machine's bounds:
 *   stream  : read bandwidth of a 512 MiB array (sum), 1 and N threads
 *   matvec  : T = 1 products over GPT-2 124M's block weights (340 MB) and the
 *             tied unembedding (154 MB): GB/s of weights read
 *   gemm    : T x K @ K x N at T = 128, 512, 2048: GFLOP/s, ours (weights
 *             [K, N] as mapped, packed per block, and in panels as read
 *             into memory, --no-mmap) and
 *             OpenBLAS's cblas_sgemm (one-threaded, called per column slice
 *             from our pool, and its own threads), when built with -DWITH_OPENBLAS
 *   rows    : a batched decode step's 49 products (GPT-2 124M's 48 block
 *             matrices and the tied unembedding, 495 MB) at T = 1..32 rows,
 *             weights in panels as --no-mmap holds them: ms per step; the
 *             read of the same bytes (the memory bound) and the products on
 *             one resident 768 x 768 matrix (the compute rate) beside it, to
 *             tell whether the two overlap (docs/performance.md)
 *   pool    : round trip of an empty job, our pool and OpenMP (with -fopenmp)
 *   lse     : logsumexp of a row of 50,257 logits: the scalar loop on glibc's
 *             exp (lsc_logsumexp before softmax_row.c) against lsc_logsumexp and
 *             softmax_row.c's builds, interleaved (one thread)
 * Usage: kernels_bench [threads] [which...]. Prints medians of repeats. */
#include "softmax_row.h"
#include "kernels/levels.h"
#include "pool.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#ifdef WITH_OPENBLAS
#include <cblas.h>
void openblas_set_num_threads(int);
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static float *big(size_t n) {
    float *p = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
    for (size_t i = 0; i < n; i++) p[i] = (float)((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
    return p;
}

/* ---- stream ---- */
typedef struct sum_job {
    const float *a;
    size_t n;
    float out[64];
} sum_job;

#include <immintrin.h>
__attribute__((target("avx2"))) static void sum_slice(void *arg, int ith, int nth) {
    sum_job *j = arg;
    size_t i0, i1;
    lsc_pool_split(j->n, 64, ith, nth, &i0, &i1);
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    for (size_t i = i0; i + 32 <= i1; i += 32) {
        s0 = _mm256_add_ps(s0, _mm256_load_ps(j->a + i));
        s1 = _mm256_add_ps(s1, _mm256_load_ps(j->a + i + 8));
        s2 = _mm256_add_ps(s2, _mm256_load_ps(j->a + i + 16));
        s3 = _mm256_add_ps(s3, _mm256_load_ps(j->a + i + 24));
    }
    float t[8];
    _mm256_storeu_ps(t, _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    j->out[ith] = t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
}

static void bench_stream(lsc_pool *pool) {
    size_t n = (size_t)512 << 20 >> 2;
    float *a = big(n);
    sum_job j = {a, n, {0}};
    double t[9];
    for (int r = 0; r < 9; r++) {
        double t0 = now();
        lsc_pool_run(pool, sum_slice, &j);
        t[r] = now() - t0;
    }
    printf("stream  threads=%d  read %.1f GB/s (median of 9, 512 MiB)\n", lsc_pool_n_threads(pool),
           n * 4.0 / median(t, 9) / 1e9);
    free(a);
}

/* The best level (capped by LSC_SIMD) on the pool, with scratch for the
 * shapes below. */
static lsc_kernels *kern;

/* ---- matvec over a GPT-2 124M's worth of weights ---- */
static void bench_matvec(lsc_pool *pool) {
    const size_t E = 768, L = 12, V = 50257;
    size_t per_layer = E * 3 * E + E * E + E * 4 * E + 4 * E * E;
    float *w = big(per_layer * L), *wte = big(V * E);
    float *x = big(4 * E), *y = big(V);
    double t[7], tu[7];
    for (int r = 0; r < 7; r++) {
        double t0 = now();
        for (size_t l = 0; l < L; l++) {
            float *wl = w + l * per_layer;
            lsc_matmul_kn(kern, x, wl, NULL, y, 1, E, 3 * E);
            lsc_matmul_kn(kern, x, wl + 3 * E * E, NULL, y, 1, E, E);
            lsc_matmul_kn(kern, x, wl + 4 * E * E, NULL, y, 1, E, 4 * E);
            lsc_matmul_kn(kern, x, wl + 8 * E * E, NULL, y, 1, 4 * E, E);
        }
        double t1 = now();
        lsc_matmul_nk(kern, x, wte, y, 1, E, V);
        tu[r] = now() - t1;
        t[r] = t1 - t0;
    }
    double mb = median(t, 7), mu = median(tu, 7);
    printf("matvec  threads=%d  blocks %.1f GB/s (%.2f ms)  unembed %.1f GB/s (%.2f ms)  -> %.1f tok/s matmul-only\n",
           lsc_pool_n_threads(pool), per_layer * L * 4.0 / mb / 1e9, mb * 1e3,
           V * E * 4.0 / mu / 1e9, mu * 1e3, 1.0 / (mb + mu));
    /* the same products with weights converted to BF16 and Q8 */
    const size_t Ks[4] = {E, E, E, 4 * E}, Ns[4] = {3 * E, E, 4 * E, E};
    const size_t offs[4] = {0, 3 * E * E, 4 * E * E, 8 * E * E};
    for (int type = LSC_WEIGHTS_BF16; type <= LSC_WEIGHTS_Q8; type++) {
        /* one block from a 2 MiB boundary in transparent huge pages, as
         * the model holds its BF16 / Q8 weights (model.c) */
        lsc_weights mats[12][4];
        size_t db[4], sb[4], bytes = 0, hp = (size_t)2 << 20, at = 0;
        for (int m = 0; m < 4; m++) {
            lsc_weights_size(type, Ks[m], Ns[m], &db[m], &sb[m]);
            bytes += L * (db[m] + sb[m]);
        }
        char *block = aligned_alloc(hp, (bytes + 64 * 2 * L * 4 + hp - 1) / hp * hp);
        if (!block) {
            fprintf(stderr, "kernels_bench: out of memory\n");
            exit(1);
        }
#ifdef MADV_HUGEPAGE
        madvise(block, (bytes + 64 * 2 * L * 4 + hp - 1) / hp * hp, MADV_HUGEPAGE);
#endif
        for (size_t l = 0; l < L; l++)
            for (int m = 0; m < 4; m++) {
                char *d = block + at, *sc = d + (db[m] + 63) / 64 * 64;
                at += (db[m] + 63) / 64 * 64 + (sb[m] + 63) / 64 * 64;
                lsc_weights_convert(w + l * per_layer + offs[m], 0, Ks[m], Ns[m], type, d,
                                    (float *)sc, &mats[l][m]);
            }
        for (int r = 0; r < 7; r++) {
            double t0 = now();
            for (size_t l = 0; l < L; l++)
                for (int m = 0; m < 4; m++) lsc_matmul(kern, x, &mats[l][m], NULL, y, 1, Ks[m], Ns[m]);
            t[r] = now() - t0;
        }
        mb = median(t, 7);
        printf("matvec  threads=%d  blocks %s %.1f GB/s (%.2f ms, %.0f MB)\n", lsc_pool_n_threads(pool),
               type == LSC_WEIGHTS_BF16 ? "bf16" : "q8", bytes / mb / 1e9, mb * 1e3, bytes / 1e6);
        free(block);
    }
    free(w);
    free(wte);
    free(x);
    free(y);
}

/* ---- GEMM ---- */
#ifdef WITH_OPENBLAS
typedef struct blas_job {
    const float *x, *w;
    float *y;
    int T, K, N;
} blas_job;

static void blas_slice(void *arg, int ith, int nth) {
    blas_job *j = arg;
    size_t n0, n1;
    lsc_pool_split(j->N, 16, ith, nth, &n0, &n1);
    if (n0 < n1)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, j->T, (int)(n1 - n0), j->K, 1.0f,
                    j->x, j->K, j->w + n0, j->N, 0.0f, j->y + n0, j->N);
}
#endif

static void bench_gemm(lsc_pool *pool) {
    const int shapes[4][2] = {{768, 2304}, {768, 768}, {768, 3072}, {3072, 768}};
    const int Ts[] = {128, 512, 2048};
    float *w = big((size_t)3072 * 3072), *x = big(2048 * (size_t)3072), *y = big(2048 * (size_t)3072);
    size_t pf;
    lsc_weights_panels_size(3072, 3072, &pf);
    float *wp = big(pf);
    for (int si = 0; si < 4; si++)
    for (int ti = 0; ti < 3; ti++) {
        int T = Ts[ti], K = shapes[si][0], N = shapes[si][1];
        double flop = 2.0 * T * K * N, t[7];
        for (int r = 0; r < 7; r++) {
            double t0 = now();
            lsc_matmul_kn(kern, x, w, NULL, y, T, K, N);
            t[r] = now() - t0;
        }
        printf("gemm    threads=%d  T=%-4d %dx%d  ours %.1f GFLOP/s", lsc_pool_n_threads(pool), T,
               K, N, flop / median(t, 7) / 1e9);
        /* the same weights in panels (as read into memory, --no-mmap): no packing */
        lsc_weights wpan;
        lsc_weights_panels(w, 0, K, N, wp, &wpan);
        for (int r = 0; r < 7; r++) {
            double t0 = now();
            lsc_matmul(kern, x, &wpan, NULL, y, T, K, N);
            t[r] = now() - t0;
        }
        printf("  in panels %.1f", flop / median(t, 7) / 1e9);
#ifdef WITH_OPENBLAS
        openblas_set_num_threads(1);
        blas_job bj = {x, w, y, T, K, N};
        for (int r = 0; r < 7; r++) {
            double t0 = now();
            lsc_pool_run(pool, blas_slice, &bj);
            t[r] = now() - t0;
        }
        printf("  openblas(1 thr/slice) %.1f", flop / median(t, 7) / 1e9);
        openblas_set_num_threads(lsc_pool_n_threads(pool));
        for (int r = 0; r < 7; r++) {
            double t0 = now();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, N, K, 1.0f, x, K, w, N, 0.0f,
                        y, N);
            t[r] = now() - t0;
        }
        printf("  openblas(own threads) %.1f", flop / median(t, 7) / 1e9);
#endif
        printf("\n");
    }
    free(w);
    free(wp);
    free(x);
    free(y);
}

/* ---- a batched decode step's products, weights in panels ---- */
static void bench_rows(lsc_pool *pool) {
    const size_t E = 768, L = 12, V = 50257, n_mat = 4 * L + 1;
    const size_t Ks[4] = {E, E, E, 4 * E}, Ns[4] = {3 * E, E, 4 * E, E};
    size_t Kof[49], Nof[49], off[49], total = 0;
    for (size_t m = 0; m < n_mat; m++) {
        Kof[m] = m < 4 * L ? Ks[m % 4] : E;
        Nof[m] = m < 4 * L ? Ns[m % 4] : V;
        size_t floats;
        lsc_weights_panels_size(Kof[m], Nof[m], &floats);
        off[m] = total;
        total += (floats + 15) / 16 * 16;
    }
    /* one block in transparent huge pages, as model.c holds the panels */
    size_t hp = (size_t)2 << 20, bytes = (total * sizeof(float) + hp - 1) / hp * hp;
    float *block = aligned_alloc(hp, bytes), *src = big(V * E);
    if (!block || !src) {
        fprintf(stderr, "kernels_bench: out of memory\n");
        exit(1);
    }
#ifdef MADV_HUGEPAGE
    madvise(block, bytes, MADV_HUGEPAGE);
#endif
    lsc_weights mats[49];
    for (size_t m = 0; m < n_mat; m++) /* the unembedding from [N, K], as GPT-2 stores it */
        lsc_weights_panels(src, m == 4 * L, Kof[m], Nof[m], block + off[m], &mats[m]);
    float *x = big(32 * 4 * E), *y = big(32 * V);
    sum_job rd = {block, total, {0}};
    double t[7], tr[7], tc[7];
    for (int r = 0; r < 7; r++) {
        double t0 = now();
        lsc_pool_run(pool, sum_slice, &rd);
        tr[r] = now() - t0;
    }
    double read = median(tr, 7);
    printf("rows    threads=%d  read of the %.0f MB of panels %.2f ms (%.1f GB/s)\n",
           lsc_pool_n_threads(pool), total * 4e-6, read * 1e3, total * 4.0 / read / 1e9);
    const size_t Ts[] = {1, 4, 8, 16, 32};
    for (size_t ti = 0; ti < sizeof Ts / sizeof *Ts; ti++) {
        size_t T = Ts[ti];
        double flop = 0;
        for (size_t m = 0; m < n_mat; m++) flop += 2.0 * T * Kof[m] * Nof[m];
        for (int r = 0; r < 7; r++) {
            double t0 = now();
            for (size_t m = 0; m < n_mat; m++)
                lsc_matmul(kern, x, &mats[m], NULL, y, T, Kof[m], Nof[m]);
            t[r] = now() - t0;
            t0 = now(); /* the same number of products on one matrix held in cache */
            for (size_t m = 0; m < n_mat; m++) lsc_matmul(kern, x, &mats[1], NULL, y, T, E, E);
            tc[r] = now() - t0;
        }
        double step = median(t, 7), rate = n_mat * 2.0 * T * E * E / median(tc, 7);
        double compute = flop / rate; /* the step's flops at the resident rate */
        /* the best of 7 too: on a shared machine the medians carry its load */
        double best = t[0], best_rate = n_mat * 2.0 * T * E * E / tc[0]; /* sorted by median() */
        printf("rows    threads=%d  T=%-2zu step %6.2f ms (%5.1f GFLOP/s)  resident %5.1f GFLOP/s"
               "  -> read %.2f + compute %.2f = %.2f ms; step / max %.2f, step / sum %.2f"
               "  (best: step %.2f ms, resident %.1f GFLOP/s)\n",
               lsc_pool_n_threads(pool), T, step * 1e3, flop / step / 1e9, rate / 1e9, read * 1e3,
               compute * 1e3, (read + compute) * 1e3, step / (read > compute ? read : compute),
               step / (read + compute), best * 1e3, best_rate / 1e9);
    }
    free(block);
    free(src);
    free(x);
    free(y);
}

/* ---- dispatch latency ---- */
static void nop_job(void *arg, int ith, int nth) { (void)arg, (void)ith, (void)nth; }

static void bench_pool(lsc_pool *pool) {
    int n = 20000;
    double t0 = now();
    for (int i = 0; i < n; i++) lsc_pool_run(pool, nop_job, NULL);
    double ours = (now() - t0) / n;
    printf("pool    threads=%d  empty job round trip: ours %.2f us", lsc_pool_n_threads(pool),
           ours * 1e6);
#ifdef _OPENMP
    int nt = lsc_pool_n_threads(pool);
    volatile int sink = 0;
    t0 = now();
    for (int i = 0; i < n; i++) {
#pragma omp parallel num_threads(nt)
        { sink += omp_get_thread_num() == 0; }
    }
    printf("  openmp %.2f us", (now() - t0) / n * 1e6);
#endif
    printf("\n");
}

/* ---- logsumexp ---- */
/* lsc_logsumexp before softmax_row.c: one running sum of glibc's exp. */
static double old_logsumexp(const float *x, size_t n) {
    double m = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        if (isnan(x[i])) return NAN;
        if (x[i] > m) m = x[i];
    }
    if (!isfinite(m)) return m;
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) sum += exp((double)x[i] - m);
    return m + log(sum);
}

static void bench_lse(void) {
    enum { V = 50257, ROUNDS = 15, REPS = 20 };
    float *x = big(V);
    for (size_t i = 0; i < V; i++) x[i] = x[i] * 20.0f - 100.0f; /* logit-like spread */
    lsc_simd best = lsc_simd_best();
    /* 0: old, 1: lsc_logsumexp (this process's level), 2..4: the max and the
     * sum of softmax_row.c's plain / AVX2 / AVX-512 build */
    const char *name[5] = {"old: glibc exp", "lsc_logsumexp", "plain build", "avx2 build",
                           "avx512 build"};
    int on[5] = {1, 1, 1, best == LSC_SIMD_AVX2 || best == LSC_SIMD_AVX512,
                 best == LSC_SIMD_AVX512};
    lsc_simd lv[5] = {0, 0, LSC_SIMD_REF, LSC_SIMD_AVX2, LSC_SIMD_AVX512};
    double t[5][ROUNDS], val[5] = {0};
    volatile double sink = 0;
    for (int r = 0; r < ROUNDS; r++)
        for (int k = 0; k < 5; k++) {
            if (!on[k]) continue;
            double t0 = now();
            for (int rep = 0; rep < REPS; rep++) {
                if (k == 0) val[k] = old_logsumexp(x, V);
                else if (k == 1) val[k] = lsc_logsumexp(x, V);
                else {
                    double m = lsc_row_max(x, V, lv[k]);
                    val[k] = m + log(lsc_row_exp_sum(x, V, m, lv[k]));
                }
                sink += val[k];
            }
            t[k][r] = (now() - t0) / REPS;
        }
    double old = median(t[0], ROUNDS);
    printf("lse     row of %d, median of %d rounds x %d (interleaved):\n", V, ROUNDS, REPS);
    for (int k = 0; k < 5; k++) {
        if (!on[k]) continue;
        double med = median(t[k], ROUNDS);
        printf("  %-22s %8.1f us  %5.1fx  lse %.17g (diff %.2g)\n", name[k], med * 1e6, old / med,
               val[k], val[k] - val[0]);
    }
    free(x);
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    lsc_pool *pool = NULL;
    if (lsc_pool_new(threads, &pool, NULL)) return 1;
    if (lsc_kernels_new(LSC_SIMD_BEST, pool, &kern, NULL) ||
        lsc_kernels_reserve(kern, 2048, 3072, 3072, 0, NULL))
        return 1;
    for (int i = 2; i < argc || argc <= 2; i++) {
        const char *w = argc > 2 ? argv[i] : "all";
        int all = !strcmp(w, "all");
        if (all || !strcmp(w, "pool")) bench_pool(pool);
        if (all || !strcmp(w, "stream")) bench_stream(pool);
        if (all || !strcmp(w, "matvec")) bench_matvec(pool);
        if (all || !strcmp(w, "gemm")) bench_gemm(pool);
        if (all || !strcmp(w, "rows")) bench_rows(pool);
        if (all || !strcmp(w, "lse")) bench_lse();
        if (argc <= 2) break;
    }
    lsc_kernels_free(kern);
    lsc_pool_free(pool);
    return 0;
}

/* batch_bench.c - the batched engine through the public API; prints one JSON
 * object (bench/batch_run collects them into bench/RESULTS.md):
 *
 *   batch_bench MODEL_DIR --seqs N [--threads T] [--prompt P] [--new M] [--repeat R] [--no-mmap]
 *       greedy decode of N sequences at once: each a different random prompt
 *       of P tokens (default 16) run in one step, then M (default 64) steps
 *       of one token per sequence (lsc_batch_forward + argmax); the aggregate
 *       decode rate N M / time, and the peak RSS (KV caches sized for P + M)
 *   batch_bench --fma [--threads T]
 *       the FMA peak of T threads: independent FMA chains as wide as the
 *       CPU has (8 floats with AVX2, 16 with AVX-512), GFLOP/s
 *       (wall, and per CPU-second)
 *
 * Run each N in its own process, so that the peak RSS is that N's. */
#include "logitscope.h"

#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* CPU seconds this process has used (all its threads): on a shared machine
 * the work per CPU-second stays near its quiet-machine value while the wall
 * time stretches with the load. */
static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- FMA peak ---- */

#define FMA_CHAINS 12 /* > latency x ports (4 x 2 on Zen 3, 4 x 2 on recent Intel) */
#define FMA_ITERS 200000000L

typedef struct fma_job {
    long iters;
    float out;
} fma_job;

/* FMA_CHAINS independent chains of W-wide FMAs (W = 8 with AVX2, 16 with
 * AVX-512: the widest the CPU has, as the kernels use): 2 W flops each per
 * iteration, the accumulators named one by one so that they stay in
 * registers. */
#define FMA_LOOP(name, isa, vec, set1, fmadd, add, first)                                         \
    __attribute__((target(isa))) static void *name(void *arg) {                                  \
        fma_job *j = arg;                                                                         \
        vec a = set1(1.0f), b = set1(0.999999f);                                                  \
        vec c0 = set1(1), c1 = set1(2), c2 = set1(3), c3 = set1(4), c4 = set1(5), c5 = set1(6),  \
            c6 = set1(7), c7 = set1(8), c8 = set1(9), c9 = set1(10), c10 = set1(11),              \
            c11 = set1(12);                                                                       \
        for (long i = 0; i < j->iters; i++) {                                                     \
            c0 = fmadd(c0, b, a), c1 = fmadd(c1, b, a), c2 = fmadd(c2, b, a);                    \
            c3 = fmadd(c3, b, a), c4 = fmadd(c4, b, a), c5 = fmadd(c5, b, a);                    \
            c6 = fmadd(c6, b, a), c7 = fmadd(c7, b, a), c8 = fmadd(c8, b, a);                    \
            c9 = fmadd(c9, b, a), c10 = fmadd(c10, b, a), c11 = fmadd(c11, b, a);                \
            __asm__("" : "+v"(c0), "+v"(c1), "+v"(c2), "+v"(c3), "+v"(c4), "+v"(c5));           \
        }                                                                                         \
        c0 = add(add(add(c0, c1), add(c2, c3)), add(add(c4, c5), add(c6, c7)));                  \
        j->out = first(add(c0, add(add(c8, c9), add(c10, c11))));                                \
        return NULL;                                                                              \
    }
FMA_LOOP(fma_loop8, "avx2,fma", __m256, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_add_ps,
         _mm256_cvtss_f32)
FMA_LOOP(fma_loop16, "avx512f", __m512, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps,
         _mm512_cvtss_f32)

static int run_fma(int threads) {
    pthread_t th[64];
    fma_job jobs[64];
    double best = 0, best_cpu = 0;
    __builtin_cpu_init();
    int width = __builtin_cpu_supports("avx512f") ? 16 : 8;
    void *(*loop)(void *) = width == 16 ? fma_loop16 : fma_loop8;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = now(), c0 = cpu_now();
        for (int i = 0; i < threads; i++) {
            jobs[i].iters = FMA_ITERS / 10;
            pthread_create(&th[i], NULL, loop, &jobs[i]);
        }
        for (int i = 0; i < threads; i++) pthread_join(th[i], NULL);
        double t = now() - t0;
        double flop = threads * (double)(FMA_ITERS / 10) * FMA_CHAINS * 2 * width;
        double gflops = flop / t / 1e9, per_cpu = flop / (cpu_now() - c0) / 1e9;
        if (gflops > best) best = gflops;
        if (per_cpu > best_cpu) best_cpu = per_cpu;
    }
    printf("{\"fma_gflops\": %.2f, \"fma_gflops_per_cpu_s\": %.2f, \"threads\": %d, "
           "\"fma_width\": %d}\n",
           best, best_cpu, threads, width);
    return 0;
}

/* ---- batched greedy decode ---- */

static int use_mmap = 1; /* --no-mmap: the weights read into memory (lsc_model_params) */

static int run_decode(const char *dir, int n_seqs, int threads, int prompt, int n_new,
                      int repeat) {
    lsc_error err;
    lsc_model *m = NULL;
    lsc_model_params mp = lsc_model_default_params();
    mp.use_mmap = use_mmap;
    double t_load = now();
    if (lsc_model_load(dir, mp, &m, &err)) {
        fprintf(stderr, "batch_bench: %s\n", err.message);
        return 1;
    }
    double load_s = now() - t_load;
    size_t V = (size_t)lsc_model_n_vocab(m);
    lsc_ctx **ctxs = calloc((size_t)n_seqs, sizeof *ctxs);
    int32_t *ids = malloc((size_t)n_seqs * (size_t)(prompt + n_new) * sizeof *ids);
    const int32_t **step_ids = calloc((size_t)n_seqs, sizeof *step_ids);
    size_t *n_ids = calloc((size_t)n_seqs, sizeof *n_ids);
    double *rates = calloc((size_t)repeat, sizeof *rates);
    double *cpu_rates = calloc((size_t)repeat, sizeof *cpu_rates);
    uint32_t seed = 12345;
    for (int i = 0; i < n_seqs; i++) {
        lsc_ctx_params cp = lsc_ctx_default_params();
        cp.n_ctx = prompt + n_new;
        cp.n_threads = i ? 1 : threads; /* ctxs[0]'s pool runs every step */
        if (lsc_ctx_new(m, cp, &ctxs[i], &err)) {
            fprintf(stderr, "batch_bench: %s\n", err.message);
            return 1;
        }
    }
    double prefill_s = 0;
    for (int r = 0; r < repeat; r++) {
        for (int i = 0; i < n_seqs; i++) {
            int32_t *s = ids + (size_t)i * (size_t)(prompt + n_new);
            for (int t = 0; t < prompt; t++) {
                seed = seed * 1103515245u + 12345u;
                s[t] = (int32_t)((seed >> 8) % (uint32_t)V);
            }
            lsc_ctx_reset(ctxs[i]);
            step_ids[i] = s;
            n_ids[i] = (size_t)prompt;
        }
        double t0 = now();
        if (lsc_batch_forward(ctxs, step_ids, n_ids, (size_t)n_seqs, NULL, NULL, &err)) {
            fprintf(stderr, "batch_bench: %s\n", err.message);
            return 1;
        }
        double t1 = now(), c1 = cpu_now();
        prefill_s += t1 - t0;
        for (int k = 0; k < n_new; k++) {
            for (int i = 0; i < n_seqs; i++) {
                int32_t *s = ids + (size_t)i * (size_t)(prompt + n_new);
                s[prompt + k] = (int32_t)lsc_argmax(lsc_ctx_logits(ctxs[i], NULL), V);
                step_ids[i] = &s[prompt + k];
                n_ids[i] = 1;
            }
            if (k + 1 == n_new) break; /* the last token needs no forward */
            if (lsc_batch_forward(ctxs, step_ids, n_ids, (size_t)n_seqs, NULL, NULL, &err)) {
                fprintf(stderr, "batch_bench: %s\n", err.message);
                return 1;
            }
        }
        /* n_new - 1 decode forwards made n_seqs (n_new - 1) tokens */
        rates[r] = (double)n_seqs * (n_new - 1) / (now() - t1);
        cpu_rates[r] = (double)n_seqs * (n_new - 1) / (cpu_now() - c1);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("{\"seqs\": %d, \"threads\": %d, \"prompt\": %d, \"new\": %d, \"simd\": \"%s\", "
           "\"mmap\": %s, \"load_s\": %.4f, \"prefill_s\": %.4f, \"decode_tok_s\": [",
           n_seqs, threads, prompt, n_new, lsc_simd_level(), use_mmap ? "true" : "false", load_s,
           prefill_s / repeat);
    for (int r = 0; r < repeat; r++) printf("%s%.3f", r ? ", " : "", rates[r]);
    printf("], \"decode_tok_per_cpu_s\": [");
    for (int r = 0; r < repeat; r++) printf("%s%.3f", r ? ", " : "", cpu_rates[r]);
    printf("], \"maxrss_mb\": %.1f, \"first_tokens\": [", ru.ru_maxrss / 1024.0);
    for (int i = 0; i < n_seqs; i++)
        printf("%s%d", i ? ", " : "", (int)ids[(size_t)i * (size_t)(prompt + n_new) + prompt]);
    printf("]}\n");
    for (int i = 0; i < n_seqs; i++) lsc_ctx_free(ctxs[i]);
    free(ctxs);
    free(ids);
    free(step_ids);
    free(n_ids);
    free(rates);
    free(cpu_rates);
    lsc_model_free(m);
    return 0;
}

int main(int argc, char **argv) {
    const char *dir = NULL;
    int seqs = 1, threads = 2, prompt = 16, n_new = 64, repeat = 3, fma = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--fma")) fma = 1;
        else if (!strcmp(argv[i], "--seqs") && i + 1 < argc) seqs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--prompt") && i + 1 < argc) prompt = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--new") && i + 1 < argc) n_new = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--repeat") && i + 1 < argc) repeat = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-mmap")) use_mmap = 0;
        else if (argv[i][0] != '-' && !dir) dir = argv[i];
        else {
            fprintf(stderr, "batch_bench: unknown argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (threads < 1 || threads > 64 || seqs < 1 || prompt < 1 || n_new < 2 || repeat < 1) {
        fprintf(stderr, "batch_bench: bad numbers\n");
        return 2;
    }
    if (fma) return run_fma(threads);
    if (!dir) {
        fprintf(stderr, "usage: batch_bench MODEL_DIR --seqs N [--threads T] | --fma\n");
        return 2;
    }
    return run_decode(dir, seqs, threads, prompt, n_new, repeat);
}

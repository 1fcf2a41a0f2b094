/* lsc_bench.c - times logitscope through its public API on one checkpoint and
 * prints one JSON object (bench/run collects them into bench/RESULTS.md):
 *
 *   lsc_bench MODEL_DIR [--threads N] [--weights f32|bf16|q8] [--repeat R]
 *                       [--what load|all|prefill:N|decode:N] [--no-mmap]
 *   lsc_bench --stream [--threads N]   read bandwidth of a 1 GiB array
 *
 * "all": load time; prefill of 128 and 512 random tokens (logits of the last
 * position, each length after an 8-token warm-up forward as the peers do);
 * decode of 128 greedy tokens after a 16-token prompt; peak RSS; then the
 * prefill of 512 with every position's logits and the peak RSS again. Each
 * timing is repeated R times (default 3). "prefill:N" (after the same
 * warm-up) and "decode:N" run just that once (for profilers). */
#include "logitscope.h"

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

static void print_list(const char *name, const double *v, int n) {
    printf(", \"%s\": [", name);
    for (int i = 0; i < n; i++) printf("%s%.6g", i ? ", " : "", v[i]);
    printf("]");
}

/* The process's peak RSS so far, as `"key": MiB`. */
static void print_maxrss(const char *key) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf(", \"%s\": %.1f", key, ru.ru_maxrss / 1024.0);
}

/* ---- STREAM-style read: each thread sums its share of a large array ---- */
typedef struct stream_arg {
    const float *a;
    size_t n;
    double sum;
} stream_arg;

__attribute__((target("avx2"))) static void *stream_sum(void *p) {
    stream_arg *s = p;
    typedef float v8 __attribute__((vector_size(32), aligned(32)));
    const v8 *a = (const v8 *)(const void *)s->a;
    v8 s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};
    for (size_t i = 0; i + 4 <= s->n / 8; i += 4) {
        s0 += a[i];
        s1 += a[i + 1];
        s2 += a[i + 2];
        s3 += a[i + 3];
    }
    v8 t = s0 + s1 + s2 + s3;
    s->sum = t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
    return NULL;
}

static int run_stream(int threads) {
    size_t n = (size_t)1 << 28; /* 1 GiB of floats */
    float *a = aligned_alloc(64, n * sizeof *a);
    if (!a) return 1;
    for (size_t i = 0; i < n; i++) a[i] = (float)(i & 1023);
    double best[7];
    for (int r = 0; r < 7; r++) {
        pthread_t th[64];
        stream_arg args[64];
        size_t per = n / (size_t)threads / 64 * 64;
        double t0 = now();
        for (int i = 0; i < threads; i++) {
            args[i] = (stream_arg){a + (size_t)i * per, per, 0};
            pthread_create(&th[i], NULL, stream_sum, &args[i]);
        }
        for (int i = 0; i < threads; i++) pthread_join(th[i], NULL);
        best[r] = per * threads * sizeof(float) / (now() - t0) / 1e9;
    }
    printf("{\"threads\": %d", threads);
    print_list("stream_gbs", best, 7);
    printf("}\n");
    free(a);
    return 0;
}

int main(int argc, char **argv) {
    const char *dir = NULL, *weights = "f32", *what = "all";
    int threads = 1, repeat = 3, stream = 0, use_mmap = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--weights") && i + 1 < argc) weights = argv[++i];
        else if (!strcmp(argv[i], "--repeat") && i + 1 < argc) repeat = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--what") && i + 1 < argc) what = argv[++i];
        else if (!strcmp(argv[i], "--stream")) stream = 1;
        else if (!strcmp(argv[i], "--no-mmap")) use_mmap = 0; /* lsc_model_params.use_mmap */
        else if (argv[i][0] != '-') dir = argv[i];
        else {
            fprintf(stderr, "lsc_bench: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (threads < 1 || threads > 64 || repeat < 1 || repeat > 100) {
        fprintf(stderr, "lsc_bench: bad --threads or --repeat\n");
        return 2;
    }
    if (stream) return run_stream(threads);
    if (!dir) {
        fprintf(stderr, "usage: lsc_bench MODEL_DIR [--threads N] [--weights f32|bf16|q8]\n");
        return 2;
    }
    lsc_model_params mp = lsc_model_default_params();
    mp.use_mmap = use_mmap;
    if (!strcmp(weights, "bf16")) mp.weight_type = LSC_WEIGHTS_BF16;
    else if (!strcmp(weights, "q8")) mp.weight_type = LSC_WEIGHTS_Q8;
    else if (strcmp(weights, "f32")) {
        fprintf(stderr, "lsc_bench: --weights must be f32, bf16 or q8\n");
        return 2;
    }
    lsc_error err;
    lsc_model *model = NULL;
    lsc_ctx *ctx = NULL;
    double t0 = now();
    if (lsc_model_load(dir, mp, &model, &err)) {
        fprintf(stderr, "lsc_bench: %s\n", err.message);
        return 1;
    }
    double load_s = now() - t0;
    lsc_ctx_params cp = lsc_ctx_default_params();
    cp.n_threads = threads;
    if (lsc_ctx_new(model, cp, &ctx, &err)) {
        fprintf(stderr, "lsc_bench: %s\n", err.message);
        return 1;
    }
    printf("{\"engine\": \"logitscope\", \"weights\": \"%s\", \"simd\": \"%s\", \"threads\": %d, "
           "\"load_s\": %.6g",
           weights, lsc_simd_level(), threads, load_s);
    int V = lsc_model_n_vocab(model);
    int32_t ids[512];
    uint64_t s = 12345;
    for (int i = 0; i < 512; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        ids[i] = (int32_t)((s >> 33) % (uint64_t)V);
    }
    int n_phase = 0;
    const char *rss_key = "maxrss_mb"; /* the peak at the end */
    if (sscanf(what, "prefill:%d", &n_phase) == 1 && n_phase > 0 && n_phase <= 512) {
        /* the warm-up of the "all" workload: the weights' pages mapped */
        if (lsc_ctx_forward(ctx, ids, 8, LSC_LOGITS_LAST, &err)) goto fail;
        lsc_ctx_reset(ctx);
        double a = now();
        if (lsc_ctx_forward(ctx, ids, (size_t)n_phase, LSC_LOGITS_LAST, &err)) goto fail;
        printf(", \"prefill_tok_s\": %.6g", n_phase / (now() - a));
    } else if (sscanf(what, "decode:%d", &n_phase) == 1 && n_phase > 0 && n_phase <= 512) {
        if (lsc_ctx_forward(ctx, ids, 16, LSC_LOGITS_LAST, &err)) goto fail;
        double a = now();
        for (int i = 0; i < n_phase; i++) {
            int32_t next = (int32_t)lsc_argmax(lsc_ctx_logits(ctx, NULL), (size_t)V);
            if (lsc_ctx_forward(ctx, &next, 1, LSC_LOGITS_LAST, &err)) goto fail;
        }
        printf(", \"decode_tok_s\": %.6g", n_phase / (now() - a));
    } else if (!strcmp(what, "all")) {
        double *t = calloc((size_t)repeat, sizeof *t);
        const int lens[2] = {128, 512};
        for (int li = 0; li < 2; li++) {
            /* the peers' warm-up (bench/peers.py): 8 tokens first */
            lsc_ctx_reset(ctx);
            if (lsc_ctx_forward(ctx, ids, 8, LSC_LOGITS_LAST, &err)) goto fail;
            for (int r = 0; r < repeat; r++) {
                lsc_ctx_reset(ctx);
                double a = now();
                if (lsc_ctx_forward(ctx, ids, (size_t)lens[li], LSC_LOGITS_LAST, &err)) goto fail;
                t[r] = lens[li] / (now() - a);
            }
            print_list(li ? "prefill512_tok_s" : "prefill128_tok_s", t, repeat);
        }
        int32_t generated[128];
        for (int r = 0; r < repeat; r++) {
            lsc_ctx_reset(ctx);
            if (lsc_ctx_forward(ctx, ids, 16, LSC_LOGITS_LAST, &err)) goto fail;
            double a = now();
            for (int i = 0; i < 128; i++) {
                int32_t next = (int32_t)lsc_argmax(lsc_ctx_logits(ctx, NULL), (size_t)V);
                generated[i] = next;
                if (lsc_ctx_forward(ctx, &next, 1, LSC_LOGITS_LAST, &err)) goto fail;
            }
            t[r] = 128 / (now() - a);
        }
        print_list("decode_tok_s", t, repeat);
        printf(", \"generated\": [");
        for (int i = 0; i < 128; i++) printf("%s%d", i ? ", " : "", generated[i]);
        printf("]");
        /* the peak of the workload the peers run, before the all-positions
         * logits (103 MB for 512 x 50257) raise it */
        print_maxrss("maxrss_mb");
        for (int r = 0; r < repeat; r++) {
            lsc_ctx_reset(ctx);
            double a = now();
            if (lsc_ctx_forward(ctx, ids, 512, LSC_LOGITS_ALL, &err)) goto fail;
            t[r] = 512 / (now() - a);
        }
        print_list("prefill512_all_tok_s", t, repeat);
        free(t);
        rss_key = "maxrss_all_logits_mb";
    }
    print_maxrss(rss_key);
    printf("}\n");
    lsc_ctx_free(ctx);
    lsc_model_free(model);
    return 0;
fail:
    fprintf(stderr, "lsc_bench: %s\n", err.message);
    return 1;
}

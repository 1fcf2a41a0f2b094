/* hooks_bench.c - what the hook points cost: times the forward pass of a
 * checkpoint with no hook registered, and with one do-nothing hook on a single
 * point (blocks.0.hook_resid_post, which keeps the fused attention), and
 * prints one JSON object. Build the library with -DLSC_BENCH_NO_HOOKS to time
 * the pass with the hook checks compiled out (bench/hooks_cost runs both).
 *
 *   hooks_bench MODEL_DIR [--threads N] [--repeat R]
 *
 * prefill: 128 tokens, logits of the last position; decode: 32 tokens one at a
 * time through the KV cache after a 16-token prompt. The best of R runs, in
 * process CPU time (run it with --threads 1). */
#include "logitscope.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* CPU seconds of the process: with --threads 1 the pass's own work, which
 * other processes on a busy machine disturb much less than wall time. */
static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int nothing(lsc_activation *a, void *ud) {
    (void)a;
    (void)ud;
    return 0;
}

/* Seconds for a 128-token prefill and for 64 decode steps (best of r). */
static void time_pass(lsc_ctx *c, int r, double *prefill, double *decode) {
    int32_t ids[128];
    for (int i = 0; i < 128; i++) ids[i] = (i * 7919 + 13) % 50000;
    *prefill = *decode = 1e9;
    for (int k = 0; k < r; k++) {
        lsc_ctx_reset(c);
        double t0 = now();
        if (lsc_ctx_forward(c, ids, 128, LSC_LOGITS_LAST, NULL)) exit(1);
        double t1 = now();
        if (t1 - t0 < *prefill) *prefill = t1 - t0;
        lsc_ctx_reset(c);
        if (lsc_ctx_forward(c, ids, 16, LSC_LOGITS_LAST, NULL)) exit(1);
        t0 = now();
        for (int i = 0; i < 32; i++)
            if (lsc_ctx_forward(c, ids + 16 + i, 1, LSC_LOGITS_LAST, NULL)) exit(1);
        t1 = now();
        if (t1 - t0 < *decode) *decode = t1 - t0;
    }
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: hooks_bench MODEL_DIR [--threads N] [--repeat R]\n");
        return 2;
    }
    int threads = 1, r = 3;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--repeat")) r = atoi(argv[i + 1]);
    }
    lsc_error err;
    lsc_model *m = NULL;
    lsc_ctx *c = NULL;
    lsc_ctx_params cp = lsc_ctx_default_params();
    cp.n_threads = threads;
    if (lsc_model_load(argv[1], lsc_model_default_params(), &m, &err) ||
        lsc_ctx_new(m, cp, &c, &err)) {
        fprintf(stderr, "hooks_bench: %s\n", err.message);
        return 1;
    }
    double p0, d0, p1, d1;
    time_pass(c, 1, &p0, &d0); /* warm up */
    time_pass(c, r, &p0, &d0);
    int h;
    if (lsc_ctx_add_hook(c, "blocks.0.hook_resid_post", nothing, NULL, &h, &err)) return 1;
    time_pass(c, r, &p1, &d1);
    printf("{\"prefill128_ms\": %.3f, \"decode_ms_per_token\": %.4f, "
           "\"one_hook_prefill128_ms\": %.3f, \"one_hook_decode_ms_per_token\": %.4f}\n",
           p0 * 1e3, d0 * 1e3 / 32, p1 * 1e3, d1 * 1e3 / 32);
    lsc_ctx_free(c);
    lsc_model_free(m);
    return 0;
}

/* load_model.c - times lsc_model_load (mmap + header validation + weight
 * lookup; F16/BF16 conversion) and one first forward of a token.
 *
 *     build/bench/load_model DIR [REPEATS]
 */
#include "logitscope.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL_DIR [REPEATS]\n", argv[0]);
        return 2;
    }
    int reps = argc > 2 ? atoi(argv[2]) : 5;
    if (reps < 1) reps = 1;
    lsc_error err;
    double best = 1e30, first = 0;
    for (int r = 0; r < reps; r++) {
        lsc_model *m = NULL;
        double t0 = now();
        if (lsc_model_load(argv[1], lsc_model_default_params(), &m, &err)) {
            fprintf(stderr, "error: %s\n", err.message);
            return 1;
        }
        double t = now() - t0;
        if (r == 0) first = t;
        if (t < best) best = t;
        if (r == reps - 1) {
            lsc_ctx *c = NULL;
            int32_t id = 464;
            double t1 = now();
            if (lsc_ctx_new(m, lsc_ctx_default_params(), &c, &err) ||
                lsc_ctx_forward(c, &id, 1, LSC_LOGITS_LAST, &err)) {
                fprintf(stderr, "error: %s\n", err.message);
                return 1;
            }
            printf("first forward of 1 token (ctx_new + forward): %.1f ms\n", 1e3 * (now() - t1));
            lsc_ctx_free(c);
        }
        lsc_model_free(m);
    }
    printf("lsc_model_load %s: first %.2f ms, best of %d %.2f ms\n", argv[1], 1e3 * first, reps,
           1e3 * best);
    return 0;
}

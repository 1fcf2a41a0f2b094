/* logits_dump.c - every position's logits of a fixed id sequence, as raw
 * float32, through the public API at the level LSC_SIMD names (for the
 * cross-architecture check, tests/cross/run: the same checkpoint on x86-64
 * and, under qemu-user, on aarch64).
 *   logits_dump MODEL_DIR N_IDS OUT.f32 [THREADS]   prints the level it ran */
#include "logitscope.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: logits_dump MODEL_DIR N_IDS OUT.f32 [THREADS]\n");
        return 2;
    }
    int n = atoi(argv[2]);
    lsc_error err;
    lsc_model *m = NULL;
    lsc_ctx *c = NULL;
    lsc_ctx_params p = lsc_ctx_default_params();
    p.n_threads = argc > 4 ? atoi(argv[4]) : 1;
    if (n < 1 || lsc_model_load(argv[1], lsc_model_default_params(), &m, &err) ||
        lsc_ctx_new(m, p, &c, &err)) {
        fprintf(stderr, "logits_dump: %s\n", n < 1 ? "N_IDS must be >= 1" : err.message);
        return 1;
    }
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    int V = lsc_model_n_vocab(m);
    for (int i = 0; i < n; i++) ids[i] = (int32_t)(((uint32_t)i * 7919u + 13u) % (uint32_t)V);
    size_t rows = 0;
    FILE *f = NULL;
    int ok = !lsc_ctx_forward(c, ids, (size_t)n, LSC_LOGITS_ALL, &err) &&
             (f = fopen(argv[3], "wb")) != NULL;
    const float *logits = ok ? lsc_ctx_logits(c, &rows) : NULL;
    ok = ok && fwrite(logits, sizeof(float) * (size_t)V, rows, f) == rows;
    if (f && fclose(f)) ok = 0;
    if (!ok) fprintf(stderr, "logits_dump: %s\n", err.status ? err.message : "cannot write");
    else printf("%s\n", lsc_ctx_simd_level(c));
    free(ids);
    lsc_ctx_free(c);
    lsc_model_free(m);
    return ok ? 0 : 1;
}

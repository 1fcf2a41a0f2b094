/* tokenizer_bench.c - times lsc_tokenizer_encode on a whole file.
 *   tokenizer_bench MODEL_DIR FILE RUNS
 * Prints one line: bytes, tokens, and the encode time of each run in seconds
 * (a fresh tokenizer per run, so the piece cache starts cold every time).
 * Used by bench/tokenizer.py. */
#include "logitscope.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* Monotonic time in seconds. */
static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: tokenizer_bench MODEL_DIR FILE RUNS\n");
        return 2;
    }
    FILE *f = fopen(argv[2], "rb");
    if (!f) {
        perror(argv[2]);
        return 1;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)n + 1);
    if (!text || fread(text, 1, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "%s: cannot read\n", argv[2]);
        return 1;
    }
    fclose(f);
    int runs = atoi(argv[3]);
    printf("bytes %ld", n);
    size_t n_ids = 0;
    for (int r = 0; r < runs; r++) {
        lsc_tokenizer *tok;
        lsc_error err;
        if (lsc_tokenizer_load(argv[1], &tok, &err)) {
            fprintf(stderr, "%s\n", err.message);
            return 1;
        }
        int32_t *ids;
        double t0 = now();
        if (lsc_tokenizer_encode(tok, text, (size_t)n, 0, &ids, &n_ids, &err)) {
            fprintf(stderr, "%s\n", err.message);
            return 1;
        }
        double t1 = now();
        if (r == 0) printf(" tokens %zu times", n_ids);
        printf(" %.6f", t1 - t0);
        lsc_free(ids);
        lsc_tokenizer_free(tok);
    }
    printf("\n");
    free(text);
    return 0;
}

/* softmax_dump.c - lsc_logsumexp, lsc_log_softmax and lsc_softmax of every
 * row of a raw float32 file, written as raw bits, at the level LSC_SIMD
 * names (for tests/cross/run: the same rows on x86-64 and, under qemu-user,
 * on aarch64 must give the same bits). Each row also goes in a second time
 * spread 30 times wider with every 7th value -inf.
 *   softmax_dump ROWS.f32 N_VOCAB OUT.bin */
#include "logitscope.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    long V = argc == 4 ? atol(argv[2]) : 0;
    if (V < 1) {
        fprintf(stderr, "usage: softmax_dump ROWS.f32 N_VOCAB OUT.bin\n");
        return 2;
    }
    FILE *in = fopen(argv[1], "rb");
    FILE *out = in ? fopen(argv[3], "wb") : NULL;
    float *x = malloc((size_t)V * sizeof *x), *y = malloc((size_t)V * sizeof *y);
    if (!in || !out || !x || !y) {
        fprintf(stderr, "softmax_dump: cannot open %s or %s\n", argv[1], argv[3]);
        return 1;
    }
    int ok = 1;
    long rows = 0;
    while (ok && fread(x, sizeof *x, (size_t)V, in) == (size_t)V) {
        for (int pass = 0; pass < 2 && ok; pass++) {
            if (pass == 1)
                for (long i = 0; i < V; i++) x[i] = i % 7 == 3 ? -INFINITY : 30.0f * x[i];
            double lse = lsc_logsumexp(x, (size_t)V);
            ok = fwrite(&lse, sizeof lse, 1, out) == 1;
            lsc_log_softmax(x, (size_t)V, y);
            ok = ok && fwrite(y, sizeof *y, (size_t)V, out) == (size_t)V;
            lsc_softmax(x, (size_t)V, y);
            ok = ok && fwrite(y, sizeof *y, (size_t)V, out) == (size_t)V;
        }
        rows++;
    }
    if (fclose(out)) ok = 0;
    fclose(in);
    free(x);
    free(y);
    if (!ok || rows == 0) {
        fprintf(stderr, "softmax_dump: %s\n", rows ? "cannot write" : "no whole row read");
        return 1;
    }
    printf("%ld rows\n", rows);
    return 0;
}

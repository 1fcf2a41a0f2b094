/* fuzz_safetensors.c - libFuzzer target for the safetensors reader: the input
 * is written to a temporary file and opened; opening must either succeed, with
 * every tensor's bytes inside the file, or fail with a status and a message,
 * never crash. On success every float tensor is converted to F32 (touching
 * every byte it claims). */
#include "safetensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char path[] = "/tmp/lsc_fuzz_st_XXXXXX";
    static int fd = -1;
    if (fd < 0 && (fd = mkstemp(path)) < 0) abort();
    if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size) abort();
    lsc_st_file *f = (lsc_st_file *)1;
    lsc_error err = {0};
    lsc_status st = lsc_st_open(path, &f, &err);
    if (st != LSC_OK) {
        if (f != NULL || err.message[0] == '\0' || err.status != st) abort();
        return 0;
    }
    for (size_t i = 0; i < f->n_tensors; i++) {
        const lsc_st_tensor *t = &f->tensors[i];
        const uint8_t *b = t->data;
        if (b < (const uint8_t *)f->map || b + t->n_bytes > (const uint8_t *)f->map + f->map_size)
            abort();
        if (lsc_st_find(f, t->name) != t) abort();
        if (t->n_elements <= (1u << 16)) {
            float *out = malloc(t->n_elements * sizeof(float) + 1);
            lsc_st_to_f32(t->dtype, t->data, t->n_elements, out);
            free(out);
        }
    }
    for (size_t i = 0; i < f->n_meta; i++)
        if (!lsc_st_metadata(f, f->meta_keys[i])) abort();
    lsc_st_close(f);
    return 0;
}

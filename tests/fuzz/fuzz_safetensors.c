/* fuzz_safetensors.c - libFuzzer target for the .safetensors reader: the
 * input is written to a temporary file and opened with lsc_st_open (the real
 * mmap path). Opening must either fail with a status and a message, or give a
 * table whose every entry holds together: offsets inside the data section,
 * byte counts equal to elements x dtype size, names findable, no overlaps.
 * On success every float tensor is converted to float32 (reading every byte
 * the table claims). */
#include "safetensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile float fsink; /* keeps the reads of tensor data */
static volatile uint8_t bsink;

/* Aborts (a fuzzer finding) when cond is false. */
static void require(int cond) {
    if (!cond) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char path[] = "/tmp/lsc_fuzz_st_XXXXXX";
    static int fd = -1;
    if (fd < 0 && (fd = mkstemp(path)) < 0) abort();
    require(ftruncate(fd, 0) == 0 && pwrite(fd, data, size, 0) == (ssize_t)size);
    lsc_st_file *f = (lsc_st_file *)1;
    lsc_error err = {0};
    /* both ways of holding the bytes: mapped, and read into memory */
    lsc_status st = lsc_st_open(path, size & 1, &f, &err);
    if (st != LSC_OK) {
        require(f == NULL && err.status == st && err.message[0] && !strchr(err.message, '\n'));
        return 0;
    }
    require(f && f->data_size <= size && f->data_section + f->data_size ==
                                             (const uint8_t *)f->map + f->map_size);
    const lsc_st_tensor *prev = NULL;
    for (size_t i = 0; i < f->n_tensors; i++) {
        const lsc_st_tensor *t = &f->tensors[i];
        size_t n = 1;
        for (int d = 0; d < t->n_dims; d++) n *= (size_t)t->shape[d];
        require(t->n_dims >= 0 && t->n_dims <= LSC_ST_MAX_DIMS && n == t->n_elements);
        require(t->n_bytes == t->n_elements * lsc_st_dtype_size(t->dtype));
        require(t->offset <= f->data_size && t->n_bytes <= f->data_size - t->offset);
        require((const uint8_t *)t->data == f->data_section + t->offset);
        require(lsc_st_find(f, t->name) == t);
        require(!prev || strcmp(prev->name, t->name) < 0);
        prev = t;
        /* bounded work: convert at most 1 MB of each tensor */
        size_t m = t->n_elements < (1u << 18) ? t->n_elements : (1u << 18);
        float *buf = malloc((m ? m : 1) * sizeof *buf);
        require(buf != NULL);
        if (lsc_st_to_f32(t->dtype, t->data, m, buf)) {
            for (size_t j = 0; j < m; j++) fsink += buf[j];
        } else {
            for (size_t j = 0; j < t->n_bytes && j < (1u << 20); j++)
                bsink ^= ((const uint8_t *)t->data)[j];
        }
        free(buf);
    }
    for (size_t i = 0; i < f->n_meta; i++) require(lsc_st_metadata(f, f->meta_keys[i]) != NULL);
    require(lsc_st_find(f, "") == NULL || lsc_st_find(f, "")->name[0] == '\0');
    lsc_st_close(f);
    return 0;
}

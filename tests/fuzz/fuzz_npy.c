/* fuzz_npy.c - libFuzzer target for the .npy and .npz readers that --hook
 * add:/patch: use (tools/common/npy.c). The first byte picks the reader, the rest is
 * written to a temporary file and read with a 1 MiB data limit: reading must
 * either fail with a one-line message and a zeroed result, or give arrays
 * whose element count is the product of their shape, within the limit, and
 * whose every value can be read. */
#include "npy.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LIMIT (1u << 20)

static volatile float sink;

/* Aborts (a fuzzer finding) when cond is false. */
static void require(int cond) {
    if (!cond) abort();
}

/* Checks one array that a reader returned. */
static void check_array(const npy_array *a) {
    require(a->n_dims >= 0 && a->n_dims <= NPY_MAX_DIMS);
    size_t n = 1;
    for (int i = 0; i < a->n_dims; i++) {
        require(a->shape[i] >= 0);
        n *= (size_t)a->shape[i];
    }
    require(n == a->count && n * sizeof(float) <= LIMIT);
    require(n == 0 || a->data != NULL);
    float s = 0;
    for (size_t i = 0; i < n; i++) s += a->data[i];
    sink += s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char path[] = "/tmp/lsc_fuzz_npy_XXXXXX";
    static int fd = -1;
    if (fd < 0 && (fd = mkstemp(path)) < 0) abort();
    if (size == 0) return 0;
    require(ftruncate(fd, 0) == 0 && pwrite(fd, data + 1, size - 1, 0) == (ssize_t)(size - 1));
    char err[512] = "";
    if (data[0] & 1) {
        npz_file z;
        memset(&z, 0xa5, sizeof z);
        if (npz_read_f32(path, LIMIT, &z, err, sizeof err) != 0) {
            require(z.n == 0 && z.keys == NULL && z.arrays == NULL);
            require(err[0] && !strchr(err, '\n'));
            return 0;
        }
        for (size_t i = 0; i < z.n; i++) {
            require(z.keys[i] != NULL && npz_find(&z, z.keys[i]) != NULL);
            check_array(&z.arrays[i]);
        }
        npz_free(&z);
        return 0;
    }
    npy_array a;
    memset(&a, 0xa5, sizeof a);
    if (npy_read_f32(path, LIMIT, &a, err, sizeof err) != 0) {
        require(a.data == NULL && a.count == 0);
        require(err[0] && !strchr(err, '\n'));
        return 0;
    }
    check_array(&a);
    free(a.data);
    return 0;
}

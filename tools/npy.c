/* npy.c - NumPy .npy writer and atomic file replacement (see npy.h). */
#include "npy.h"

#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

size_t npy_header_f32(char *buf, size_t cap, const int64_t *shape, int n_dims) {
    char dict[512];
    size_t k = (size_t)snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    for (int i = 0; i < n_dims && k < sizeof dict; i++)
        k += (size_t)snprintf(dict + k, sizeof dict - k, "%lld,%s", (long long)shape[i],
                              i + 1 < n_dims ? " " : "");
    if (k < sizeof dict) k += (size_t)snprintf(dict + k, sizeof dict - k, "), }");
    if (k >= sizeof dict) return 0;
    size_t total = 10 + k + 1; /* magic(6) + version(2) + len(2) + dict + '\n' */
    total = (total + 63) / 64 * 64;
    if (total > cap || total - 10 > 0xffff) return 0;
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (char)((total - 10) & 0xff);
    buf[9] = (char)((total - 10) >> 8);
    memcpy(buf + 10, dict, k);
    memset(buf + 10 + k, ' ', total - 10 - k - 1);
    buf[total - 1] = '\n';
    return total;
}

bool npy_fwrite_f32(FILE *f, const float *data, const int64_t *shape, int n_dims) {
    char hdr[640];
    size_t h = npy_header_f32(hdr, sizeof hdr, shape, n_dims);
    if (!h) return false;
    size_t n = 1;
    for (int i = 0; i < n_dims; i++) n *= (size_t)shape[i];
    if (fwrite(hdr, 1, h, f) != h) return false;
    /* the host is little-endian (x86-64, aarch64): floats go out as they are */
    return fwrite(data, sizeof(float), n, f) == n;
}

FILE *atomic_open(const char *path, char **tmp_path) {
    size_t len = strlen(path);
    char *tmp = malloc(len + 16);
    if (!tmp) {
        cli_error("%s: out of memory", path);
        return NULL;
    }
    snprintf(tmp, len + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        cli_error("%s: cannot create: %s", path, strerror(errno));
        free(tmp);
        return NULL;
    }
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        cli_error("%s: %s", path, strerror(errno));
        close(fd);
        unlink(tmp);
        free(tmp);
        return NULL;
    }
    *tmp_path = tmp;
    return f;
}

void atomic_abort(FILE *f, char *tmp_path) {
    if (f) fclose(f);
    if (tmp_path) unlink(tmp_path);
    free(tmp_path);
}

bool atomic_commit(FILE *f, char *tmp_path, const char *path) {
    bool ok = fflush(f) == 0 && !ferror(f);
    int e = errno;
    if (fclose(f) != 0 && ok) {
        ok = false;
        e = errno;
    }
    if (ok && rename(tmp_path, path) != 0) {
        ok = false;
        e = errno;
    }
    if (!ok) {
        cli_error("%s: cannot write: %s", path, strerror(e));
        unlink(tmp_path);
    }
    free(tmp_path);
    return ok;
}

bool npy_save_f32(const char *path, const float *data, const int64_t *shape, int n_dims) {
    char *tmp;
    FILE *f = atomic_open(path, &tmp);
    if (!f) return false;
    if (!npy_fwrite_f32(f, data, shape, n_dims)) {
        int e = errno;
        atomic_abort(f, tmp);
        cli_error("%s: cannot write: %s", path, strerror(e));
        return false;
    }
    return atomic_commit(f, tmp, path);
}

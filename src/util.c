/* util.c - error reporting, paths and whole-file reads shared by the modules. */
#include "internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const char *lsc_status_str(lsc_status status) {
    switch (status) {
    case LSC_OK: return "ok";
    case LSC_ERR_INVALID_ARG: return "invalid argument";
    case LSC_ERR_IO: return "i/o error";
    case LSC_ERR_FORMAT: return "format error";
    case LSC_ERR_UNSUPPORTED: return "unsupported";
    case LSC_ERR_NOMEM: return "out of memory";
    case LSC_ERR_CONTEXT_FULL: return "context full";
    case LSC_ERR_NOT_FOUND: return "not found";
    case LSC_ERR_NETWORK: return "network error";
    case LSC_ERR_AUTH: return "not authorised";
    case LSC_ERR_HOOK: return "aborted by a hook";
    case LSC_ERR_INTERNAL: return "internal error";
    }
    return "unknown status";
}

void lsc_free(void *ptr) { free(ptr); }

lsc_status lsc_fail(lsc_error *err, lsc_status status, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
        /* one line: fold any newline a formatted value brought in */
        for (char *p = err->message; *p; p++)
            if (*p == '\n' || *p == '\r') *p = ' ';
        err->status = status;
    }
    return status;
}

char *lsc_path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    size_t k = a;
    if (a > 0 && dir[a - 1] != '/') p[k++] = '/';
    memcpy(p + k, name, b + 1);
    return p;
}

lsc_status lsc_read_file(const char *path, size_t max_bytes, char **data, size_t *len,
                         lsc_error *err) {
    *data = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return lsc_fail(err, errno == ENOENT ? LSC_ERR_NOT_FOUND : LSC_ERR_IO,
                            "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return lsc_fail(err, LSC_ERR_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > max_bytes) {
        fclose(f);
        return lsc_fail(err, LSC_ERR_FORMAT, "%s: %lld bytes is more than the limit of %zu",
                        path, (long long)st.st_size, max_bytes);
    }
    size_t n = (size_t)st.st_size;
    char *buf = malloc(n + 1);
    if (!buf) {
        fclose(f);
        return lsc_fail(err, LSC_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, n + 1);
    }
    size_t got = fread(buf, 1, n, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || got != n) {
        free(buf);
        return lsc_fail(err, LSC_ERR_IO, "%s: short read", path);
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return LSC_OK;
}

/* npy.c - NumPy .npy writer and reader, atomic file replacement (see npy.h). */
#include "npy.h"

#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

#define TMP_SUFFIX ".tmp.XXXXXX"

/* Where an atomic write of `path` renames its temporary file to: `path`
 * itself, or, through symbolic links, the regular file they lead to (so the
 * link stays a link). NULL when `path` must be written in place instead: it
 * is (or leads to) a device or FIFO such as /dev/full, or a /proc/self/fd
 * link such as /dev/stdout, which a rename would replace rather than write.
 * The result is a new string (free with free()). */
static char *atomic_target(const char *path) {
    struct stat sb;
    if (lstat(path, &sb) != 0 || S_ISREG(sb.st_mode) || S_ISDIR(sb.st_mode))
        return strdup(path); /* new, regular, or a folder (the rename then fails) */
    if (!S_ISLNK(sb.st_mode)) return NULL;
    char *real = realpath(path, NULL);
    if (!real || strncmp(real, "/proc/", 6) == 0 || stat(real, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        free(real);
        return NULL;
    }
    return real;
}

FILE *atomic_open(const char *path, char **tmp_path) {
    *tmp_path = NULL;
    char *target = atomic_target(path);
    if (!target) { /* a device, FIFO or fd link: written in place */
        FILE *f = fopen(path, "wb");
        if (!f) cli_error("%s: cannot open: %s", path, strerror(errno));
        return f;
    }
    size_t len = strlen(target);
    char *tmp = realloc(target, len + sizeof TMP_SUFFIX);
    if (!tmp) {
        free(target);
        cli_error("%s: out of memory", path);
        return NULL;
    }
    memcpy(tmp + len, TMP_SUFFIX, sizeof TMP_SUFFIX);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        cli_error("%s: cannot create: %s", path, strerror(errno));
        free(tmp);
        return NULL;
    }
    /* mkstemp makes the file 0600; give it the mode fopen() would */
    mode_t mask = umask(0);
    umask(mask);
    if (fchmod(fd, 0666 & ~mask) != 0) {
        cli_error("%s: %s", path, strerror(errno));
        close(fd);
        unlink(tmp);
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
    errno = 0;
    bool ok = fflush(f) == 0 && !ferror(f);
    int e = errno ? errno : EIO;
    if (fclose(f) != 0 && ok) {
        ok = false;
        e = errno;
    }
    if (ok && tmp_path) { /* the target is the temporary name less its suffix */
        size_t n = strlen(tmp_path) - (sizeof TMP_SUFFIX - 1);
        char *target = strndup(tmp_path, n);
        if (!target || rename(tmp_path, target) != 0) {
            ok = false;
            e = target ? errno : ENOMEM;
        }
        free(target);
    }
    if (!ok) {
        cli_error("%s: cannot write: %s", path, strerror(e));
        if (tmp_path) unlink(tmp_path);
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

/* ------------------------------------------------------------------------ */
/* Reading                                                                   */
/* ------------------------------------------------------------------------ */

/* Formats a message into err and returns -1. */
static int npy_fail(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int npy_fail(char *err, size_t err_len, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
    return -1;
}

/* Finds the value text after 'key': in the header dict; NULL when absent. */
static const char *npy_find_key(const char *hdr, const char *key) {
    char pat[32];
    snprintf(pat, sizeof pat, "'%s'", key);
    const char *p = strstr(hdr, pat);
    if (!p) return NULL;
    p += strlen(pat);
    while (*p == ' ') p++;
    if (*p != ':') return NULL;
    p++;
    while (*p == ' ') p++;
    return p;
}

/* Parses the shape tuple "(2, 50257)" / "(50257,)" / "()" at p. */
static int npy_parse_shape(const char *p, npy_array *a) {
    if (*p++ != '(') return -1;
    a->n_dims = 0;
    for (;;) {
        while (*p == ' ') p++;
        if (*p == ')') break;
        if (*p < '0' || *p > '9') return -1;
        if (a->n_dims == NPY_MAX_DIMS) return -1;
        errno = 0;
        char *end;
        long long v = strtoll(p, &end, 10);
        if (errno || v < 0 || v > (1LL << 40)) return -1;
        a->shape[a->n_dims++] = v;
        p = end;
        while (*p == ' ') p++;
        if (*p == ',') p++;
        else if (*p != ')') return -1;
    }
    return 0;
}

/* Reads one .npy image from the stream `f` at its current offset; it must
 * take exactly `avail` bytes (SIZE_MAX: it must end the stream). `path`
 * names it in messages. Same contract as npy_read_f32 otherwise. */
static int npy_fread(FILE *f, const char *path, size_t avail, size_t max_bytes, npy_array *out,
                     char *err, size_t err_len) {
    memset(out, 0, sizeof *out);
    int rc = -1;
    char *hdr = NULL;
    double *tmp = NULL;
    npy_array a = {0};
    unsigned char pre[12];
    if (fread(pre, 1, 8, f) != 8 || memcmp(pre, "\x93NUMPY", 6) != 0) {
        npy_fail(err, err_len, "%s: not a .npy file (bad magic)", path);
        goto done;
    }
    size_t hlen;
    if (pre[6] == 1) {
        if (fread(pre + 8, 1, 2, f) != 2) goto truncated;
        hlen = (size_t)pre[8] | (size_t)pre[9] << 8;
    } else if (pre[6] == 2 || pre[6] == 3) {
        if (fread(pre + 8, 1, 4, f) != 4) goto truncated;
        hlen = (size_t)pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
        if (hlen > (1u << 20)) {
            npy_fail(err, err_len, "%s: .npy header of %zu bytes is too large", path, hlen);
            goto done;
        }
    } else {
        npy_fail(err, err_len, "%s: unsupported .npy version %d", path, pre[6]);
        goto done;
    }
    hdr = malloc(hlen + 1);
    if (!hdr) goto nomem;
    if (fread(hdr, 1, hlen, f) != hlen) goto truncated;
    hdr[hlen] = '\0';
    if (strlen(hdr) != hlen) {
        npy_fail(err, err_len, "%s: .npy header contains a NUL byte", path);
        goto done;
    }
    const char *descr = npy_find_key(hdr, "descr");
    const char *fortran = npy_find_key(hdr, "fortran_order");
    const char *shape = npy_find_key(hdr, "shape");
    if (!descr || !fortran || !shape || hdr[0] != '{' || hlen < 2 || hdr[hlen - 1] != '\n') {
        npy_fail(err, err_len, "%s: malformed .npy header", path);
        goto done;
    }
    size_t elem;
    if (!strncmp(descr, "'<f4'", 5)) elem = 4;
    else if (!strncmp(descr, "'<f8'", 5)) elem = 8;
    else {
        npy_fail(err, err_len, "%s: .npy dtype must be float32 ('<f4') or float64 ('<f8')", path);
        goto done;
    }
    if (strncmp(fortran, "False", 5) != 0) {
        npy_fail(err, err_len, "%s: Fortran-ordered .npy arrays are not supported", path);
        goto done;
    }
    if (npy_parse_shape(shape, &a) != 0) {
        npy_fail(err, err_len, "%s: malformed or too many dimensions in the .npy shape", path);
        goto done;
    }
    size_t count = 1;
    for (int i = 0; i < a.n_dims; i++)
        if (__builtin_mul_overflow(count, (size_t)a.shape[i], &count)) count = SIZE_MAX;
    size_t bytes;
    if (count == SIZE_MAX || __builtin_mul_overflow(count, elem, &bytes) || bytes > max_bytes) {
        npy_fail(err, err_len, "%s: .npy array is larger than %zu bytes", path, max_bytes);
        goto done;
    }
    if (avail != SIZE_MAX && (pre[6] == 1 ? 10 : 12) + hlen + bytes > avail) goto truncated;
    a.count = count;
    a.data = malloc(count ? count * sizeof(float) : 1);
    if (!a.data) goto nomem;
    if (elem == 4) {
        if (fread(a.data, 4, count, f) != count) goto truncated;
    } else {
        tmp = malloc(count ? count * sizeof(double) : 1);
        if (!tmp) goto nomem;
        if (fread(tmp, 8, count, f) != count) goto truncated;
        for (size_t i = 0; i < count; i++) a.data[i] = (float)tmp[i];
    }
    size_t used = (pre[6] == 1 ? 10 : 12) + hlen + bytes;
    if (avail == SIZE_MAX ? fgetc(f) != EOF : used != avail) {
        npy_fail(err, err_len, "%s: trailing bytes after the .npy data", path);
        goto done;
    }
    *out = a;
    a.data = NULL;
    rc = 0;
    goto done;
truncated:
    npy_fail(err, err_len, "%s: truncated .npy file", path);
    goto done;
nomem:
    npy_fail(err, err_len, "%s: out of memory", path);
done:
    free(a.data);
    free(tmp);
    free(hdr);
    return rc;
}

int npy_read_f32(const char *path, size_t max_bytes, npy_array *out, char *err, size_t err_len) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) return npy_fail(err, err_len, "%s: %s", path, strerror(errno));
    int rc = npy_fread(f, path, SIZE_MAX, max_bytes, out, err, err_len);
    fclose(f);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* .npz: a zip of .npy members, stored without compression                  */
/* ------------------------------------------------------------------------ */

/* CRC-32 (IEEE, as zip and zlib) of n bytes, continuing from `crc`. */
static uint32_t crc32_update(uint32_t crc, const void *buf, size_t n) {
    static uint32_t table[256];
    if (!table[1])
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
    const unsigned char *p = buf;
    crc = ~crc;
    for (size_t i = 0; i < n; i++) crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}

static void put16(unsigned char *p, unsigned v) {
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}
static void put32(unsigned char *p, uint32_t v) {
    put16(p, v & 0xffff);
    put16(p + 2, v >> 16);
}
static unsigned get16(const unsigned char *p) { return (unsigned)p[0] | (unsigned)p[1] << 8; }
static uint32_t get32(const unsigned char *p) { return get16(p) | (uint32_t)get16(p + 2) << 16; }

/* One member already written: what the central directory repeats. */
typedef struct npz_member {
    char *name; /* "key.npy" */
    uint32_t crc, size, offset;
} npz_member;

struct npz_writer {
    FILE *f;
    char *tmp, *path;
    npz_member *members;
    size_t n, cap;
    uint64_t offset; /* bytes written so far */
    bool failed;
};

npz_writer *npz_open(const char *path) {
    npz_writer *w = calloc(1, sizeof *w);
    if (!w || !(w->path = strdup(path))) {
        free(w);
        cli_error("%s: out of memory", path);
        return NULL;
    }
    if (!(w->f = atomic_open(path, &w->tmp))) {
        free(w->path);
        free(w);
        return NULL;
    }
    return w;
}

/* Frees the writer's memory (not the file). */
static void npz_release(npz_writer *w) {
    for (size_t i = 0; i < w->n; i++) free(w->members[i].name);
    free(w->members);
    free(w->path);
    free(w);
}

void npz_abort(npz_writer *w) {
    if (!w) return;
    atomic_abort(w->f, w->tmp);
    npz_release(w);
}

/* Marks the writer failed after printing the error; returns false. */
static bool npz_fail(npz_writer *w, const char *what) {
    if (!w->failed) cli_error("%s: %s", w->path, what);
    w->failed = true;
    return false;
}

bool npz_add_f32(npz_writer *w, const char *key, const float *data, const int64_t *shape,
                 int n_dims) {
    if (w->failed) return false;
    char hdr[640];
    size_t h = npy_header_f32(hdr, sizeof hdr, shape, n_dims);
    size_t count = 1, name_len = strlen(key) + 4;
    for (int i = 0; i < n_dims; i++) count *= (size_t)shape[i];
    uint64_t size = (uint64_t)h + (uint64_t)count * sizeof(float);
    if (!h || name_len > 0xffff) return npz_fail(w, "an array's header or name is too long");
    if (size + 30 + name_len + w->offset > 0xffffffffu || w->n >= 0xffff)
        return npz_fail(w, ".npz larger than 4 GiB or 65535 arrays is not supported "
                           "(cache fewer points)");
    if (w->n == w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 32;
        npz_member *m = realloc(w->members, cap * sizeof *m);
        if (!m) return npz_fail(w, "out of memory");
        w->members = m;
        w->cap = cap;
    }
    npz_member *m = &w->members[w->n];
    if (!(m->name = malloc(name_len + 1))) return npz_fail(w, "out of memory");
    snprintf(m->name, name_len + 1, "%s.npy", key);
    w->n++;
    m->crc = crc32_update(crc32_update(0, hdr, h), data, count * sizeof(float));
    m->size = (uint32_t)size;
    m->offset = (uint32_t)w->offset;
    unsigned char lh[30] = {0};
    put32(lh, 0x04034b50);
    put16(lh + 4, 20);       /* version needed: 2.0 */
    put16(lh + 12, 0x21);    /* date 1980-01-01 */
    put32(lh + 14, m->crc);
    put32(lh + 18, m->size); /* stored: compressed size = size */
    put32(lh + 22, m->size);
    put16(lh + 26, (unsigned)name_len);
    if (fwrite(lh, 1, 30, w->f) != 30 || fwrite(m->name, 1, name_len, w->f) != name_len ||
        fwrite(hdr, 1, h, w->f) != h || fwrite(data, sizeof(float), count, w->f) != count)
        return npz_fail(w, strerror(errno));
    w->offset += 30 + name_len + size;
    return true;
}

bool npz_commit(npz_writer *w) {
    bool ok = !w->failed;
    uint64_t cd_start = w->offset, cd_size = 0;
    for (size_t i = 0; ok && i < w->n; i++) {
        const npz_member *m = &w->members[i];
        size_t name_len = strlen(m->name);
        unsigned char ch[46] = {0};
        put32(ch, 0x02014b50);
        put16(ch + 4, 20);
        put16(ch + 6, 20);
        put16(ch + 14, 0x21);
        put32(ch + 16, m->crc);
        put32(ch + 20, m->size);
        put32(ch + 24, m->size);
        put16(ch + 28, (unsigned)name_len);
        put32(ch + 38, 0644u << 16); /* unix mode rw-r--r-- */
        put32(ch + 42, m->offset);
        ok = fwrite(ch, 1, 46, w->f) == 46 && fwrite(m->name, 1, name_len, w->f) == name_len;
        cd_size += 46 + name_len;
    }
    if (ok && cd_start + cd_size > 0xffffffffu) {
        npz_fail(w, ".npz larger than 4 GiB is not supported (cache fewer points)");
        ok = false;
    }
    unsigned char end[22] = {0};
    put32(end, 0x06054b50);
    put16(end + 8, (unsigned)w->n);
    put16(end + 10, (unsigned)w->n);
    put32(end + 12, (uint32_t)cd_size);
    put32(end + 16, (uint32_t)cd_start);
    if (ok) ok = fwrite(end, 1, 22, w->f) == 22;
    if (!ok) {
        npz_fail(w, "cannot write");
        npz_abort(w);
        return false;
    }
    ok = atomic_commit(w->f, w->tmp, w->path);
    npz_release(w);
    return ok;
}

void npz_free(npz_file *z) {
    if (!z) return;
    for (size_t i = 0; i < z->n; i++) {
        free(z->keys[i]);
        free(z->arrays[i].data);
    }
    free(z->keys);
    free(z->arrays);
    memset(z, 0, sizeof *z);
}

const npy_array *npz_find(const npz_file *z, const char *key) {
    for (size_t i = 0; i < z->n; i++)
        if (z->keys[i] && !strcmp(z->keys[i], key)) return &z->arrays[i];
    return NULL;
}

/* Writes name[n] into dst[cap] for a message: printable ASCII as is, other
 * bytes as \xNN, cut after 60 bytes with "...". */
static void shown_name(char *dst, size_t cap, const char *name, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n && i < 60 && k + 8 < cap; i++) {
        unsigned char ch = (unsigned char)name[i];
        if (ch >= 0x20 && ch < 0x7f && ch != '\\') dst[k++] = (char)ch;
        else k += (size_t)snprintf(dst + k, cap - k, "\\x%02x", ch);
    }
    if (n > 60 && k + 4 < cap) k += (size_t)snprintf(dst + k, cap - k, "...");
    dst[k] = '\0';
}

int npz_read_f32(const char *path, size_t max_bytes, npz_file *out, char *err, size_t err_len) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) return npy_fail(err, err_len, "%s: %s", path, strerror(errno));
    int rc = -1;
    unsigned char *tail = NULL, *cd = NULL;
    npz_file z = {0};
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        npy_fail(err, err_len, "%s: not a regular file", path);
        goto done;
    }
    uint64_t fsize = (uint64_t)sb.st_size;
    /* the end-of-central-directory record: 22 bytes + a comment of < 64 KiB */
    size_t tlen = fsize < 22 + 65535 ? (size_t)fsize : 22 + 65535;
    if (tlen < 22) goto notzip;
    if (!(tail = malloc(tlen))) goto nomem;
    if (fseeko(f, (off_t)(fsize - tlen), SEEK_SET) != 0 || fread(tail, 1, tlen, f) != tlen)
        goto notzip;
    const unsigned char *eocd = NULL;
    for (size_t i = tlen - 22 + 1; i-- > 0;)
        if (get32(tail + i) == 0x06054b50 && i + 22 + get16(tail + i + 20) == tlen) {
            eocd = tail + i;
            break;
        }
    if (!eocd) goto notzip;
    size_t n = get16(eocd + 10);
    uint32_t cd_size = get32(eocd + 12), cd_off = get32(eocd + 16);
    if (get16(eocd + 4) != 0 || get16(eocd + 6) != 0 || get16(eocd + 8) != n) {
        npy_fail(err, err_len, "%s: multi-disk zip archives are not supported", path);
        goto done;
    }
    if (n == 0xffff || cd_off == 0xffffffffu || cd_size == 0xffffffffu) {
        npy_fail(err, err_len, "%s: zip64 .npz archives (over 4 GiB) are not supported", path);
        goto done;
    }
    uint64_t eocd_at = fsize - tlen + (uint64_t)(eocd - tail);
    if ((uint64_t)cd_off + cd_size > eocd_at) {
        npy_fail(err, err_len, "%s: corrupt .npz (central directory outside the file)", path);
        goto done;
    }
    if (!(cd = malloc(cd_size ? cd_size : 1))) goto nomem;
    if (fseeko(f, (off_t)cd_off, SEEK_SET) != 0 || fread(cd, 1, cd_size, f) != cd_size) goto notzip;
    if (!(z.keys = calloc(n ? n : 1, sizeof *z.keys)) ||
        !(z.arrays = calloc(n ? n : 1, sizeof *z.arrays)))
        goto nomem;
    size_t at = 0, total = 0;
    for (size_t i = 0; i < n; i++) {
        if (at + 46 > cd_size || get32(cd + at) != 0x02014b50) goto corrupt;
        const unsigned char *e = cd + at;
        unsigned flags = get16(e + 8), method = get16(e + 10);
        uint32_t crc = get32(e + 16), csize = get32(e + 20), usize = get32(e + 24);
        size_t nlen = get16(e + 28), elen = get16(e + 30), clen = get16(e + 32);
        uint32_t loff = get32(e + 42);
        if (at + 46 + nlen + elen + clen > cd_size) goto corrupt;
        const char *name = (const char *)e + 46;
        char key[512], shown[300];
        shown_name(shown, sizeof shown, name, nlen >= 4 ? nlen - 4 : nlen);
        if (nlen < 5 || nlen - 4 >= sizeof key || memcmp(name + nlen - 4, ".npy", 4) != 0 ||
            memchr(name, '\0', nlen)) {
            shown_name(shown, sizeof shown, name, nlen);
            npy_fail(err, err_len, "%s: member %zu is not a .npy array (name '%s')", path, i,
                     shown);
            goto done;
        }
        memcpy(key, name, nlen - 4);
        key[nlen - 4] = '\0';
        if (flags & 1) {
            npy_fail(err, err_len, "%s: '%s' is encrypted", path, shown);
            goto done;
        }
        if (method == 8) {
            npy_fail(err, err_len,
                     "%s: '%s' is compressed (numpy.savez_compressed); only uncompressed "
                     ".npz files (numpy.savez) are supported",
                     path, shown);
            goto done;
        }
        if (method != 0) {
            npy_fail(err, err_len, "%s: '%s' uses zip compression method %u (only stored)", path,
                     shown, method);
            goto done;
        }
        if (csize == 0xffffffffu || usize == 0xffffffffu || loff == 0xffffffffu) {
            npy_fail(err, err_len, "%s: zip64 .npz members (over 4 GiB) are not supported", path);
            goto done;
        }
        if (csize != usize) goto corrupt;
        for (size_t j = 0; j < i; j++)
            if (z.keys[j] && !strcmp(z.keys[j], key)) {
                npy_fail(err, err_len, "%s: the array '%s' appears twice", path, shown);
                goto done;
            }
        /* the local header: its own name and extra lengths say where data starts */
        unsigned char lh[30];
        if (fseeko(f, (off_t)loff, SEEK_SET) != 0 || fread(lh, 1, 30, f) != 30 ||
            get32(lh) != 0x04034b50 || get16(lh + 8) != method)
            goto corrupt;
        uint64_t data_at = (uint64_t)loff + 30 + get16(lh + 26) + get16(lh + 28);
        if (data_at + usize > cd_off) goto corrupt;
        if (usize > max_bytes - total) {
            npy_fail(err, err_len, "%s: the arrays are larger than %zu bytes", path, max_bytes);
            goto done;
        }
        total += usize;
        /* the CRC of the stored bytes, then the .npy parser on them */
        if (fseeko(f, (off_t)data_at, SEEK_SET) != 0) goto corrupt;
        uint32_t c = 0;
        unsigned char buf[65536];
        for (uint32_t left = usize; left;) {
            size_t k = left < sizeof buf ? left : sizeof buf;
            if (fread(buf, 1, k, f) != k) goto corrupt;
            c = crc32_update(c, buf, k);
            left -= (uint32_t)k;
        }
        if (c != crc) {
            npy_fail(err, err_len, "%s: '%s' fails its CRC check (corrupt file)", path, shown);
            goto done;
        }
        if (fseeko(f, (off_t)data_at, SEEK_SET) != 0) goto corrupt;
        char label[1024];
        snprintf(label, sizeof label, "%s['%s']", path, shown);
        if (npy_fread(f, label, usize, max_bytes, &z.arrays[i], err, err_len) != 0) goto done;
        z.n = i + 1;
        if (!(z.keys[i] = strdup(key))) goto nomem;
        at += 46 + nlen + elen + clen;
    }
    if (at != cd_size) goto corrupt;
    *out = z;
    memset(&z, 0, sizeof z);
    rc = 0;
    goto done;
notzip:
    npy_fail(err, err_len, "%s: not a .npz file (no zip directory found)", path);
    goto done;
corrupt:
    npy_fail(err, err_len, "%s: corrupt .npz (zip structure inconsistent)", path);
    goto done;
nomem:
    npy_fail(err, err_len, "%s: out of memory", path);
done:
    npz_free(&z);
    free(tail);
    free(cd);
    fclose(f);
    return rc;
}

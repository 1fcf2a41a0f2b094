/* safetensors.c - mmap a .safetensors file, validate its header, look up
 * tensors (see safetensors.h). */
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct {
    const char *name;
    size_t size;
} dtypes[LSC_ST_N_DTYPES] = {
    [LSC_ST_BOOL] = {"BOOL", 1},       [LSC_ST_U8] = {"U8", 1},
    [LSC_ST_I8] = {"I8", 1},           [LSC_ST_F8_E4M3] = {"F8_E4M3", 1},
    [LSC_ST_F8_E5M2] = {"F8_E5M2", 1}, [LSC_ST_I16] = {"I16", 2},
    [LSC_ST_U16] = {"U16", 2},         [LSC_ST_F16] = {"F16", 2},
    [LSC_ST_BF16] = {"BF16", 2},       [LSC_ST_I32] = {"I32", 4},
    [LSC_ST_U32] = {"U32", 4},         [LSC_ST_F32] = {"F32", 4},
    [LSC_ST_I64] = {"I64", 8},         [LSC_ST_U64] = {"U64", 8},
    [LSC_ST_F64] = {"F64", 8},
};

const char *lsc_st_dtype_name(lsc_st_dtype dtype) {
    return (unsigned)dtype < LSC_ST_N_DTYPES ? dtypes[dtype].name : "?";
}

size_t lsc_st_dtype_size(lsc_st_dtype dtype) {
    return (unsigned)dtype < LSC_ST_N_DTYPES ? dtypes[dtype].size : 0;
}

char *lsc_shape_str(const int64_t *shape, int n_dims, char *buf, size_t size) {
    size_t k = 0;
    k += (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < n_dims && k < size; i++)
        k += (size_t)snprintf(buf + k, size - k, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (k < size) snprintf(buf + k, size - k, "]");
    return buf;
}

/* IEEE half -> float, exact for every value (subnormals, inf, nan). */
static float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13);
    } else if (exp == 0) {
        float f = ldexpf((float)man, -24);
        return sign ? -f : f;
    } else {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

bool lsc_st_to_f32(lsc_st_dtype dtype, const void *src, size_t n, float *dst) {
    const uint8_t *s = src;
    switch (dtype) {
    case LSC_ST_F32:
        memcpy(dst, s, n * 4);
        return true;
    case LSC_ST_F16:
        for (size_t i = 0; i < n; i++) dst[i] = half_to_float((uint16_t)(s[2 * i] | s[2 * i + 1] << 8));
        return true;
    case LSC_ST_BF16:
        for (size_t i = 0; i < n; i++) {
            uint32_t bits = (uint32_t)(s[2 * i] | s[2 * i + 1] << 8) << 16;
            memcpy(&dst[i], &bits, 4);
        }
        return true;
    case LSC_ST_F64:
        for (size_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, s + 8 * i, 8);
            dst[i] = (float)d;
        }
        return true;
    default:
        return false;
    }
}

void lsc_st_close(lsc_st_file *f) {
    if (!f) return;
    if (f->region) munmap(f->region, f->region_size);
    for (size_t i = 0; i < f->n_tensors; i++) free(f->tensors[i].name);
    free(f->tensors);
    for (size_t i = 0; i < f->n_meta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_values[i]);
    }
    free(f->meta_keys);
    free(f->meta_values);
    free(f->path);
    free(f);
}

static int cmp_tensor_name(const void *a, const void *b) {
    return strcmp(((const lsc_st_tensor *)a)->name, ((const lsc_st_tensor *)b)->name);
}

static int cmp_tensor_offset(const void *a, const void *b) {
    const lsc_st_tensor *x = *(const lsc_st_tensor *const *)a, *y = *(const lsc_st_tensor *const *)b;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    return x->n_bytes < y->n_bytes ? -1 : x->n_bytes > y->n_bytes;
}

/* Reads a JSON number that must be a non-negative integer exactly representable
 * in a double (below 2^53). */
static bool json_uint(const cJSON *j, uint64_t *out) {
    if (!cJSON_IsNumber(j)) return false;
    double d = j->valuedouble;
    if (!(d >= 0 && d < 9007199254740992.0) || d != floor(d)) return false;
    *out = (uint64_t)d;
    return true;
}

/* Parses one tensor entry {"dtype":..., "shape":[...], "data_offsets":[b, e]}
 * into t (whose name is already set). */
static lsc_status parse_tensor(const char *path, const cJSON *entry, size_t data_size,
                               lsc_st_tensor *t, lsc_error *err) {
    if (!cJSON_IsObject(entry))
        return lsc_fail(err, LSC_ERR_FORMAT, "%s: tensor '%s': header entry is not an object",
                        path, t->name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(entry, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(entry, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(entry, "data_offsets");
    if (!cJSON_IsString(dt))
        return lsc_fail(err, LSC_ERR_FORMAT, "%s: tensor '%s': missing or non-string \"dtype\"",
                        path, t->name);
    int found = -1;
    for (int i = 0; i < LSC_ST_N_DTYPES; i++)
        if (!strcmp(dt->valuestring, dtypes[i].name)) found = i;
    if (found < 0)
        return lsc_fail(err, LSC_ERR_FORMAT, "%s: tensor '%s': unknown dtype \"%.40s\"", path,
                        t->name, dt->valuestring);
    t->dtype = (lsc_st_dtype)found;
    if (!cJSON_IsArray(shape))
        return lsc_fail(err, LSC_ERR_FORMAT, "%s: tensor '%s': missing or non-array \"shape\"",
                        path, t->name);
    int nd = cJSON_GetArraySize(shape);
    if (nd > LSC_ST_MAX_DIMS)
        return lsc_fail(err, LSC_ERR_FORMAT, "%s: tensor '%s': %d dimensions (at most %d)", path,
                        t->name, nd, LSC_ST_MAX_DIMS);
    t->n_dims = nd;
    size_t count = 1;
    bool overflow = false;
    for (int i = 0; i < nd; i++) {
        uint64_t v;
        if (!json_uint(cJSON_GetArrayItem(shape, i), &v))
            return lsc_fail(err, LSC_ERR_FORMAT,
                            "%s: tensor '%s': shape[%d] is not a non-negative integer", path,
                            t->name, i);
        t->shape[i] = (int64_t)v;
        if (!lsc_mul_size(count, (size_t)v, &count)) overflow = true;
    }
    size_t nbytes;
    if (overflow || !lsc_mul_size(count, dtypes[found].size, &nbytes))
        return lsc_fail(err, LSC_ERR_FORMAT, "%s: tensor '%s': shape is too large", path, t->name);
    t->n_elements = count;
    t->n_bytes = nbytes;
    uint64_t b, e;
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 ||
        !json_uint(cJSON_GetArrayItem(offs, 0), &b) || !json_uint(cJSON_GetArrayItem(offs, 1), &e))
        return lsc_fail(err, LSC_ERR_FORMAT,
                        "%s: tensor '%s': \"data_offsets\" is not [begin, end] in bytes", path,
                        t->name);
    if (b > e || e > data_size)
        return lsc_fail(err, LSC_ERR_FORMAT,
                        "%s: tensor '%s': data_offsets [%llu, %llu] outside the data section "
                        "of %zu bytes (truncated file?)",
                        path, t->name, (unsigned long long)b, (unsigned long long)e, data_size);
    if (e - b != nbytes) {
        char sb[128];
        return lsc_fail(err, LSC_ERR_FORMAT,
                        "%s: tensor '%s': %s %s needs %zu bytes but data_offsets [%llu, %llu] "
                        "hold %llu",
                        path, t->name, dtypes[found].name, lsc_shape_str(t->shape, nd, sb, sizeof sb),
                        nbytes, (unsigned long long)b, (unsigned long long)e,
                        (unsigned long long)(e - b));
    }
    t->offset = (size_t)b;
    return LSC_OK;
}

/* Parses the JSON header text into f->tensors and f->meta_*. */
static lsc_status parse_header(lsc_st_file *f, const char *json, size_t len, lsc_error *err) {
    const char *path = f->path;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (!root) return lsc_fail(err, LSC_ERR_FORMAT, "%s: header is not valid JSON", path);
    lsc_status st = LSC_OK;
    for (; end && end < json + len; end++) /* the format allows trailing spaces */
        if (*end != ' ') {
            st = lsc_fail(err, LSC_ERR_FORMAT, "%s: header has bytes after its JSON object", path);
            goto done;
        }
    if (!cJSON_IsObject(root)) {
        st = lsc_fail(err, LSC_ERR_FORMAT, "%s: header is not a JSON object", path);
        goto done;
    }
    size_t n = 0;
    for (cJSON *it = root->child; it; it = it->next)
        if (strcmp(it->string, "__metadata__") != 0) n++;
    f->tensors = calloc(n ? n : 1, sizeof *f->tensors);
    if (!f->tensors) {
        st = lsc_fail(err, LSC_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    for (cJSON *it = root->child; it; it = it->next) {
        if (!strcmp(it->string, "__metadata__")) {
            if (f->meta_keys) {
                st = lsc_fail(err, LSC_ERR_FORMAT, "%s: duplicate __metadata__", path);
                goto done;
            }
            if (!cJSON_IsObject(it)) {
                st = lsc_fail(err, LSC_ERR_FORMAT, "%s: __metadata__ is not an object", path);
                goto done;
            }
            size_t m = (size_t)cJSON_GetArraySize(it);
            f->meta_keys = calloc(m ? m : 1, sizeof(char *));
            f->meta_values = calloc(m ? m : 1, sizeof(char *));
            if (!f->meta_keys || !f->meta_values) {
                st = lsc_fail(err, LSC_ERR_NOMEM, "%s: out of memory", path);
                goto done;
            }
            for (cJSON *kv = it->child; kv; kv = kv->next) {
                if (!cJSON_IsString(kv)) {
                    st = lsc_fail(err, LSC_ERR_FORMAT,
                                  "%s: __metadata__ value for '%s' is not a string", path,
                                  kv->string);
                    goto done;
                }
                f->meta_keys[f->n_meta] = strdup(kv->string);
                f->meta_values[f->n_meta] = strdup(kv->valuestring);
                f->n_meta++;
                if (!f->meta_keys[f->n_meta - 1] || !f->meta_values[f->n_meta - 1]) {
                    st = lsc_fail(err, LSC_ERR_NOMEM, "%s: out of memory", path);
                    goto done;
                }
            }
            continue;
        }
        lsc_st_tensor *t = &f->tensors[f->n_tensors];
        t->name = strdup(it->string);
        if (!t->name) {
            st = lsc_fail(err, LSC_ERR_NOMEM, "%s: out of memory", path);
            goto done;
        }
        f->n_tensors++;
        st = parse_tensor(path, it, f->data_size, t, err);
        if (st) goto done;
        t->data = f->data_section + t->offset;
    }
    qsort(f->tensors, f->n_tensors, sizeof *f->tensors, cmp_tensor_name);
    for (size_t i = 1; i < f->n_tensors; i++)
        if (!strcmp(f->tensors[i - 1].name, f->tensors[i].name)) {
            st = lsc_fail(err, LSC_ERR_FORMAT, "%s: tensor '%s' appears twice in the header", path,
                          f->tensors[i].name);
            goto done;
        }
    /* no two non-empty tensors may share bytes */
    lsc_st_tensor **by_off = malloc((f->n_tensors ? f->n_tensors : 1) * sizeof *by_off);
    if (!by_off) {
        st = lsc_fail(err, LSC_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    size_t k = 0;
    for (size_t i = 0; i < f->n_tensors; i++)
        if (f->tensors[i].n_bytes) by_off[k++] = &f->tensors[i];
    qsort(by_off, k, sizeof *by_off, cmp_tensor_offset);
    for (size_t i = 1; i < k; i++)
        if (by_off[i]->offset < by_off[i - 1]->offset + by_off[i - 1]->n_bytes) {
            st = lsc_fail(err, LSC_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap in the data section",
                          path, by_off[i - 1]->name, by_off[i]->name);
            break;
        }
    free(by_off);
done:
    cJSON_Delete(root);
    return st;
}

/* Reads the open file fd of `size` bytes into anonymous memory aligned to
 * 2 MiB and advised into huge pages (f->map inside f->region). */
#define HUGE_PAGE ((size_t)2 << 20)
static lsc_status read_into_memory(lsc_st_file *f, int fd, size_t size, lsc_error *err) {
    size_t region;
    if (!lsc_add_size(size, HUGE_PAGE, &region))
        return lsc_fail(err, LSC_ERR_NOMEM, "%s: %zu bytes is too large", f->path, size);
    void *r = mmap(NULL, region, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (r == MAP_FAILED)
        return lsc_fail(err, LSC_ERR_NOMEM, "%s: cannot allocate %zu bytes to read it into: %s",
                        f->path, size, strerror(errno));
    f->region = r;
    f->region_size = region;
    f->map = (void *)(((uintptr_t)r + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
    (void)madvise(f->map, size, MADV_HUGEPAGE); /* a hint: small pages work too */
    for (size_t done = 0; done < size;) {
        ssize_t n = pread(fd, (char *)f->map + done, size - done > ((size_t)1 << 30) ? (size_t)1 << 30 : size - done, (off_t)done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0)
            return lsc_fail(err, LSC_ERR_IO, "%s: read failed: %s", f->path, strerror(errno));
        if (n == 0)
            return lsc_fail(err, LSC_ERR_IO, "%s: the file ended at %zu of %zu bytes while being read (changed on disk?)",
                            f->path, done, size);
        done += (size_t)n;
    }
    /* read-only from now on, as the mapping is */
    if (mprotect(f->region, f->region_size, PROT_READ) != 0)
        return lsc_fail(err, LSC_ERR_IO, "%s: mprotect failed: %s", f->path, strerror(errno));
    return LSC_OK;
}

lsc_status lsc_st_open(const char *path, bool in_memory, lsc_st_file **out, lsc_error *err) {
    *out = NULL;
    lsc_st_file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        free(f);
        return lsc_fail(err, LSC_ERR_NOMEM, "%s: out of memory", path);
    }
    lsc_status st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        st = lsc_fail(err, errno == ENOENT ? LSC_ERR_NOT_FOUND : LSC_ERR_IO, "%s: %s", path,
                      strerror(errno));
        goto fail;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        st = lsc_fail(err, LSC_ERR_IO, "%s: not a regular file", path);
        goto fail;
    }
    if (sb.st_size < 8) {
        close(fd);
        st = lsc_fail(err, LSC_ERR_FORMAT,
                      "%s: %lld bytes is too short for a safetensors file (truncated?)", path,
                      (long long)sb.st_size);
        goto fail;
    }
    f->map_size = (size_t)sb.st_size;
    if (in_memory) {
        st = read_into_memory(f, fd, f->map_size, err);
        close(fd);
        if (st) goto fail;
    } else {
        f->map = mmap(NULL, f->map_size, PROT_READ, MAP_PRIVATE, fd, 0);
        close(fd);
        if (f->map == MAP_FAILED) {
            f->map = NULL;
            st = lsc_fail(err, LSC_ERR_IO, "%s: mmap failed: %s", path, strerror(errno));
            goto fail;
        }
        /* A hint: pages the kernel reads in for this mapping come in 2 MiB
         * folios where the file system allows it, mapped with one TLB entry
         * each. Over pages cached in 4 KiB folios (a file read long ago) a
         * 1-thread decode streams its weights ~1.1x slower (bench/README.md,
         * "The page cache's folios"); small pages work too. */
        (void)madvise(f->map, f->map_size, MADV_HUGEPAGE);
        f->region = f->map;
        f->region_size = f->map_size;
    }
    const uint8_t *p = f->map;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | p[i];
    if (hlen > LSC_ST_MAX_HEADER) {
        st = lsc_fail(err, LSC_ERR_FORMAT,
                      "%s: header length %llu is more than the limit of %u bytes (corrupt file?)",
                      path, (unsigned long long)hlen, LSC_ST_MAX_HEADER);
        goto fail;
    }
    if (hlen > f->map_size - 8) {
        st = lsc_fail(err, LSC_ERR_FORMAT,
                      "%s: header length %llu is beyond the end of the %zu-byte file (truncated?)",
                      path, (unsigned long long)hlen, f->map_size);
        goto fail;
    }
    if (hlen < 2 || p[8] != '{') {
        st = lsc_fail(err, LSC_ERR_FORMAT, "%s: header does not start with '{'", path);
        goto fail;
    }
    f->data_section = p + 8 + hlen;
    f->data_size = f->map_size - 8 - (size_t)hlen;
    st = parse_header(f, (const char *)p + 8, (size_t)hlen, err);
    if (st) goto fail;
    *out = f;
    return LSC_OK;
fail:
    lsc_st_close(f);
    return st;
}

const lsc_st_tensor *lsc_st_find(const lsc_st_file *f, const char *name) {
    lsc_st_tensor key = {.name = (char *)name};
    return bsearch(&key, f->tensors, f->n_tensors, sizeof key, cmp_tensor_name);
}

const char *lsc_st_metadata(const lsc_st_file *f, const char *key) {
    for (size_t i = 0; i < f->n_meta; i++)
        if (!strcmp(f->meta_keys[i], key)) return f->meta_values[i];
    return NULL;
}

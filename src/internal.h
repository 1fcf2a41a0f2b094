/* internal.h - helpers shared by the library's modules (not public). */
#ifndef LSC_INTERNAL_H
#define LSC_INTERNAL_H

#include "logitscope.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define LSC_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define LSC_PRINTF(f, a)
#endif

/* Fills `err` (which may be NULL) with `status` and a formatted one-line
 * message, and returns `status`, so callers can write
 * `return lsc_fail(err, LSC_ERR_FORMAT, "%s: bad header", path);`. */
lsc_status lsc_fail(lsc_error *err, lsc_status status, const char *fmt, ...)
    LSC_PRINTF(3, 4);

/* Overflow-checked size arithmetic: false when the result does not fit. */
static inline bool lsc_mul_size(size_t a, size_t b, size_t *out) {
    return !__builtin_mul_overflow(a, b, out);
}
static inline bool lsc_add_size(size_t a, size_t b, size_t *out) {
    return !__builtin_add_overflow(a, b, out);
}

/* Joins a folder and a file name into a new string (free with free()); NULL
 * when out of memory. */
char *lsc_path_join(const char *dir, const char *name);

/* Reads a whole file (at most `max_bytes`) into a NUL-terminated buffer that
 * the caller frees. */
lsc_status lsc_read_file(const char *path, size_t max_bytes, char **data, size_t *len,
                         lsc_error *err);

/* Testing hooks of the tokenizer (tests/unit/test_tokenizer.c): pieces of at
 * least `n` bytes use the heap BPE, shorter ones the plain scan (n = 0: heap
 * always, INT_MAX: scan always); and the piece cache on or off. */
void lsc_tokenizer_set_bpe_heap_threshold(lsc_tokenizer *tok, int n);
void lsc_tokenizer_set_cache(lsc_tokenizer *tok, bool on);

#endif

/* safetensors.h - read-only access to a .safetensors file (not public).
 *
 * The file is mmap'd read-only; the header (8-byte little-endian length, then
 * a JSON object) is validated against the format's rules before anything is
 * returned: dtypes known, shapes non-negative with a byte count that matches
 * the offsets, offsets inside the data section, no two tensors overlapping,
 * `__metadata__` a string -> string map, the header at most 100 MB. Tensor
 * data pointers point into the mapping and may be unaligned (the data section
 * starts at byte 8 + header length, whatever that is).
 */
#ifndef LSC_SAFETENSORS_H
#define LSC_SAFETENSORS_H

#include "internal.h"

#define LSC_ST_MAX_HEADER (100u * 1000u * 1000u) /* bytes of JSON header */
#define LSC_ST_MAX_DIMS 8

typedef enum lsc_st_dtype {
    LSC_ST_BOOL, LSC_ST_U8, LSC_ST_I8, LSC_ST_F8_E4M3, LSC_ST_F8_E5M2,
    LSC_ST_I16, LSC_ST_U16, LSC_ST_F16, LSC_ST_BF16,
    LSC_ST_I32, LSC_ST_U32, LSC_ST_F32,
    LSC_ST_I64, LSC_ST_U64, LSC_ST_F64,
    LSC_ST_N_DTYPES
} lsc_st_dtype;

typedef struct lsc_st_tensor {
    char *name;
    lsc_st_dtype dtype;
    int n_dims;
    int64_t shape[LSC_ST_MAX_DIMS];
    size_t n_elements;
    size_t n_bytes;
    size_t offset;    /* from the start of the data section */
    const void *data; /* into the mapping; any alignment */
} lsc_st_tensor;

typedef struct lsc_st_file {
    char *path;
    void *map;       /* the file's bytes: its mapping, or a copy in memory */
    size_t map_size;
    void *region;    /* what lsc_st_close unmaps (the copy: map, aligned inside) */
    size_t region_size;
    const uint8_t *data_section; /* map + 8 + header length */
    size_t data_size;
    lsc_st_tensor *tensors; /* sorted by name */
    size_t n_tensors;
    char **meta_keys; /* `__metadata__`, in file order */
    char **meta_values;
    size_t n_meta;
} lsc_st_file;

/* Maps (in_memory: reads into anonymous memory, 2 MiB aligned and advised
 * into huge pages) and validates `path`. On success *out owns the bytes and
 * the parsed header; free with lsc_st_close(). On failure *out is NULL and
 * `err` names the file and what is wrong with it. */
lsc_status lsc_st_open(const char *path, bool in_memory, lsc_st_file **out, lsc_error *err);

/* Unmaps and frees everything; NULL is fine. */
void lsc_st_close(lsc_st_file *f);

/* The tensor called `name`, or NULL. Valid as long as the file. */
const lsc_st_tensor *lsc_st_find(const lsc_st_file *f, const char *name);

/* The metadata value for `key`, or NULL. */
const char *lsc_st_metadata(const lsc_st_file *f, const char *key);

/* "F32", "BF16", ... (static text). */
const char *lsc_st_dtype_name(lsc_st_dtype dtype);

/* Bytes per element of a dtype. */
size_t lsc_st_dtype_size(lsc_st_dtype dtype);

/* Converts `n` elements of a tensor with dtype F32, F16, BF16 or F64 at `src`
 * (any alignment) into float32 at `dst`. Returns false for other dtypes. */
bool lsc_st_to_f32(lsc_st_dtype dtype, const void *src, size_t n, float *dst);

/* Formats a shape as "[768, 2304]" into buf. Returns buf. */
char *lsc_shape_str(const int64_t *shape, int n_dims, char *buf, size_t size);

#endif

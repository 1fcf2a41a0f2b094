/* npy.h - writing NumPy .npy files (float32, C order), atomically. */
#ifndef LSC_NPY_H
#define LSC_NPY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define NPY_MAX_DIMS 8

/* Formats the .npy (version 1.0) header for a little-endian float32 array of
 * `shape` into buf (padded with spaces to a multiple of 64 bytes, ending in
 * '\n'). Returns its length, or 0 when it does not fit in `cap`. */
size_t npy_header_f32(char *buf, size_t cap, const int64_t *shape, int n_dims);

/* Writes header + data of a float32 array to the open stream `f`; false on a
 * write error. */
bool npy_fwrite_f32(FILE *f, const float *data, const int64_t *shape, int n_dims);

/* Writes the array to `path` through a temporary file in the same folder
 * renamed into place, so `path` is either the whole new file or untouched.
 * On failure prints one line with cli_error() and returns false. */
bool npy_save_f32(const char *path, const float *data, const int64_t *shape, int n_dims);

/* Opens a temporary file next to `path` for an atomic write; *tmp_path
 * receives its name (free with free()). NULL (after printing the error) on
 * failure. Finish with atomic_commit() or atomic_abort(). */
FILE *atomic_open(const char *path, char **tmp_path);

/* Closes `f` and renames tmp_path over path; on any error removes tmp_path,
 * prints the error and returns false. Frees tmp_path either way. */
bool atomic_commit(FILE *f, char *tmp_path, const char *path);

/* Closes `f`, removes tmp_path and frees it. */
void atomic_abort(FILE *f, char *tmp_path);

#endif

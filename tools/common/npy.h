/* npy.h - writing and reading NumPy .npy files (float32, C order) and .npz
 * archives of them; writing atomically. */
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
 * receives its name (free with free()). A symbolic link is followed to the
 * regular file it names (the link stays). A `path` that is a device, FIFO or
 * fd link (/dev/full, /dev/stdout) is opened in place instead, with *tmp_path
 * NULL: renaming over it would replace the device. NULL (after printing the
 * error) on failure. Finish with atomic_commit() or atomic_abort(). */
FILE *atomic_open(const char *path, char **tmp_path);

/* Closes `f` and renames tmp_path over path; on any error removes tmp_path,
 * prints the error and returns false. Frees tmp_path either way. */
bool atomic_commit(FILE *f, char *tmp_path, const char *path);

/* Closes `f`, removes tmp_path and frees it. */
void atomic_abort(FILE *f, char *tmp_path);

/* A float32 array read from a .npy file: data is [shape[0], ..., shape[n_dims-1]]
 * row-major; free data with free(). */
typedef struct npy_array {
    float *data;
    int n_dims;
    int64_t shape[NPY_MAX_DIMS];
    size_t count; /* number of elements */
} npy_array;

/* Reads `path` (format version 1, 2 or 3; dtype '<f4', or '<f8' converted to
 * float; C order; at most NPY_MAX_DIMS dimensions; at most `max_bytes` of data)
 * into *out. On failure returns -1 with a one-line message in `err` and leaves
 * *out zeroed. */
int npy_read_f32(const char *path, size_t max_bytes, npy_array *out, char *err, size_t err_len);

/* ---- .npz: zip archives of .npy members (what numpy.savez writes) ---- */

/* The arrays of an .npz read into memory: keys[i] is the member's name
 * without ".npy" (numpy.load's key), arrays[i] its data. Free with npz_free. */
typedef struct npz_file {
    size_t n;
    char **keys;
    npy_array *arrays;
} npz_file;

/* Reads every member of the .npz at `path` as npy_read_f32 reads a .npy
 * (float32 or float64, at most `max_bytes` in all). Only stored (uncompressed)
 * members are accepted: numpy.savez_compressed files, zip64 archives (over
 * 4 GiB), encrypted or multi-disk ones are refused with a message saying so;
 * every offset, size and CRC is checked. On failure returns -1 with a
 * one-line message in `err` and leaves *out zeroed. */
int npz_read_f32(const char *path, size_t max_bytes, npz_file *out, char *err, size_t err_len);
void npz_free(npz_file *z);

/* The array stored under `key`, or NULL; valid until npz_free. */
const npy_array *npz_find(const npz_file *z, const char *key);

/* Writing an .npz atomically: npz_open, npz_add_f32 for each array, then
 * npz_commit (or npz_abort). Members are stored uncompressed; the archive
 * must stay under 4 GiB. Each call prints its error with cli_error() and
 * returns NULL/false on failure; after a failed npz_add_f32, call npz_abort. */
typedef struct npz_writer npz_writer;
npz_writer *npz_open(const char *path);
bool npz_add_f32(npz_writer *w, const char *key, const float *data, const int64_t *shape,
                 int n_dims);
/* Writes the zip directory and renames the file into place; frees `w`. */
bool npz_commit(npz_writer *w);
/* Removes the temporary file and frees `w` (NULL is fine). */
void npz_abort(npz_writer *w);

#endif

/* safetensors files with a string-to-string
 * __metadata__ map, read and written with cJSON. Writes go to a temporary
 * name and are renamed into place, so a crash never leaves a file that looks
 * complete. */
#ifndef EWA_SAFETENSORS_H
#define EWA_SAFETENSORS_H
#include <stdint.h>
#include <stddef.h>
#include "err.h"

#define ST_MAX_DIMS 8

typedef struct {
    char *name;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    size_t numel;
    float *data;        /* owned by the StFile when read; borrowed when writing */
    char dtype[8];      /* read: the file's dtype ("F32", "F16" or "BF16"; data is
                           always widened to float); ignored when writing (F32) */
} StTensor;

typedef struct {
    int n_tensors;
    StTensor *tensors;
    int n_meta;
    char **meta_keys, **meta_vals;
} StFile;

/* Writes tensors in the given order (as F32) plus metadata. */
int st_write(const char *path, const StTensor *tensors, int n_tensors,
             const char *const *meta_keys, const char *const *meta_vals, int n_meta,
             Err *err);

/* Reads a whole file. Enforces every rule of the format (huggingface
 * safetensors), naming the file and the problem: the 8-byte length and a
 * header no longer than the file; the header is valid UTF-8 and one JSON
 * object with only JSON whitespace (space, tab, LF, CR) around it (no
 * byte-order mark, no control bytes); tensor names unique and not cut by a
 * \u0000 escape; dtype F32, F16 or BF16; shape non-negative integers whose
 * byte count (numel * element size) equals end - begin of data_offsets; the
 * offsets, sorted, tile the data area exactly: the first begins at 0, each
 * begins where the previous ended (no gap, no overlap), the last ends at the
 * end of the file (no trailing bytes); __metadata__ maps strings to strings.
 * F16 (IEEE half) and BF16 (bfloat16) tensors are widened to float exactly
 * (every value of both is a float; subnormals, inf and NaN included);
 * t->dtype keeps the file's dtype. */
int st_read(const char *path, StFile *out, Err *err);

const StTensor *st_find(const StFile *f, const char *name);
const char *st_meta(const StFile *f, const char *key);   /* NULL if absent */
void st_free(StFile *f);

#endif

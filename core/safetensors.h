/* safetensors files (float32 tensors only) with a string-to-string
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
} StTensor;

typedef struct {
    int n_tensors;
    StTensor *tensors;
    int n_meta;
    char **meta_keys, **meta_vals;
} StFile;

/* Writes tensors in the given order plus metadata. */
int st_write(const char *path, const StTensor *tensors, int n_tensors,
             const char *const *meta_keys, const char *const *meta_vals, int n_meta,
             Err *err);

/* Reads a whole file. Rejects, naming the file and the problem: a file shorter
 * than its header length, a header that is not a JSON object, a dtype other
 * than F32, bad shapes, data_offsets out of order, overlapping, outside the
 * data area or inconsistent with the shape. */
int st_read(const char *path, StFile *out, Err *err);

const StTensor *st_find(const StFile *f, const char *name);
const char *st_meta(const StFile *f, const char *key);   /* NULL if absent */
void st_free(StFile *f);

#endif

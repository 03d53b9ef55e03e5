/* Model checkpoints: safetensors with timm names (DESIGN 4). */
#ifndef EWA_CHECKPOINT_H
#define EWA_CHECKPOINT_H
#include "safetensors.h"
#include "vit.h"

/* Writes every model tensor under its timm name plus metadata, atomically. */
int vit_save(const ViT *m, const char *path, int n_meta, const char *const *keys,
             const char *const *vals, Err *err);

/* Copies the tensors of f into the model. Every model tensor must be present
 * with the model's shape, except those whose name starts with one of the
 * n_skip prefixes in skip (left as they are; e.g. "head." when the head is
 * re-initialised). Tensors in f that the model does not have are an error.
 * Errors name origin (the file) and the tensor. */
int vit_load_tensors(ViT *m, const StFile *f, const char *origin,
                     int n_skip, const char *const *skip, Err *err);

#endif

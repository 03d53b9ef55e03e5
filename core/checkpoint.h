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

/* Fine-tuning by upcycling (DESIGN 2.7): like vit_load_tensors, but a model
 * MoE tensor blocks.{i}.mlp.experts.{e}.X or blocks.{i}.mlp.shared.X that f
 * lacks is copied from the dense blocks.{i}.mlp.X of f, so every expert (and
 * the shared expert) starts as the checkpoint's FFN; a router missing from f
 * keeps its fresh initialisation. A file that already holds the model's
 * tensors (an MoE checkpoint of the same shape) loads as it is.
 * *n_upcycled receives the number of tensors filled from a dense FFN. */
int vit_load_upcycle(ViT *m, const StFile *f, const char *origin, int n_skip,
                     const char *const *skip, int *n_upcycled, Err *err);

#endif

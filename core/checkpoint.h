/* Model checkpoints: safetensors with timm names (docs/DESIGN.md 8.4). */
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

/* Fine-tuning by upcycling (docs/DESIGN.md 2.7): like vit_load_tensors, but a model
 * MoE tensor blocks.{i}.mlp.experts.{e}.X or blocks.{i}.mlp.shared.X that f
 * lacks is copied from the dense blocks.{i}.mlp.X of f, so every expert (and
 * the shared expert) starts as the checkpoint's FFN; a router missing from f
 * keeps its fresh initialisation. A file that already holds the model's
 * tensors (an MoE checkpoint of the same shape) loads as it is.
 * *n_upcycled receives the number of tensors filled from a dense FFN. */
int vit_load_upcycle(ViT *m, const StFile *f, const char *origin, int n_skip,
                     const char *const *skip, int *n_upcycled, Err *err);

/* Fine-tuning from a timm-layout image checkpoint of another shape (what
 * timm's checkpoint_filter_fn does when it loads such weights), in place on
 * f before vit_load_tensors / vit_load_upcycle:
 *  - pos_embed [1, 1+gh*gw, D] -> [1, m->T, D]: the class token's row is
 *    kept, the patch grid resampled bicubically (core/resample.h) from gh x gw
 *    to the model's grid. The source grid is H/P x W/P of the metadata
 *    input_shape "C,H,W" when it fits, else square (timm's assumption).
 *  - patch_embed.proj.weight [D, Cs, P, P] -> [D, C, P, P] (timm's
 *    adapt_input_conv): C == 1 sums over the Cs channels, so the model sees a
 *    grey image exactly as the source model saw it replicated into every
 *    channel (a mean would scale every patch embedding by 1/Cs); C > 1 repeats
 *    the source channels cyclically and scales by Cs / C, which keeps the
 *    response to an input equal in every channel.
 *  - F16/BF16 tensors were already widened by st_read; they are counted.
 * A different patch size or embedding width is an error naming the tensor
 * (this resamples neither patch kernels nor widths). report (n bytes) gets
 * one line saying what was adapted, or "" if nothing was. */
int vit_adapt_checkpoint(const ViT *m, StFile *f, const char *origin, char *report, size_t n, Err *err);

/* The keyword arguments of timm's VisionTransformer that build a model whose
 * state_dict loads this model's checkpoint with strict=True, as one JSON
 * object (the `timm_kwargs` checkpoint metadata), e.g.
 *   {"img_size":[28,28],"patch_size":4,"in_chans":1,"num_classes":10,
 *    "global_pool":"avg","fc_norm":true,"embed_dim":96,"depth":4,
 *    "num_heads":3,"mlp_ratio":4,"qkv_bias":true,"class_token":true}
 * pool: cls -> global_pool 'token'; mean -> 'avg' with fc_norm false; avg ->
 * 'avg' with fc_norm true (timm's default). Everything else is timm's
 * default (LayerNorm eps 1e-6, exact GELU). Returns 0 with the JSON in buf,
 * or 1 (buf empty) when the model has no timm VisionTransformer equivalent:
 * point clouds, or MoE layers (an ewa/rmoe model is saved collapsed, dense).
 * Source of the argument names: timm/models/vision_transformer.py. */
int vit_timm_kwargs(const ViTDims *d, char *buf, size_t n);

#endif

/* Vision Transformer (DESIGN 2.1, timm conventions). Parameters, gradients,
 * AdamW moments and activations each live in one contiguous allocation;
 * named views into them are built by one layout walk (vit.c: layout_params),
 * which also yields the table of timm-named tensors used for checkpoints,
 * weight decay and initialisation. */
#ifndef EWA_VIT_H
#define EWA_VIT_H
#include <stddef.h>
#include <stdint.h>
#include "err.h"

#define VIT_MAX_DEPTH 64
#define VIT_NAME_LEN 96

typedef struct {
    int in_c, in_h, in_w;   /* image shape (C,H,W) */
    int patch;              /* P: H and W are multiples of P */
    int dim, depth, heads;  /* D, number of blocks, NH (D % NH == 0) */
    int hidden;             /* FFN width H = dim * mlp_ratio */
    int classes;            /* K */
    int pool_mean;          /* 0: class token, 1: mean of patch tokens */
} ViTDims;

typedef struct {
    char name[VIT_NAME_LEN];
    int ndim;
    int shape[4];
    size_t numel, offset;   /* offset in floats into the parameter block */
    int decay;              /* AdamW weight decay applies (matrices only) */
} ParamSpec;

typedef struct { float *fc1_w, *fc1_b, *fc2_w, *fc2_b; } FFNW;   /* (H,D),(H),(D,H),(D) */

typedef struct {
    float *ln1_w, *ln1_b;          /* (D) */
    float *qkv_w, *qkv_b;          /* (3D,D), (3D) */
    float *proj_w, *proj_b;        /* (D,D), (D) */
    float *ln2_w, *ln2_b;          /* (D) */
    FFNW mlp;
} BlockW;

typedef struct {
    float *patch_w, *patch_b;      /* (D, C*P*P) == timm (D,C,P,P), (D) */
    float *cls, *pos;              /* (D), (T,D) */
    BlockW blocks[VIT_MAX_DEPTH];
    float *norm_w, *norm_b;        /* (D) */
    float *head_w, *head_b;        /* (K,D), (K) */
} ViTW;

/* Saved activations of one block, each for N = B*T rows. */
typedef struct {
    float *ln1, *ln1_mean, *ln1_rstd;  /* (N,D), (N), (N) */
    float *qkv;                        /* (N,3D) */
    float *att;                        /* (B,NH,T,T) softmax probabilities */
    float *attout;                     /* (N,D) before proj */
    float *res1;                       /* (N,D) x + attn(...) */
    float *ln2, *ln2_mean, *ln2_rstd;
    float *fc1, *gelu;                 /* (N,H) */
    float *res2;                       /* (N,D) block output */
} BlockActs;

typedef struct {
    float *patches;                    /* (B,Np,C*P*P) */
    float *emb;                        /* (B,Np,D) patch embeddings */
    float *x0;                         /* (B,T,D) tokens entering block 0 */
    BlockActs blocks[VIT_MAX_DEPTH];
    float *lnf, *lnf_mean, *lnf_rstd;  /* final norm */
    float *pooled;                     /* (B,D) */
    float *logits, *probs, *losses;    /* (B,K), (B,K), (B) */
} ViTActs;

/* Gradient scratch for backward (activation gradients, reused per block). */
typedef struct {
    float *dres;       /* (N,D) gradient of the residual stream */
    float *dd;         /* (N,D) */
    float *dqkv;       /* (N,3D) */
    float *dh1, *dh2;  /* (N,H) */
    float *dpooled, *dlogits;  /* (B,D), (B,K) */
} ViTScratch;

typedef struct {
    ViTDims d;
    int T, Np, max_batch;
    int n_params;                  /* number of tensors */
    ParamSpec *specs;
    size_t num_params;             /* floats */
    float *params, *grads, *adam_m, *adam_v;   /* one block each */
    ViTW w, g;                     /* views into params and grads */
    float *act_mem; size_t act_floats;
    ViTActs a;
    float *scratch_mem; ViTScratch s;
    int *labels;                   /* (max_batch) copy of the last batch's y */
    float label_smoothing;
    int batch;                     /* B of the last forward */
} ViT;

/* Fills d from the model keys; returns ERR_USAGE naming the problem if the
 * image shape does not divide into patches. */
int vit_dims(ViTDims *d, int in_c, int in_h, int in_w, int patch, int dim, int depth,
             int heads, float mlp_ratio, int classes, int pool_mean, Err *err);

int vit_init(ViT *m, const ViTDims *d, int max_batch, Err *err);
void vit_free(ViT *m);

/* timm's default initialisation, from a seed: Linear weights trunc_normal
 * std .02, biases 0, LayerNorm 1/0, pos_embed trunc_normal .02, cls_token
 * normal 1e-6, patch projection as PyTorch's Conv2d default
 * U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias. */
void vit_init_weights(ViT *m, uint64_t seed);

/* img (B,C,H,W) normalised. If y is non-NULL computes the mean
 * cross-entropy (with m->label_smoothing) and returns it; else returns 0.
 * Logits are in m->a.logits. B <= max_batch. */
float vit_forward(ViT *m, const float *img, const int *y, int B);

void vit_zero_grad(ViT *m);
/* Gradient of the mean loss of the last forward (which must have had y),
 * accumulated into m->grads. */
void vit_backward(ViT *m);

const ParamSpec *vit_find_param(const ViT *m, const char *name);
/* Forward FLOPs per image (2 per multiply-add; matrix products, attention). */
double vit_flops_per_image(const ViTDims *d);

#endif

/* Vision Transformer (docs/DESIGN.md 2.1, timm conventions). Parameters, gradients,
 * AdamW moments and activations each live in one contiguous allocation;
 * named views into them are built by one layout walk (vit.c: layout_params),
 * which also yields the table of timm-named tensors used for checkpoints,
 * weight decay and initialisation. */
#ifndef EWA_VIT_H
#define EWA_VIT_H
#include <stddef.h>
#include <stdint.h>
#include "err.h"
#include "layers/moe.h"
#include "layers/pointnet.h"

#define VIT_MAX_DEPTH 64
#define VIT_NAME_LEN 96

/* Pooling of the last block's tokens (B,T,D) into (B,D) before the head,
 * named after timm's VisionTransformer(global_pool=..., fc_norm=...):
 *  VIT_POOL_CLS  token 0 of norm(x)                       global_pool='token'
 *  VIT_POOL_MEAN mean of the T-1 patch tokens of norm(x)  global_pool='avg', fc_norm=False
 *  VIT_POOL_AVG  fc_norm(mean of the T-1 patch tokens of x), no final norm:
 *                timm's default for global_pool='avg' (fc_norm=None -> True);
 *                the final LayerNorm's tensors are then named fc_norm.* (not norm.*). */
enum { VIT_POOL_CLS = 0, VIT_POOL_MEAN = 1, VIT_POOL_AVG = 2 };

typedef struct {
    int in_c, in_h, in_w;   /* image shape (C,H,W) */
    int patch;              /* P: H and W are multiples of P */
    int dim, depth, heads;  /* D, number of blocks, NH (D % NH == 0) */
    int hidden;             /* FFN width H = dim * mlp_ratio */
    int classes;            /* K */
    int pool;               /* VIT_POOL_CLS, VIT_POOL_MEAN or VIT_POOL_AVG */
    /* 3D input (docs/DESIGN.md 2.9), set by vit_set_points; points == 0 = images.
     * The model's input per cloud is then G centres (G,3) followed by their
     * k nearest points relative to the centre (G,k,3): FPS and kNN are
     * preprocessing (datasets/pointgroup.c), done when a batch is drawn. */
    int points, groups, group_k;
    PointNetDims pn;        /* mini-PointNet widths, pn.D == dim */
    int pos_hidden;         /* centre position MLP 3 -> pos_hidden -> D */
    /* MoE (docs/DESIGN.md 2.2): moe.kind == MOE_NONE is the dense ViT; otherwise the
     * blocks with moe_block[l] = 1 have an MoE layer instead of their mlp
     * (set by vit_set_moe; vit_dims leaves the model dense). */
    MoeSpec moe;
    unsigned char moe_block[VIT_MAX_DEPTH];
} ViTDims;

typedef struct {
    char name[VIT_NAME_LEN];
    int ndim;
    int shape[4];
    size_t numel, offset;   /* offset in floats into the parameter block */
    int decay;              /* AdamW weight decay applies (matrices only) */
} ParamSpec;

/* FFNW (fc1 (H,D), (H), fc2 (D,H), (D)) is defined in layers/moe.h. */

typedef struct {
    float *ln1_w, *ln1_b;          /* (D) */
    float *qkv_w, *qkv_b;          /* (3D,D), (3D) */
    float *proj_w, *proj_b;        /* (D,D), (D) */
    float *ln2_w, *ln2_b;          /* (D) */
    FFNW mlp;                      /* dense blocks */
    MoeW moe;                      /* MoE blocks: router, experts, shared */
} BlockW;

typedef struct {
    float *patch_w, *patch_b;      /* (D, C*P*P) == timm (D,C,P,P), (D) */
    float *cls, *pos;              /* (D), (T,D); 3D: pos unused */
    float *cls_pos;                /* 3D: (D) position embedding of the class token */
    PointNetParams pn;             /* 3D: patch embedding (views into the block) */
    PosEmbedParams pe;             /* 3D: centre position embedding */
    BlockW blocks[VIT_MAX_DEPTH];
    float *norm_w, *norm_b;        /* (D) final LayerNorm: timm's norm.*, or fc_norm.* (VIT_POOL_AVG) */
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
    MoeActs moe;                       /* MoE blocks (fc1/gelu unused there) */
} BlockActs;

typedef struct {
    float *patches;                    /* (B,Np,C*P*P); 3D: (B,G,k,3) */
    float *centers;                    /* 3D: (B,G,3) */
    float *pos3d, *pe_h, *pe_a;        /* 3D: (B,G,D), (B,G,hidden) x2 */
    float *emb;                        /* (B,Np,D) patch embeddings */
    float *x0;                         /* (B,T,D) tokens entering block 0 */
    BlockActs blocks[VIT_MAX_DEPTH];
    float *lnf, *lnf_mean, *lnf_rstd;  /* final norm (N,D), (N), (N); VIT_POOL_AVG: rows 0..B-1 */
    float *pool_in;                    /* (B,D) VIT_POOL_AVG: mean of the patch tokens, before fc_norm */
    float *pooled;                     /* (B,D) the head's input */
    float *logits, *probs, *losses;    /* (B,K), (B,K), (B) */
} ViTActs;

/* Gradient scratch for backward (activation gradients, reused per block). */
typedef struct {
    float *dres;       /* (N,D) gradient of the residual stream */
    float *dd;         /* (N,D) */
    float *dqkv;       /* (N,3D) */
    float *dh1, *dh2;  /* (N,H) */
    float *dpooled, *dlogits;  /* (B,D), (B,K) */
    float *pe_scratch;         /* 3D: 2*B*G*pos_hidden */
    MoeScratch moe;
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
    PointNetActs pn_acts;          /* 3D: mini-PointNet activations (own allocation) */
    float label_smoothing;
    float nll;                     /* plain cross-entropy (no smoothing, no aux), mean
                                      over the batch of the last forward with labels */
    int batch;                     /* B of the last forward */
    /* MoE state */
    FFNW *expert_views;            /* 2 * depth * E views (params, grads) */
    int *iact_mem;                 /* integer activations (dispatch tables) */
    int training;                  /* 1 (default): capacity limits apply */
    uint64_t moe_seed, moe_step;   /* RMoE partition stream: (seed, step, block) */
    const int *rmoe_perm[VIT_MAX_DEPTH]; /* test hook: fixed RMoE partition per block */
    /* data parallelism (experiments/dist.h): the next forward's B images are
     * images [shard_off, shard_off + B) of a global batch of shard_batch
     * (0 = not sharded); RMoE layers then partition the global batch
     * (moe_random_partition_shard) using shard_scratch (caller-owned,
     * shard_batch * T + E + 1 ints). */
    int shard_off, shard_batch;
    int *shard_scratch;
    float aux_loss;                /* sum of the MoE auxiliary losses, last forward */
    long moe_assigned, moe_dropped;/* routed assignments tried / dropped, last forward */
    long *route_counts;            /* if non-NULL: (depth, K, E) counts of routed
                                      assignments per true class, added by each
                                      forward that has labels */
} ViT;

/* Fills d from the model keys (pool: VIT_POOL_*); returns ERR_USAGE naming
 * the problem if the image shape does not divide into patches. */
int vit_dims(ViTDims *d, int in_c, int in_h, int in_w, int patch, int dim, int depth,
             int heads, float mlp_ratio, int classes, int pool, Err *err);
/* "cls" | "mean" | "avg" -> VIT_POOL_*, or -1. */
int vit_pool_from_name(const char *name);

/* Makes d a point-cloud model: clouds of `points` points, G groups of k,
 * mini-PointNet widths w, 2w, 4w. Call after vit_dims (whose image fields
 * are then unused). */
int vit_set_points(ViTDims *d, int points, int groups, int k, int pn_width, Err *err);
/* Floats of model input per sample: C*H*W for images, G*3*(1+k) for clouds. */
size_t vit_input_floats(const ViTDims *d);
/* Tokens per sample including the class token. */
int vit_tokens(const ViTDims *d);

/* Parses moe.blocks ("every_other": 1,3,5,...; "last:L"; a list "1,3,5")
 * into mask[0..depth). */
int vit_parse_moe_blocks(const char *spec, int depth, unsigned char *mask, Err *err);
/* Makes d an MoE model: spec for the blocks that `blocks` selects. */
int vit_set_moe(ViTDims *d, const MoeSpec *spec, const char *blocks, Err *err);
/* d without its MoE layers (the dense shape a collapse produces). */
ViTDims vit_dense_dims(const ViTDims *d);

int vit_init(ViT *m, const ViTDims *d, int max_batch, Err *err);
void vit_free(ViT *m);

/* timm's default initialisation, from a seed: Linear weights trunc_normal
 * std .02, biases 0, LayerNorm 1/0, pos_embed trunc_normal .02, cls_token
 * normal 1e-6, patch projection as PyTorch's Conv2d default
 * U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias.
 * Each tensor has its own stream of (seed, name); every expert of an MoE
 * layer (and its shared expert) uses the stream of the dense FFN it replaces
 * ("blocks.L.mlp.fc1.weight" etc.), so methods that differ only in
 * moe.method start paired: identical shared tensors, experts = that seed's
 * dense FFN, routers from streams of their own. */
void vit_init_weights(ViT *m, uint64_t seed);

/* img (B,C,H,W) normalised. If y is non-NULL computes the mean
 * cross-entropy (with m->label_smoothing) plus the MoE auxiliary losses
 * (m->aux_loss) and returns it (the training objective), and sets m->nll to
 * the plain cross-entropy; else returns 0.
 * Logits are in m->a.logits. B <= max_batch. */
float vit_forward(ViT *m, const float *img, const int *y, int B);

void vit_zero_grad(ViT *m);
/* Gradient of the mean loss of the last forward (which must have had y),
 * accumulated into m->grads. */
void vit_backward(ViT *m);

const ParamSpec *vit_find_param(const ViT *m, const char *name);
/* Forward FLOPs per image at inference (2 per multiply-add; matrix
 * products, attention; MoE layers count their active experts and router). */
double vit_flops_per_image(const ViTDims *d);
/* Parameter counts of a model of shape d: total, and active per token
 * (routed MoE layers count k of their E experts). */
void vit_param_counts(const ViTDims *d, size_t *total, size_t *active);

#endif

/* Mixture-of-Experts FFN layers (docs/DESIGN.md 2.3 and 2.6), in the style of
 * layers.h: free functions on raw float buffers; backward ACCUMULATES into
 * every gradient it is given.
 *
 * One layer replaces a block's mlp. Its input x (N = B*T rows of D) is the
 * block's norm2 output; its output y (N,D) is what the block adds to its
 * residual stream (a token that no expert processes gets y = 0, so its
 * residual carries it). Two kinds:
 *  - MOE_RANDOM (RMoE): the N tokens are permuted and cut into E contiguous
 *    chunks whose sizes differ by at most one (batch-level), or each image's
 *    T tokens are (per-sample); chunk e goes to expert e with gate 1. No
 *    router, no auxiliary loss, no dropped token: FLOPs equal the dense FFN.
 *  - MOE_ROUTED: softmax router (linear D -> E, no bias) on each token
 *    (routing "token") or on each image's mean token ("image"); top-k
 *    experts with gate g = p (k = 1) or p renormalised over the k selected
 *    (k > 1); capacity ceil(k * cf * units / E) per expert, filled first
 *    choices first, then second choices, each in unit order; an assignment
 *    over capacity is dropped (cf <= 0: no capacity limit). Loss
 *    aux = aux_coef * E * sum_e f_e P_e (f_e: fraction of units whose first
 *    choice is e, P_e: mean router probability) + zloss_coef *
 *    mean(logsumexp(logits)^2). Optional always-on shared expert added to y.
 * Expert computation: the rows of each expert are gathered into one
 * contiguous block, run through fc1 -> GELU -> fc2 with one sgemm per expert
 * and matrix, and scattered back weighted by their gates. */
#ifndef EWA_MOE_H
#define EWA_MOE_H
#include <stddef.h>
#include "../rng.h"

/* One FFN: fc1 (H,D) + (H), fc2 (D,H) + (D). */
typedef struct { float *fc1_w, *fc1_b, *fc2_w, *fc2_b; } FFNW;

enum { MOE_NONE = 0, MOE_RANDOM = 1, MOE_ROUTED = 2 };

/* The most experts an MoE layer may have (the routed layer keeps per-expert
 * statistics in fixed arrays of this size). */
#define MOE_MAX_EXPERTS 64

typedef struct {
    int kind;              /* MOE_NONE | MOE_RANDOM | MOE_ROUTED */
    int experts;           /* E */
    int top_k;             /* routed: k in [1, E] */
    float capacity_factor; /* routed: cf; applied only in training */
    float aux_coef, zloss_coef;
    int shared;            /* routed: 1 = shared expert beside the routed ones */
    int route_image;       /* routed: 1 = one decision per image (mean token) */
    int partition_sample;  /* random: 1 = partition each image's tokens */
} MoeSpec;

/* Weights (or gradients) of one MoE layer. */
typedef struct {
    float *router_w;       /* (E,D), routed only */
    FFNW *experts;         /* E */
    FFNW shared;           /* used when spec.shared */
} MoeW;

/* Saved state of one forward, sized by moe_acts_floats / moe_acts_ints for
 * up to N tokens of B images. */
typedef struct {
    /* dispatch: rows of the gathered buffers, grouped by expert */
    int *slot_tok;         /* (rows_max) token of each row */
    int *slot_uc;          /* (rows_max) unit * k + choice of each row (routed) */
    int *offsets;          /* (E+1) first row of each expert */
    int *choice;           /* (R*k) chosen experts per unit, best first */
    int *uc_row;           /* (R*k) first row of each assignment, -1 if dropped */
    float *xg, *h, *a, *eo;/* (rows,D), (rows,H), (rows,H), (rows,D) */
    float *rin;            /* (B,D) image routing: mean token per image */
    float *logits, *probs; /* (R,E) */
    float *gate;           /* (R*k) */
    float *sh_h, *sh_a;    /* (N,H) shared expert */
    /* results of the last forward */
    int rows, units, capacity;
    long assigned, dropped;/* assignments tried / dropped (routed) */
    float aux;             /* auxiliary loss value */
    float frac[MOE_MAX_EXPERTS]; /* f_e of the last forward (first E entries) */
    /* data parallelism (set by the caller before each forward; 0 = off):
     * this forward's B images are images [shard_off, shard_off + B) of a
     * global batch of shard_batch images split over ranks. The random kind
     * then draws the partition of the global batch and keeps this shard's
     * tokens (moe_random_partition_shard), so R ranks partition exactly as
     * one process with the global batch. The routed kind ignores it.
     * shard_scratch: shard_batch * T + E + 1 ints, owned by the caller. */
    int shard_off, shard_batch;
    int *shard_scratch;
} MoeActs;

/* Gradient scratch of one backward (shared by all MoE layers). */
typedef struct {
    float *dxg, *deo;      /* (rows_max,D) */
    float *dh1, *dh2;      /* (max(rows_max,N),H) */
    float *dlogits, *dp;   /* (R,E) */
    float *drin;           /* (R,D) */
    float *dgate;          /* (R*k) */
} MoeScratch;

/* Largest number of gathered rows for N tokens: N for random, k*N routed. */
size_t moe_rows_max(const MoeSpec *s, int N);
/* Carves the buffers of one layer's saved state from fbase / ibase (NULL:
 * only count); returns floats used and sets *ints_used. */
size_t moe_acts_layout(MoeActs *a, float *fbase, int *ibase, size_t *ints_used,
                       const MoeSpec *s, int B, int T, int D, int H);
size_t moe_scratch_layout(MoeScratch *sc, float *fbase, const MoeSpec *s, int B, int T, int D, int H);

/* RMoE partition of the B*T tokens: slot_tok receives every token index
 * once, grouped by expert, offsets (E+1) the chunk boundaries. Batch level:
 * a uniform random permutation of all N tokens cut into E chunks of sizes
 * N/E or N/E + 1 (the larger ones first). Per sample: each image's T tokens
 * permuted and cut the same way; expert e's rows are the images' chunks e in
 * image order. If perm is non-NULL it is used instead of random draws (N
 * entries: the batch permutation, or for per-sample B permutations of 0..T-1
 * one after another). */
void moe_random_partition(int *slot_tok, int *offsets, int B, int T, int E, int sample,
                          Rng *rng, const int *perm);

/* The part of a global batch's partition that falls on one shard: draws
 * moe_random_partition(.., Bg, T, E, sample, rng, NULL) for the Bg images of
 * the global batch and keeps, in the same order, the tokens of images
 * [off, off + B), renumbered from 0; offsets (E+1) are this shard's chunk
 * boundaries (sizes may differ by more than one). scratch: Bg * T + E + 1
 * ints. */
void moe_random_partition_shard(int *slot_tok, int *offsets, int B, int T, int E, int sample,
                                Rng *rng, int off, int Bg, int *scratch);

/* Forward: y (N,D) = MoE(x). training = 1 applies the capacity limit.
 * Random kind: the partition comes from perm (see moe_random_partition) or
 * rng. Returns the auxiliary loss (0 for random), also in a->aux. */
float moe_forward(float *y, MoeActs *a, const float *x, const MoeSpec *s, const MoeW *w,
                  int B, int T, int D, int H, int training, Rng *rng, const int *perm);

/* Backward of sum(dy * y) + aux (the auxiliary loss with weight 1): adds to
 * dx (N,D) and to the gradients g. */
void moe_backward(float *dx, MoeW *g, const float *dy, const MoeActs *a, const float *x,
                  const MoeSpec *s, const MoeW *w, MoeScratch *sc, int B, int T, int D, int H);

/* Forward FLOPs per image at inference (2 per multiply-add): the active
 * experts (k per unit, shared expert) and the router. */
double moe_flops_per_image(const MoeSpec *s, int T, int D, int H);

#endif

/* Point-cloud tokeniser layers (DESIGN 2.9), Point-BERT / Point-MAE style,
 * with the conventions of layers.h (row-major raw buffers, backward
 * ACCUMULATES into gradients, NULL gradient = not needed).
 *
 * Mini-PointNet patch embedding, for N patches of k points (relative xyz):
 *   h1 = x W1^T + b1          (N*k, c1)    Conv1d(3, c1, 1)
 *   a1 = GELU(h1)                          (Point-BERT: BatchNorm + ReLU)
 *   f  = a1 W2^T + b2         (N*k, c2)    Conv1d(c1, c2, 1)
 *   g  = max over the k points of f  (N, c2)
 *   h3 = [g, f] W3^T + b3     (N*k, c3)    Conv1d(2 c2, c3, 1) on cat([global, local])
 *   a3 = GELU(h3)                          (Point-BERT: BatchNorm + ReLU)
 *   h4 = a3 W4^T + b4         (N*k, D)     Conv1d(c3, D, 1)
 *   tok = max over the k points of h4  (N, D)
 * Point-BERT's widths are c1 = 128, c2 = 256, c3 = 512. The concat is never
 * materialised: W3 = [W3g | W3f] (columns 0..c2 act on g, c2..2c2 on f), so
 * h3 = f W3f^T + (g W3g^T + b3) broadcast over the patch. Max-pool ties go to
 * the first point; backward routes the gradient to the saved argmax.
 *
 * Centre position embedding (N centres): pos = GELU(c Wp1^T + bp1) Wp2^T + bp2,
 * widths 3 -> hidden (128) -> D. */
#ifndef EWA_POINTNET_H
#define EWA_POINTNET_H
#include <stddef.h>

typedef struct { int c1, c2, c3, D; } PointNetDims;

/* Parameters in one contiguous buffer, in this order:
 * w1 (c1,3) b1 (c1) w2 (c2,c1) b2 (c2) w3 (c3,2*c2) b3 (c3) w4 (D,c3) b4 (D).
 * The same view type is used for gradients. */
typedef struct { float *w1, *b1, *w2, *b2, *w3, *b3, *w4, *b4; } PointNetParams;

size_t pointnet_num_params(PointNetDims d);
void pointnet_params_view(PointNetParams *p, float *buf, PointNetDims d);

/* Activations saved by forward for backward, plus backward scratch. */
typedef struct {
    int N, k;
    PointNetDims d;
    float *h1, *a1;        /* (N*k, c1) */
    float *f;              /* (N*k, c2) */
    float *g;              /* (N, c2) */
    float *gz;             /* (N, c3): g W3g^T + b3 */
    float *h3, *a3;        /* (N*k, c3) */
    int *arg1;             /* (N, c2): argmax point of g */
    int *arg2;             /* (N, D): argmax point of tok */
    float *sa, *sb;        /* scratch (N*k, max widths); h4 lives in sa during forward */
    float *ss;             /* scratch (N, c3 + c2) */
} PointNetActs;

/* Allocates activations for up to N patches of k points; 0 or -1 (OOM). */
int pointnet_acts_alloc(PointNetActs *a, PointNetDims d, int N, int k);
void pointnet_acts_free(PointNetActs *a);

/* tok (N, D); x (N, k, 3). a must come from pointnet_acts_alloc with at
 * least N patches and exactly k points. */
void pointnet_forward(float *tok, PointNetActs *a, const PointNetParams *p, const float *x,
                      int N, int k);
/* Accumulates into the gradients in dp (any pointer may be NULL) and into dx
 * (N,k,3) if non-NULL, from dtok (N, D). Uses the activations of the last
 * forward on the same a. */
void pointnet_backward(float *dx, PointNetParams *dp, const float *dtok, PointNetActs *a,
                       const PointNetParams *p, const float *x, int N, int k);

/* ---- centre position embedding: 3 -> hidden -> D ---- */

/* Parameters in one buffer: w1 (hidden,3) b1 (hidden) w2 (D,hidden) b2 (D). */
typedef struct { float *w1, *b1, *w2, *b2; } PosEmbedParams;

size_t posembed_num_params(int hidden, int D);
void posembed_params_view(PosEmbedParams *p, float *buf, int hidden, int D);

/* out (N, D); h, a (N, hidden) are saved (pre- and post-GELU). */
void posembed_forward(float *out, float *h, float *a, const PosEmbedParams *p,
                      const float *centers, int N, int hidden, int D);
/* scratch: 2 * N * hidden floats. dcenters (N,3) may be NULL. */
void posembed_backward(float *dcenters, PosEmbedParams *dp, const float *dout,
                       const float *h, const float *a, const PosEmbedParams *p,
                       const float *centers, int N, int hidden, int D, float *scratch);

#endif

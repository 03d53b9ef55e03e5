/* Point-cloud tokeniser layers (docs/DESIGN.md 2.9), Point-BERT / Point-MAE style,
 * with the conventions of layers.h (row-major raw buffers, backward
 * ACCUMULATES into gradients, NULL gradient = not needed).
 *
 * Mini-PointNet patch embedding, for B clouds of G patches of k points
 * (relative xyz), N = B*G patches, M = N*k points:
 *   h1 = x W1^T               (M, c1)    Conv1d(3, c1, 1, bias=False)
 *   n1 = IN(h1; s1, t1)                  instance norm (Point-BERT: BatchNorm)
 *   a1 = GELU(n1)                        (Point-BERT: ReLU)
 *   f  = a1 W2^T              (M, c2)    Conv1d(c1, c2, 1, bias=False)
 *   g  = max over the k points of f  (N, c2)
 *   h3 = [g, f] W3^T          (M, c3)    Conv1d(2 c2, c3, 1, bias=False) on cat([global, local])
 *   n3 = IN(h3; s3, t3)                  instance norm (Point-BERT: BatchNorm)
 *   a3 = GELU(n3)                        (Point-BERT: ReLU)
 *   h4 = a3 W4^T + b4         (M, D)     Conv1d(c3, D, 1)
 *   tok = max over the k points of h4  (N, D)
 * IN is instnorm_forward (layers.h) with eps PN_NORM_EPS: every channel is
 * normalised over the G*k points of its cloud, then scaled and shifted per
 * channel. Without it the neighbour offsets (about 0.1 for a unit-sphere
 * cloud of 512 points in groups of 16) are small against the biases, the
 * tokens of a cloud are nearly identical and the model sits at chance for
 * many steps (issue 12, datasets/SHAPES3D.md). Batch normalisation, as
 * Point-BERT uses, would make a prediction depend on the rest of the batch
 * and on running statistics; instance normalisation over one cloud does not.
 * A bias before a normalisation is cancelled by it, so conv1, conv2 (through
 * the max-pool and conv3) and conv3 have none (Point-BERT's have one each,
 * with a zero gradient).
 * Point-BERT's widths are c1 = 128, c2 = 256, c3 = 512. The concat is never
 * materialised: W3 = [W3g | W3f] (columns 0..c2 act on g, c2..2c2 on f), so
 * h3 = f W3f^T + g W3g^T broadcast over the patch. Max-pool ties go to
 * the first point; backward routes the gradient to the saved argmax.
 *
 * Centre position embedding (N centres): pos = GELU(c Wp1^T + bp1) Wp2^T + bp2,
 * widths 3 -> hidden (128) -> D. */
#ifndef EWA_POINTNET_H
#define EWA_POINTNET_H
#include <stddef.h>

typedef struct { int c1, c2, c3, D; } PointNetDims;

#define PN_NORM_EPS 1e-5f   /* PyTorch's InstanceNorm1d default */

/* Parameters in one contiguous buffer, in this order:
 * w1 (c1,3) s1 (c1) t1 (c1) w2 (c2,c1) w3 (c3,2*c2) s3 (c3) t3 (c3) w4 (D,c3)
 * b4 (D); s/t are the instance norms' scale and shift. The same view type is
 * used for gradients. */
typedef struct { float *w1, *s1, *t1, *w2, *w3, *s3, *t3, *w4, *b4; } PointNetParams;

size_t pointnet_num_params(PointNetDims d);
void pointnet_params_view(PointNetParams *p, float *buf, PointNetDims d);

/* Activations saved by forward for backward, plus backward scratch. */
typedef struct {
    int N, k;
    PointNetDims d;
    float *h1, *n1, *a1;   /* (N*k, c1) */
    float *f;              /* (N*k, c2) */
    float *g;              /* (N, c2) */
    float *gz;             /* (N, c3): g W3g^T */
    float *h3, *n3, *a3;   /* (N*k, c3) */
    float *mean1, *rstd1;  /* (B, c1) instance-norm statistics */
    float *mean3, *rstd3;  /* (B, c3) */
    int *arg1;             /* (N, c2): argmax point of g */
    int *arg2;             /* (N, D): argmax point of tok */
    float *sa, *sb;        /* scratch (N*k, max widths); h4 lives in sa during forward */
    float *ss;             /* scratch (N, c3 + c2), at least 2 * N * max(c1, c3) */
} PointNetActs;

/* Allocates activations for up to N patches of k points; 0 or -1 (OOM). */
int pointnet_acts_alloc(PointNetActs *a, PointNetDims d, int N, int k);
void pointnet_acts_free(PointNetActs *a);

/* tok (B*G, D); x (B, G, k, 3): B clouds of G patches. a must come from
 * pointnet_acts_alloc with at least B*G patches and exactly k points. */
void pointnet_forward(float *tok, PointNetActs *a, const PointNetParams *p, const float *x,
                      int B, int G, int k);
/* Accumulates into the gradients in dp (any pointer may be NULL) and into dx
 * (B,G,k,3) if non-NULL, from dtok (B*G, D). Uses the activations of the last
 * forward on the same a, with the same B, G, k. */
void pointnet_backward(float *dx, PointNetParams *dp, const float *dtok, PointNetActs *a,
                       const PointNetParams *p, const float *x, int B, int G, int k);

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

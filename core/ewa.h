/* Experts Weights Averaging (docs/DESIGN.md 2.4) and the collapse of an RMoE model
 * into a dense ViT (docs/DESIGN.md 2.5). */
#ifndef EWA_EWA_H
#define EWA_EWA_H
#include "vit.h"

/* The paper's Eq. 6 on every expert tensor (fc1/fc2 weight and bias) of every
 * MoE layer of m, with share rate beta and N experts:
 *   W_i <- (1 - beta) W_i + beta/(N-1) sum_{j != i} W_j,
 * computed as W_i <- mean + c (W_i - mean), c = 1 - N beta/(N-1), with the
 * mean accumulated in double. The expert mean is preserved; beta = 0 returns
 * without touching anything; |c| < 1e-6 (beta = (N-1)/N up to float
 * rounding of beta) sets every expert to the mean exactly. Routers and shared
 * experts are not averaged; optimizer moments neither. */
void ewa_update(ViT *m, float beta);

/* The factor c above for N experts and share rate beta. */
double ewa_factor(int n_experts, float beta);

/* Writes into dst (a dense model of shape vit_dense_dims(&src->d), from
 * vit_init) the collapse of src: every non-MoE tensor copied, every MoE
 * layer's fc1/fc2 weight and bias the plain mean of its experts'. Only for
 * random-partition (RMoE) models; a routed MoE has no dense equivalent and
 * is an error. */
int ewa_collapse(const ViT *src, ViT *dst, Err *err);

#endif

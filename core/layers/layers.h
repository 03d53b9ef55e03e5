/* The ViT's layers as pairs of free functions on raw float buffers, in the
 * style of llm.c: x_forward(out, in, weights, shapes...) and
 * x_backward(...). Conventions:
 *  - row-major; shapes are named in the comments: N rows (tokens), B batch,
 *    T tokens per image, C / D channels, NH heads, OC/IC out/in features.
 *  - backward passes ACCUMULATE (+=) into every gradient they are given, so
 *    the caller zeroes gradients once and branches simply add up; a NULL
 *    gradient pointer means "not needed".
 *  - x_backward_set variants (issue 13) SET the input gradient instead
 *    (din = ..., no memset needed before the first write into a scratch
 *    buffer); parameter gradients (dw, db) still accumulate. Each is
 *    bitwise equal to memset(din, 0) followed by x_backward: elementwise
 *    kernels compute 0.0f + v exactly as the accumulating path does, and
 *    GEMMs use beta = 0 instead of beta = 1 on a zero C, which can differ
 *    only in the sign of an exact zero (+0 + -0 = +0); test_gradcheck's
 *    *_set tests and a bitwise comparison of whole training runs check it.
 *  - element-wise kernels are threaded with OpenMP (static schedules, fixed
 *    reduction order, so results depend only on the thread count);
 *    matrix products go through gemm.h (oneDNN: fp32 sgemm, bf16 matmul).
 * One source file per layer kind lives beside this header. */
#ifndef EWA_LAYERS_H
#define EWA_LAYERS_H
#include <stddef.h>

/* linear.c: out (N,OC) = in (N,IC) @ w^T (OC,IC) + b (OC); b may be NULL. */
void linear_forward(float *out, const float *in, const float *w, const float *b,
                    int N, int IC, int OC);
void linear_backward(float *din, float *dw, float *db, const float *dout,
                     const float *in, const float *w, int N, int IC, int OC);
void linear_backward_set(float *din, float *dw, float *db, const float *dout,
                         const float *in, const float *w, int N, int IC, int OC);

/* layernorm.c: per row of C; mean/rstd (N) are saved for backward. */
void layernorm_forward(float *out, float *mean, float *rstd, const float *in,
                       const float *w, const float *b, int N, int C, float eps);
void layernorm_backward(float *din, float *dw, float *db, const float *dout,
                        const float *in, const float *w, const float *mean,
                        const float *rstd, int N, int C);
void layernorm_backward_set(float *din, float *dw, float *db, const float *dout,
                            const float *in, const float *w, const float *mean,
                            const float *rstd, int N, int C);

/* instancenorm.c: instance normalisation (Ulyanov et al., arXiv 1607.08022;
 * PyTorch InstanceNorm1d(C, affine=True) on the transposed (B, C, S) tensor).
 * in, out (B, S, C): each channel of each sample is normalised over that
 * sample's S rows with the biased variance, out = (in - mean) * rstd * w[c] +
 * b[c], rstd = 1/sqrt(var + eps); mean, rstd (B, C) are saved for backward.
 * Backward: din (may be NULL) += dL/din, dw, db (may be NULL) +=; scratch
 * holds 2 * B * C floats. */
void instnorm_forward(float *out, float *mean, float *rstd, const float *in, const float *w,
                      const float *b, int B, int S, int C, float eps);
void instnorm_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                       const float *w, const float *mean, const float *rstd, int B, int S, int C,
                       float *scratch);
void instnorm_backward_set(float *din, float *dw, float *db, const float *dout, const float *in,
                           const float *w, const float *mean, const float *rstd, int B, int S, int C,
                           float *scratch);

/* gelu.c: exact GELU, 0.5 x (1 + erf(x / sqrt 2)), on n elements. */
void gelu_forward(float *out, const float *in, size_t n);
void gelu_backward(float *din, const float *dout, const float *in, size_t n);
void gelu_backward_set(float *din, const float *dout, const float *in, size_t n);

/* attention.c: bidirectional multi-head self-attention core (no projections).
 * qkv (B,T,3C) laid out as timm's reshape(B,T,3,NH,hd): q at [0,C), k at
 * [C,2C), v at [2C,3C), head h at columns h*hd. att (B,NH,T,T) saves the
 * softmax probabilities; out (B,T,C). scale = hd^-0.5. */
void attention_forward(float *out, float *att, const float *qkv, int B, int T, int C, int NH);
void attention_backward(float *dqkv, const float *dout, const float *qkv,
                        const float *att, int B, int T, int C, int NH);
/* Sets every element of dqkv: each (image, head) writes its own q, k and v
 * columns once. */
void attention_backward_set(float *dqkv, const float *dout, const float *qkv,
                            const float *att, int B, int T, int C, int NH);

/* embed.c: patch extraction and token assembly.
 * patchify: img (B,Cin,H,W) -> patches (B,Np,Cin*P*P), Np = (H/P)(W/P), each
 * patch flattened in (c, py, px) order so a linear map with weight (D,Cin*P*P)
 * equals timm's Conv2d(Cin, D, P, stride=P) with weight (D,Cin,P,P). */
void patchify(float *patches, const float *img, int B, int Cin, int H, int W, int P);
/* tokens: x (B,T=Np+1,D); x[b,0] = cls + pos[0], x[b,1+i] = emb[b,i] + pos[1+i]. */
void tokens_forward(float *x, const float *emb, const float *cls, const float *pos,
                    int B, int Np, int D);
void tokens_backward(float *demb, float *dcls, float *dpos, const float *dx,
                     int B, int Np, int D);

/* pool.c: x (B,T,D) -> pooled (B,D). mean=0: the class token x[b,0];
 * mean=1: the mean of the T-1 patch tokens (timm's 'avg' excludes it). */
void pool_forward(float *pooled, const float *x, int B, int T, int D, int mean);
void pool_backward(float *dx, const float *dpooled, int B, int T, int D, int mean);

/* residual.c: out = a + b (n elements); backward adds dout to da and db. */
void residual_forward(float *out, const float *a, const float *b, size_t n);
void residual_backward(float *da, float *db, const float *dout, size_t n);

/* crossentropy.c: softmax cross-entropy with label smoothing s, mean over B.
 * probs (B,K) saved; losses (B) per example; returns the mean loss.
 * backward: dlogits += (probs - target) * dloss / B, target = (1-s) onehot + s/K. */
float crossentropy_forward(float *losses, float *probs, const float *logits,
                           const int *y, int B, int K, float smoothing);
void crossentropy_backward(float *dlogits, const float *probs, const int *y,
                           int B, int K, float smoothing, float dloss);
/* Plain cross-entropy (no smoothing), mean over B: -log softmax(logits)[y]. */
double crossentropy_nll(const float *logits, const int *y, int B, int K);

#endif

#include "layers.h"
#include <math.h>

/* log sum_k exp(l[k]), shifted by the row maximum. */
static double row_logsumexp(const float *l, int K) {
    float mx = l[0];
    for (int k = 1; k < K; k++) if (l[k] > mx) mx = l[k];
    double sum = 0.0;
    for (int k = 0; k < K; k++) sum += exp((double)l[k] - mx);
    return mx + log(sum);
}

double crossentropy_nll(const float *logits, const int *y, int B, int K) {
    double total = 0.0;
    for (int b = 0; b < B; b++) {
        const float *l = logits + (size_t)b * K;
        total += row_logsumexp(l, K) - l[y[b]];
    }
    return total / B;
}

float crossentropy_forward(float *losses, float *probs, const float *logits,
                           const int *y, int B, int K, float smoothing) {
    double total = 0.0;
    for (int b = 0; b < B; b++) {
        const float *l = logits + (size_t)b * K;
        float *p = probs + (size_t)b * K;
        double lse = row_logsumexp(l, K);
        /* loss = -sum_k target_k log p_k, target = (1-s) onehot(y) + s/K */
        double nll = lse - l[y[b]], smooth = 0.0;
        for (int k = 0; k < K; k++) {
            p[k] = (float)exp((double)l[k] - lse);
            smooth += lse - l[k];
        }
        double loss = (1.0 - smoothing) * nll + smoothing * smooth / K;
        losses[b] = (float)loss;
        total += loss;
    }
    return (float)(total / B);
}

void crossentropy_backward(float *dlogits, const float *probs, const int *y,
                           int B, int K, float smoothing, float dloss) {
    float scale = dloss / (float)B, off = smoothing / (float)K;
    for (int b = 0; b < B; b++) {
        const float *p = probs + (size_t)b * K;
        float *d = dlogits + (size_t)b * K;
        for (int k = 0; k < K; k++) {
            float target = off + (k == y[b] ? 1.0f - smoothing : 0.0f);
            d[k] += (p[k] - target) * scale;
        }
    }
}

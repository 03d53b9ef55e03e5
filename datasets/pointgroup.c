/* Farthest point sampling and k-nearest-neighbour grouping (docs/DESIGN.md 2.9):
 * preprocessing for the point tokeniser, no gradients. Deterministic: FPS
 * starts from point 0 and every tie goes to the lowest index. */
#include "points.h"
#include <stdlib.h>
#include <string.h>

static inline float dist2(const float *a, const float *b) {
    float dx = a[0] - b[0], dy = a[1] - b[1], dz = a[2] - b[2];
    return dx * dx + dy * dy + dz * dz;
}

static void fps_core(const float *xyz, int P, int G, int *idx, float *mind) {
    idx[0] = 0;
    for (int i = 0; i < P; i++) mind[i] = dist2(xyz + 3 * (size_t)i, xyz);
    for (int g = 1; g < G; g++) {
        int best = 0;
        float bd = -1.0f;
        for (int i = 0; i < P; i++)
            if (mind[i] > bd) { bd = mind[i]; best = i; }
        idx[g] = best;
        const float *c = xyz + 3 * (size_t)best;
        for (int i = 0; i < P; i++) {
            float d = dist2(xyz + 3 * (size_t)i, c);
            if (d < mind[i]) mind[i] = d;
        }
    }
}

int fps(const float *xyz, int P, int G, int *idx, float *mind) {
    if (!xyz || !idx || P < 1 || G < 1 || G > P) return ERR_USAGE;
    float *own = NULL;
    if (!mind) {
        own = malloc((size_t)P * sizeof *own);
        if (!own) return ERR_RUNTIME;
        mind = own;
    }
    fps_core(xyz, P, G, idx, mind);
    free(own);
    return 0;
}

/* Keeps idx[0..k) sorted by distance (then index); a point enters only if
 * strictly nearer than the current k-th, so equal distances keep the lower
 * index (points are scanned in index order). */
void knn(const float *xyz, int P, const float *q, int k, int *idx) {
    if (!xyz || !q || !idx || k < 1 || k > P) return;
    int cnt = 0;
    float worst = 0.0f;   /* distance of idx[cnt-1] once cnt == k */
    for (int i = 0; i < P; i++) {
        float d = dist2(xyz + 3 * (size_t)i, q);
        if (cnt == k && !(d < worst)) continue;
        int j = cnt < k ? cnt++ : k - 1;
        while (j > 0 && dist2(xyz + 3 * (size_t)idx[j - 1], q) > d) {
            idx[j] = idx[j - 1];
            j--;
        }
        idx[j] = i;
        if (cnt == k) worst = dist2(xyz + 3 * (size_t)idx[k - 1], q);
    }
}

int points_group(float *centers, float *patches, int *center_idx, int *knn_idx,
                 const float *xyz, int B, int P, int G, int k, Err *err) {
    if (!xyz || B < 1 || P < 1 || G < 1 || k < 1 || G > P || k > P)
        return err_set(err, ERR_USAGE, "points_group: invalid sizes B=%d P=%d G=%d k=%d "
                       "(need G <= P and k <= P)", B, P, G, k);
    int oom = 0;
    #pragma omp parallel
    {
        float *mind = malloc((size_t)P * sizeof *mind);
        int *cidx = malloc((size_t)G * sizeof *cidx);
        int *kidx = malloc((size_t)k * sizeof *kidx);
        if (!mind || !cidx || !kidx) {
            #pragma omp atomic write
            oom = 1;
        }
        #pragma omp for schedule(static)
        for (int b = 0; b < B; b++) {
            if (!mind || !cidx || !kidx) continue;
            const float *cl = xyz + (size_t)b * P * 3;
            fps_core(cl, P, G, cidx, mind);
            for (int g = 0; g < G; g++) {
                const float *c = cl + 3 * (size_t)cidx[g];
                size_t bg = (size_t)b * G + g;
                if (center_idx) center_idx[bg] = cidx[g];
                if (centers) memcpy(centers + 3 * bg, c, 3 * sizeof(float));
                knn(cl, P, c, k, kidx);
                if (knn_idx) memcpy(knn_idx + bg * k, kidx, (size_t)k * sizeof(int));
                if (patches) {
                    float *pp = patches + bg * k * 3;
                    for (int j = 0; j < k; j++) {
                        const float *p = cl + 3 * (size_t)kidx[j];
                        pp[3 * j + 0] = p[0] - c[0];
                        pp[3 * j + 1] = p[1] - c[1];
                        pp[3 * j + 2] = p[2] - c[2];
                    }
                }
            }
        }
        free(mind); free(cidx); free(kidx);
    }
    if (oom) return err_set(err, ERR_RUNTIME, "points_group: out of memory");
    return 0;
}

/* MoE FFN layers: RMoE (random partition) and routed top-k MoE. See moe.h. */
#include "moe.h"
#include "layers.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int units_of(const MoeSpec *s, int B, int T) {
    if (s->kind != MOE_ROUTED) return 0;
    return s->route_image ? B : B * T;
}

size_t moe_rows_max(const MoeSpec *s, int N) {
    return s->kind == MOE_ROUTED ? (size_t)s->top_k * N : (size_t)N;
}

static float *fcarve(float *base, size_t *off, size_t n) {
    float *p = base ? base + *off : NULL;
    *off += n;
    return p;
}

static int *icarve(int *base, size_t *off, size_t n) {
    int *p = base ? base + *off : NULL;
    *off += n;
    return p;
}

size_t moe_acts_layout(MoeActs *a, float *fbase, int *ibase, size_t *ints_used,
                       const MoeSpec *s, int B, int T, int D, int H) {
    size_t N = (size_t)B * T, rows = moe_rows_max(s, (int)N), E = s->experts;
    size_t R = (size_t)units_of(s, B, T), k = s->kind == MOE_ROUTED ? (size_t)s->top_k : 0;
    size_t fo = 0, io = 0;
    memset(a, 0, sizeof *a);
    a->slot_tok = icarve(ibase, &io, rows);
    a->slot_uc = icarve(ibase, &io, s->kind == MOE_ROUTED ? rows : 0);
    a->offsets = icarve(ibase, &io, E + 1);
    a->choice = icarve(ibase, &io, R * k);
    a->uc_row = icarve(ibase, &io, R * k);
    a->xg = fcarve(fbase, &fo, rows * D);
    a->h = fcarve(fbase, &fo, rows * H);
    a->a = fcarve(fbase, &fo, rows * H);
    a->eo = fcarve(fbase, &fo, rows * D);
    a->rin = fcarve(fbase, &fo, s->kind == MOE_ROUTED && s->route_image ? (size_t)B * D : 0);
    a->logits = fcarve(fbase, &fo, R * E);
    a->probs = fcarve(fbase, &fo, R * E);
    a->gate = fcarve(fbase, &fo, R * k);
    int sh = s->kind == MOE_ROUTED && s->shared;
    a->sh_h = fcarve(fbase, &fo, sh ? N * H : 0);
    a->sh_a = fcarve(fbase, &fo, sh ? N * H : 0);
    *ints_used = io;
    return fo;
}

size_t moe_scratch_layout(MoeScratch *sc, float *fbase, const MoeSpec *s, int B, int T, int D, int H) {
    size_t N = (size_t)B * T, rows = moe_rows_max(s, (int)N), E = s->experts;
    size_t R = (size_t)units_of(s, B, T), k = s->kind == MOE_ROUTED ? (size_t)s->top_k : 0;
    size_t hr = rows > N ? rows : N, fo = 0;
    sc->dxg = fcarve(fbase, &fo, rows * D);
    sc->deo = fcarve(fbase, &fo, rows * D);
    sc->dh1 = fcarve(fbase, &fo, hr * H);
    sc->dh2 = fcarve(fbase, &fo, hr * H);
    sc->dlogits = fcarve(fbase, &fo, R * E);
    sc->dp = fcarve(fbase, &fo, R * E);
    sc->drin = fcarve(fbase, &fo, R * D);
    sc->dgate = fcarve(fbase, &fo, R * k);
    return fo;
}

/* ---- partition ---------------------------------------------------------- */

static int chunk_size(int n, int E, int e) { return n / E + (e < n % E); }

void moe_random_partition(int *slot_tok, int *offsets, int B, int T, int E, int sample,
                          Rng *rng, const int *perm) {
    int N = B * T;
    if (!sample) {
        if (perm) memcpy(slot_tok, perm, sizeof(int) * (size_t)N);
        else {
            for (int i = 0; i < N; i++) slot_tok[i] = i;
            rng_shuffle(rng, slot_tok, (size_t)N);
        }
        offsets[0] = 0;
        for (int e = 0; e < E; e++) offsets[e + 1] = offsets[e] + chunk_size(N, E, e);
        return;
    }
    /* per sample: draw every image's permutation first (fixed order of
     * draws), then lay the rows out grouped by expert. */
    int *local = perm ? NULL : malloc(sizeof(int) * (size_t)N);
    if (!perm) {
        for (int b = 0; b < B; b++) {
            int *p = local + (size_t)b * T;
            for (int t = 0; t < T; t++) p[t] = t;
            rng_shuffle(rng, p, (size_t)T);
        }
    }
    const int *lp = perm ? perm : local;
    int pos = 0, start = 0;
    offsets[0] = 0;
    for (int e = 0; e < E; e++) {
        int n = chunk_size(T, E, e);
        for (int b = 0; b < B; b++)
            for (int i = 0; i < n; i++) slot_tok[pos++] = b * T + lp[(size_t)b * T + start + i];
        start += n;
        offsets[e + 1] = pos;
    }
    free(local);
}

void moe_random_partition_shard(int *slot_tok, int *offsets, int B, int T, int E, int sample,
                                Rng *rng, int off, int Bg, int *scratch) {
    int lo = off * T, hi = (off + B) * T, pos = 0;
    int *gs = scratch, *go = scratch + (size_t)Bg * T;
    moe_random_partition(gs, go, Bg, T, E, sample, rng, NULL);
    offsets[0] = 0;
    for (int e = 0; e < E; e++) {
        for (int r = go[e]; r < go[e + 1]; r++)
            if (gs[r] >= lo && gs[r] < hi) slot_tok[pos++] = gs[r] - lo;
        offsets[e + 1] = pos;
    }
}

/* ---- expert computation (shared by both kinds) -------------------------- */

static void experts_forward(MoeActs *a, const float *x, const MoeSpec *s, const MoeW *w, int D, int H) {
    int rows = a->rows;
    #pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++)
        memcpy(a->xg + (size_t)r * D, x + (size_t)a->slot_tok[r] * D, sizeof(float) * D);
    for (int e = 0; e < s->experts; e++) {
        int o = a->offsets[e], n = a->offsets[e + 1] - o;
        if (n > 0)
            linear_forward(a->h + (size_t)o * H, a->xg + (size_t)o * D, w->experts[e].fc1_w,
                           w->experts[e].fc1_b, n, D, H);
    }
    gelu_forward(a->a, a->h, (size_t)rows * H);
    for (int e = 0; e < s->experts; e++) {
        int o = a->offsets[e], n = a->offsets[e + 1] - o;
        if (n > 0)
            linear_forward(a->eo + (size_t)o * D, a->a + (size_t)o * H, w->experts[e].fc2_w,
                           w->experts[e].fc2_b, n, H, D);
    }
}

/* deo holds dL/d(expert outputs) per row; leaves dL/d(gathered inputs) in dxg. */
static void experts_backward(MoeW *g, const MoeActs *a, const MoeSpec *s, const MoeW *w,
                             MoeScratch *sc, int D, int H) {
    /* the experts' row blocks tile [0, rows): dh2, dh1 and dxg are set
     * (layers.h *_set), no memset */
    size_t rH = (size_t)a->rows * H;
    for (int e = 0; e < s->experts; e++) {
        int o = a->offsets[e], n = a->offsets[e + 1] - o;
        if (n > 0)
            linear_backward_set(sc->dh2 + (size_t)o * H, g->experts[e].fc2_w, g->experts[e].fc2_b,
                            sc->deo + (size_t)o * D, a->a + (size_t)o * H, w->experts[e].fc2_w,
                            n, H, D);
    }
    gelu_backward_set(sc->dh1, sc->dh2, a->h, rH);
    for (int e = 0; e < s->experts; e++) {
        int o = a->offsets[e], n = a->offsets[e + 1] - o;
        if (n > 0)
            linear_backward_set(sc->dxg + (size_t)o * D, g->experts[e].fc1_w, g->experts[e].fc1_b,
                            sc->dh1 + (size_t)o * H, a->xg + (size_t)o * D, w->experts[e].fc1_w,
                            n, D, H);
    }
}

/* ---- routing ------------------------------------------------------------ */

static void route(MoeActs *a, const MoeSpec *s, int R, int T, int training) {
    int E = s->experts, k = s->top_k, rpu = s->route_image ? T : 1;
    /* softmax, top-k, gates */
    #pragma omp parallel for schedule(static)
    for (int u = 0; u < R; u++) {
        const float *l = a->logits + (size_t)u * E;
        float *p = a->probs + (size_t)u * E, mx = l[0], sum = 0;
        for (int e = 1; e < E; e++) if (l[e] > mx) mx = l[e];
        for (int e = 0; e < E; e++) { p[e] = expf(l[e] - mx); sum += p[e]; }
        for (int e = 0; e < E; e++) p[e] /= sum;
        int *c = a->choice + (size_t)u * k;
        float S = 0;
        for (int j = 0; j < k; j++) {
            int best = -1;
            for (int e = 0; e < E; e++) {
                int taken = 0;
                for (int i = 0; i < j; i++) taken |= c[i] == e;
                if (!taken && (best < 0 || p[e] > p[best])) best = e;
            }
            c[j] = best;
            S += p[best];
        }
        for (int j = 0; j < k; j++)
            a->gate[(size_t)u * k + j] = k == 1 ? p[c[j]] : p[c[j]] / S;
    }
    /* load-balancing and z losses */
    double f[64] = {0}, P[64] = {0}, z = 0;
    for (int u = 0; u < R; u++) {
        f[a->choice[(size_t)u * k]] += 1;
        const float *p = a->probs + (size_t)u * E, *l = a->logits + (size_t)u * E;
        double mx = l[0], se = 0;
        for (int e = 0; e < E; e++) { P[e] += p[e]; if (l[e] > mx) mx = l[e]; }
        for (int e = 0; e < E; e++) se += exp(l[e] - mx);
        double lse = mx + log(se);
        z += lse * lse;
    }
    double aux = 0;
    for (int e = 0; e < E; e++) {
        f[e] /= R;
        P[e] /= R;
        aux += f[e] * P[e];
        a->frac[e] = (float)f[e];
    }
    a->aux = (float)(s->aux_coef * E * aux + s->zloss_coef * z / R);
    /* capacity: first choices first, then second choices, in unit order */
    int cap = R;
    if (training && s->capacity_factor > 0) {
        cap = (int)ceil((double)k * s->capacity_factor * R / E - 1e-9);
        if (cap > R) cap = R;
    }
    a->capacity = cap;
    int count[64] = {0};
    long dropped = 0;
    for (int j = 0; j < k; j++)
        for (int u = 0; u < R; u++) {
            int e = a->choice[(size_t)u * k + j];
            if (count[e] < cap) { count[e]++; a->uc_row[(size_t)u * k + j] = 0; }
            else { a->uc_row[(size_t)u * k + j] = -1; dropped++; }
        }
    a->assigned = (long)R * k;
    a->dropped = dropped;
    int pos[64];
    a->offsets[0] = 0;
    for (int e = 0; e < E; e++) {
        pos[e] = a->offsets[e];
        a->offsets[e + 1] = a->offsets[e] + count[e] * rpu;
    }
    for (int j = 0; j < k; j++)
        for (int u = 0; u < R; u++) {
            size_t uc = (size_t)u * k + j;
            if (a->uc_row[uc] < 0) continue;
            int e = a->choice[uc];
            a->uc_row[uc] = pos[e];
            for (int t = 0; t < rpu; t++) {
                a->slot_tok[pos[e]] = u * rpu + t;
                a->slot_uc[pos[e]] = (int)uc;
                pos[e]++;
            }
        }
    a->rows = a->offsets[E];
}

/* ---- forward ------------------------------------------------------------ */

float moe_forward(float *y, MoeActs *a, const float *x, const MoeSpec *s, const MoeW *w,
                  int B, int T, int D, int H, int training, Rng *rng, const int *perm) {
    int N = B * T;
    if (s->kind == MOE_RANDOM) {
        if (!perm && a->shard_batch > B && a->shard_scratch) {
            moe_random_partition_shard(a->slot_tok, a->offsets, B, T, s->experts, s->partition_sample,
                                       rng, a->shard_off, a->shard_batch, a->shard_scratch);
        } else {
            moe_random_partition(a->slot_tok, a->offsets, B, T, s->experts, s->partition_sample, rng, perm);
        }
        a->rows = N;
        a->units = 0;
        a->aux = 0;
        a->assigned = a->dropped = 0;
        experts_forward(a, x, s, w, D, H);
        #pragma omp parallel for schedule(static)
        for (int r = 0; r < N; r++)
            memcpy(y + (size_t)a->slot_tok[r] * D, a->eo + (size_t)r * D, sizeof(float) * D);
        return 0.0f;
    }
    int R = units_of(s, B, T), E = s->experts, k = s->top_k, rpu = s->route_image ? T : 1;
    a->units = R;
    const float *rin = x;
    if (s->route_image) {
        #pragma omp parallel for schedule(static)
        for (int b = 0; b < B; b++) {
            float *m = a->rin + (size_t)b * D;
            for (int i = 0; i < D; i++) m[i] = 0;
            for (int t = 0; t < T; t++) {
                const float *xt = x + ((size_t)b * T + t) * D;
                for (int i = 0; i < D; i++) m[i] += xt[i];
            }
            for (int i = 0; i < D; i++) m[i] /= T;
        }
        rin = a->rin;
    }
    linear_forward(a->logits, rin, w->router_w, NULL, R, D, E);
    route(a, s, R, T, training);
    experts_forward(a, x, s, w, D, H);
    if (s->shared) {
        linear_forward(a->sh_h, x, w->shared.fc1_w, w->shared.fc1_b, N, D, H);
        gelu_forward(a->sh_a, a->sh_h, (size_t)N * H);
        linear_forward(y, a->sh_a, w->shared.fc2_w, w->shared.fc2_b, N, H, D);
    } else {
        memset(y, 0, sizeof(float) * (size_t)N * D);
    }
    /* each unit adds its kept assignments in choice order (deterministic) */
    #pragma omp parallel for schedule(static)
    for (int u = 0; u < R; u++)
        for (int j = 0; j < k; j++) {
            size_t uc = (size_t)u * k + j;
            int row = a->uc_row[uc];
            if (row < 0) continue;
            float g = a->gate[uc];
            for (int t = 0; t < rpu; t++) {
                float *yt = y + (size_t)(u * rpu + t) * D;
                const float *eo = a->eo + (size_t)(row + t) * D;
                for (int i = 0; i < D; i++) yt[i] += g * eo[i];
            }
        }
    return a->aux;
}

/* ---- backward ----------------------------------------------------------- */

void moe_backward(float *dx, MoeW *g, const float *dy, const MoeActs *a, const float *x,
                  const MoeSpec *s, const MoeW *w, MoeScratch *sc, int B, int T, int D, int H) {
    int N = B * T;
    if (s->kind == MOE_RANDOM) {
        #pragma omp parallel for schedule(static)
        for (int r = 0; r < N; r++)
            memcpy(sc->deo + (size_t)r * D, dy + (size_t)a->slot_tok[r] * D, sizeof(float) * D);
        experts_backward(g, a, s, w, sc, D, H);
        #pragma omp parallel for schedule(static)
        for (int r = 0; r < N; r++) {
            float *d = dx + (size_t)a->slot_tok[r] * D;
            const float *s2 = sc->dxg + (size_t)r * D;
            for (int i = 0; i < D; i++) d[i] += s2[i];
        }
        return;
    }
    int R = a->units, E = s->experts, k = s->top_k, rpu = s->route_image ? T : 1;
    /* d(expert outputs) = gate * dy; d(gate) = dy . expert output */
    #pragma omp parallel for schedule(static)
    for (int u = 0; u < R; u++)
        for (int j = 0; j < k; j++) {
            size_t uc = (size_t)u * k + j;
            int row = a->uc_row[uc];
            double acc = 0;
            if (row >= 0) {
                float gt = a->gate[uc];
                for (int t = 0; t < rpu; t++) {
                    const float *d = dy + (size_t)(u * rpu + t) * D;
                    const float *eo = a->eo + (size_t)(row + t) * D;
                    float *de = sc->deo + (size_t)(row + t) * D;
                    for (int i = 0; i < D; i++) { de[i] = gt * d[i]; acc += (double)d[i] * eo[i]; }
                }
            }
            sc->dgate[uc] = (float)acc;
        }
    experts_backward(g, a, s, w, sc, D, H);
    #pragma omp parallel for schedule(static)
    for (int u = 0; u < R; u++)
        for (int j = 0; j < k; j++) {
            int row = a->uc_row[(size_t)u * k + j];
            if (row < 0) continue;
            for (int t = 0; t < rpu; t++) {
                float *d = dx + (size_t)(u * rpu + t) * D;
                const float *s2 = sc->dxg + (size_t)(row + t) * D;
                for (int i = 0; i < D; i++) d[i] += s2[i];
            }
        }
    if (s->shared) {
        size_t NH = (size_t)N * H;
        linear_backward_set(sc->dh2, g->shared.fc2_w, g->shared.fc2_b, dy, a->sh_a, w->shared.fc2_w, N, H, D);
        gelu_backward_set(sc->dh1, sc->dh2, a->sh_h, NH);
        linear_backward(dx, g->shared.fc1_w, g->shared.fc1_b, sc->dh1, x, w->shared.fc1_w, N, D, H);
    }
    /* router: gates, load-balancing loss, softmax, z-loss */
    double cz = 2.0 * s->zloss_coef / R;
    #pragma omp parallel for schedule(static)
    for (int u = 0; u < R; u++) {
        const float *p = a->probs + (size_t)u * E, *l = a->logits + (size_t)u * E;
        const int *c = a->choice + (size_t)u * k;
        const float *dg = sc->dgate + (size_t)u * k, *gt = a->gate + (size_t)u * k;
        float *dp = sc->dp + (size_t)u * E, *dl = sc->dlogits + (size_t)u * E;
        for (int e = 0; e < E; e++) dp[e] = (float)(s->aux_coef * E * a->frac[e] / R);
        if (k == 1) dp[c[0]] += dg[0];
        else {
            float S = 0, sg = 0;
            for (int j = 0; j < k; j++) { S += p[c[j]]; sg += dg[j] * gt[j]; }
            for (int j = 0; j < k; j++) dp[c[j]] += (dg[j] - sg) / S;
        }
        double dot = 0, mx = l[0], se = 0;
        for (int e = 0; e < E; e++) { dot += (double)p[e] * dp[e]; if (l[e] > mx) mx = l[e]; }
        for (int e = 0; e < E; e++) se += exp(l[e] - mx);
        double lse = mx + log(se);
        for (int e = 0; e < E; e++) dl[e] = (float)(p[e] * (dp[e] - dot) + cz * lse * p[e]);
    }
    if (!s->route_image) {
        linear_backward(dx, g->router_w, NULL, sc->dlogits, x, w->router_w, R, D, E);
        return;
    }
    linear_backward_set(sc->drin, g->router_w, NULL, sc->dlogits, a->rin, w->router_w, B, D, E);
    #pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            float *d = dx + ((size_t)b * T + t) * D;
            const float *r = sc->drin + (size_t)b * D;
            for (int i = 0; i < D; i++) d[i] += r[i] / T;
        }
}

double moe_flops_per_image(const MoeSpec *s, int T, int D, int H) {
    double ffn = 2.0 * 2.0 * T * (double)D * H;
    if (s->kind == MOE_RANDOM) return ffn;
    double f = s->top_k * ffn + (s->shared ? ffn : 0);
    f += s->route_image ? 2.0 * D * s->experts : 2.0 * T * (double)D * s->experts;
    return f;
}

/* Class-expert mutual information of routed MoE layers: the numeric measure
 * of claim (e) of results/CLAIMS.md ("routing specialises by class in deep
 * layers and not in shallow ones", ViMoE arXiv 2410.15732's routing heatmaps).
 *
 * Input: a run's routing.csv (docs/DESIGN.md 8.3: epoch, layer, class, expert,
 * count = routed assignments of the test set per true class and expert, each
 * of a unit's top-k choices counted) at its LAST epoch. Per MoE layer, with
 * N = the layer's total count, the joint distribution p(c, e) = count(c, e) / N
 * and its marginals p(c) = sum_e p(c, e), p(e) = sum_c p(c, e):
 *
 *   I(C; E) = sum over (c, e) with p(c, e) > 0 of  p(c, e) log2( p(c, e) / (p(c) p(e)) )   [bits]
 *
 * (Cover & Thomas, Elements of Information Theory, 2nd ed. 2006, eq. 2.28;
 * the plug-in estimate from the counts, biased upwards by about
 * (K - 1)(E - 1) / (2 N ln 2) bits (Miller 1955): 0.002 bits for K = 10
 * classes, E = 4 experts and N = 10^4 images, 50 times less for token
 * routing of 50 tokens per image.)
 * 0 <= I <= log2(min(K, E)) (K = classes with a count, E = experts): 0 when
 * the expert is independent of the class, log2(min(K, E)) when one determines
 * the other (one-to-one routing when K = E).
 *
 * Over seeds (the runs of one aggregate cell), per layer: mean and 95%
 * t-interval; deepest minus shallowest MoE layer of the cell, paired by run
 * (stats_paired_t: mean difference, 95% CI, paired t p, MDE), Holm over the
 * cells; a pooled row over the cells (stats_pooled). */
#ifndef EWA_ROUTING_MI_H
#define EWA_ROUTING_MI_H
#include "../core/err.h"

/* I(C; E) in bits of a K x E count table (count[k * E + e] >= 0, row k = a
 * class); NAN when every count is 0. */
double routing_mi_bits(const double *count, int K, int E);

/* One run's routing.csv at its last epoch: per MoE layer (ascending), the
 * MI in bits, the assignments counted and log2(min(classes with a count,
 * experts)). */
typedef struct {
    int epoch, nl, experts;
    int *layer, *classes;
    double *mi, *max_bits;
    long long *total;
} RoutingMI;

/* Reads path; ERR_RUNTIME naming the file (and line) for a missing column,
 * a field that is not a non-negative integer, or an implausible size. */
int routing_mi_read(const char *path, RoutingMI *out, Err *err);
void routing_mi_free(RoutingMI *r);

/* A routed run of an aggregate cell. */
typedef struct {
    const char *routing_csv, *run_id;
    long seed;
    int cell;   /* 0 .. ncells-1 */
} RoutingRun;

/* The cells of an aggregate table: ng grouping keys gname, per cell its label
 * and values vals[cell * ng + g]. */
typedef struct {
    int ncells, ng;
    const char *const *gname, *const *label, *const *vals;
} RoutingCells;

/* Reads every run's routing.csv and writes, when there is at least one run,
 * out_dir/routing_mi_runs.csv (run_id, seed, cell, layer, classes, experts,
 * assignments, mi_bits, max_bits) and out_dir/routing_mi.csv: columns cell,
 * the grouping keys, layer, vs_layer, n, mean_bits, sd_bits, ci_low,
 * ci_high, max_bits, t, p, p_holm, mde, n_pairs; rows per cell and layer
 * (mean MI over the n runs, its 95% CI; vs_layer, t, p empty), then per cell
 * with two or more MoE layers one row layer = deepest, vs_layer = shallowest:
 * the paired difference MI(deepest) - MI(shallowest) over its n_pairs runs
 * (p_holm: Holm over these rows), and a last row cell = "pooled" (n = cells
 * pooled, layer "deepest", vs_layer "shallowest") over the cells with >= 2
 * pairs. *nwritten = the runs read. */
int routing_mi_write(const char *out_dir, const RoutingRun *runs, int nruns, const RoutingCells *cells,
                     int *nwritten, Err *err);

#endif

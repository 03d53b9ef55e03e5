/* bin/ewa claims: a verdict on each claim of the EWA and ViMoE papers that
 * this harness tests, computed from the aggregated tables (issue 10) and
 * written to results/CLAIMS.md. Nothing in CLAIMS.md is typed by hand.
 *
 * The claims are defined in one INI file (paper_configs/claims.ini, read with
 * inih), one section [claim.ID] per claim, keys:
 *   text      the claim (required)          source   where it comes from
 *   test      paired | slope | routing_mi (required):
 *             paired: rows of TABLE/table.csv, each a cell against its
 *               baseline cell (bin/ewa aggregate: mean paired difference of
 *               final_top1 over seeds, 95% CI, paired t);
 *             slope: per seed, the least-squares slope of final_top1 over the
 *               column `x` (a number, or "last:L" = L MoE layers), from
 *               RUNS; per series (the cells that differ only in x) a
 *               one-sample t over the seeds' slopes (stats_ols_slope,
 *               stats_paired_t);
 *             routing_mi: the deepest-minus-shallowest rows of
 *               TABLE/routing_mi.csv (class-expert mutual information,
 *               routing_mi.h).
 *   table     directory of table.csv / routing_mi.csv, relative to the
 *             results directory (required)
 *   runs      the runs.csv (relative to the results directory) for slope
 *             tests, provenance and the grid's plan (no verdict while the
 *             grid is unfinished); default TABLE/runs.csv, or the parent's
 *             runs.csv for a table TABLE/../vs_NAME aggregated against
 *             another baseline
 *   select    key=value, ...: the rows (series) the claim is about; every
 *             pair must match (default: all)
 *   baseline  key=value the baseline cell of every selected row must have
 *             (paired; a table aggregated against another baseline is "no
 *             data", with the command that makes the right one)
 *   direction greater | less | flat (required)
 *   margin    >= 0, in the table's unit (top-1 as a fraction; slope: per unit
 *             of x; bits): the null value of the test is -margin (greater),
 *             +margin (less); flat: the equivalence interval (-margin,
 *             +margin), margin > 0. Default 0.
 *   primary   pooled [key=value] (the table's pooled row, that one when the
 *             table has one per value of its baseline key) | all (default)
 *   require   key=value, ...: settings the claim speaks of (e.g. 2D and 3D),
 *             each of which needs a selected row
 *   x         slope: the column along which the slope is taken
 *   figures   files under TABLE linked from CLAIMS.md (when present)
 *   equal_cost 1: (paired) every compared row must have its baseline cell's
 *             params_inference and flops_inference ("at equal inference
 *             cost"); a row that differs is noted and the claim cannot be
 *             supported
 *
 * Tests. Each selected row (series) is one test of the estimate d (mean
 * paired difference, mean slope, mean MI difference) with standard error se
 * and df = n - 1 (for table rows se = (ci_high - ci_low) / (2 t_{.975,df})):
 *   greater, less: two-sided p of d against the null value v (= -margin or
 *     +margin; margin 0 is the table's own paired t p), t = (d - v) / se;
 *     "in the claimed direction" means d > v (greater) or d < v (less).
 *     greater with margin > 0 is a non-inferiority test: supported means the
 *     95% CI lies above -margin.
 *   flat: two-sided p of |d| against the margin, t = (|d| - margin) / se;
 *     in the claimed direction when |d| < margin: supported means the 95% CI
 *     lies inside (-margin, +margin) (two one-sided tests at 0.025 each);
 *     contradicted means it lies entirely outside.
 * The p of the tests of one claim are Holm-adjusted together (the claim is
 * the family; with margin 0 and every compared cell of a table selected this
 * is the table's p_holm). A test is
 *   supported     Holm-adjusted p < 0.05 and d in the claimed direction,
 *   contradicted  Holm-adjusted p < 0.05 and d the other way,
 *   inconclusive  otherwise (also: no test, n < 2 or zero variance).
 * The pooled row (primary = pooled) is one test of its own, not adjusted.
 *
 * A claim's verdict:
 *   no data       the table (or runs.csv) is missing or unusable, or no row
 *                 is selected;
 *   contradicted  the primary test or any test is contradicted (a general
 *                 claim falls with one significant counterexample);
 *   supported     the primary test (the pooled row; with primary = all every
 *                 test) is supported, nothing is contradicted, every
 *                 `require` setting has a row and (equal_cost) no row
 *                 differs in inference cost;
 *   inconclusive  otherwise: CLAIMS.md gives the interval and the MDE (alpha
 *                 0.05, power 0.8, at the current n) of every test.
 * Claims are not adjusted across each other: each answers its own question. */
#ifndef EWA_CLAIMS_H
#define EWA_CLAIMS_H
#include "../core/err.h"

/* Reads the claim definitions from config, the tables under results_dir,
 * and writes out (Markdown; links relative to out's directory) and, beside
 * it, out with ".md" replaced by ".csv" (one row per test, pooled first:
 * claim, claim_verdict, row, estimate, ci_low, ci_high, p, p_holm, n, mde,
 * verdict, note, train_seconds_ratio, flops_train_ratio (a paired row's mean
 * training seconds and FLOPs over its baseline cell's, from table.csv; empty
 * when unknown); unscaled: top-1 as a fraction, bits; a claim without rows
 * has one row with its reason in note), both atomically. Prints one
 * line per claim (id, verdict). ERR_USAGE for a bad config (file and line),
 * ERR_RUNTIME when out cannot be written; a missing or unusable table is a
 * "no data" verdict, not an error. */
int claims_run(const char *config, const char *results_dir, const char *out, Err *err);

#endif

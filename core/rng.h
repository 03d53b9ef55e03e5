/* Seeded, splittable pseudo-random numbers (xoshiro256** seeded by
 * splitmix64). Every random decision in a run draws from an Rng derived from
 * the run's seed, so a run is reproducible for a seed and thread count. */
#ifndef EWA_RNG_H
#define EWA_RNG_H
#include <stdint.h>
#include <stddef.h>

typedef struct { uint64_t s[4]; } Rng;

void rng_seed(Rng *r, uint64_t seed);
/* An independent stream derived from (seed, stream id). */
void rng_seed_stream(Rng *r, uint64_t seed, uint64_t stream);
uint64_t rng_u64(Rng *r);
/* Uniform in [0, 1). */
float rng_uniform(Rng *r);
/* Uniform integer in [0, n). */
uint32_t rng_below(Rng *r, uint32_t n);
/* Standard normal (Box-Muller). */
float rng_normal(Rng *r);
/* Normal(0, std) truncated to [-2 std, 2 std] (timm's trunc_normal_). */
float rng_trunc_normal(Rng *r, float std);
/* Fisher-Yates shuffle of idx[0..n). */
void rng_shuffle(Rng *r, int *idx, size_t n);

#endif

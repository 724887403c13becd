// rng.h — a small, explicit random generator (xoshiro256**). Its whole state is the struct, so it can
// be saved in a checkpoint and restored for a bit-identical continuation.
#pragma once
#include <stdint.h>

typedef struct s2s_rng {
    uint64_t s[4];
} s2s_rng;

void s2s_rng_seed(s2s_rng *r, uint64_t seed);
// One stream per named tensor: seeded by seed ^ FNV-1a(name), so values depend on (seed, name) only, never on
// the order in which tensors are registered or initialised.
void s2s_rng_seed_named(s2s_rng *r, uint64_t seed, const char *name);
uint64_t s2s_rng_u64(s2s_rng *r);
double s2s_rng_uniform(s2s_rng *r);                 // [0, 1)
float s2s_rng_normal(s2s_rng *r);                   // standard normal (Box-Muller)
void s2s_rng_fill_normal(s2s_rng *r, float *x, int64_t n, float std);

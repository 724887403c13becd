#include "rng.h"
#include <math.h>
#include <string.h>
#include "../base/mix.h"

void s2s_rng_seed(s2s_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = s2s_mix64(seed += S2S_GOLDEN64);  // splitmix64
}

void s2s_rng_seed_named(s2s_rng *r, uint64_t seed, const char *name) {
    s2s_rng_seed(r, seed ^ s2s_fnv1a(S2S_FNV1A_OFFSET, name, strlen(name)));
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t s2s_rng_u64(s2s_rng *r) {
    uint64_t *s = r->s, out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

double s2s_rng_uniform(s2s_rng *r) { return (double)(s2s_rng_u64(r) >> 11) * 0x1.0p-53; }

float s2s_rng_normal(s2s_rng *r) {
    double u1 = s2s_rng_uniform(r), u2 = s2s_rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

void s2s_rng_fill_normal(s2s_rng *r, float *x, int64_t n, float std) {
    for (int64_t i = 0; i < n; i++) x[i] = std * s2s_rng_normal(r);
}

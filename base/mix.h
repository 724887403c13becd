// mix.h — the integer mixers every seed derivation and fingerprint in s2s is built from, so each exists once:
// the splitmix64 finaliser (seeds, counter-based draws) and FNV-1a (names, plan / index fingerprints). Inline:
// they sit in hot loops (the loader's shuffle). Changing either changes every random initialisation, shuffle and
// plan hash (docs/loader.md writes the loader's formulas out).
#pragma once
#include <stddef.h>
#include <stdint.h>

#define S2S_GOLDEN64 0x9e3779b97f4a7c15ull      // 2^64 / golden ratio: splitmix64's increment
#define S2S_FNV1A_OFFSET 0xcbf29ce484222325ull  // FNV-1a's 64-bit offset basis

// splitmix64's output function (Steele, Lea, Flood 2014): a bijective 64-bit mix.
static inline uint64_t s2s_mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

// FNV-1a over n bytes, continuing from h (start from S2S_FNV1A_OFFSET).
static inline uint64_t s2s_fnv1a(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

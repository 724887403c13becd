// attention.c — flash-attention style packed attention on the CPU (see attention.h).
//
// Tile products. Every product here is a small tile (~96 stacked query rows x up to 192 keys, D or
// up to 192 deep) whose operands this file lays out itself, so instead of cblas (which repacks both
// operands on every call) a register-blocked kernel computes C[6 rows, 4 vectors] with native vectors
// (GCC vector extension, as wide as the ISA: GCC keeps a vector wider than the registers in memory,
// and an AVX2-only build was 20x slower when this file used 16-float vectors throughout). On one Zen 4
// core it runs at ~114 GFLOP/s vs ~95 for OpenBLAS at these sizes; the whole op was 8% faster than the
// same code with cblas tiles at D=128 and 4% slower at D=64 (see the attention report for numbers). The
// kernel broadcasts A(i, k) from any strides, so A may be read transposed (dV += P^T dO, dK += dS^T Q),
// and wants B row-major, so K and V are also packed transposed per key block (KT, VT [D, BK]) for the
// S = Q K^T and dP = dO V^T products. Packed rows are zero-padded to Dp = D rounded up to 16 (a whole
// number of vectors on any ISA), and a tile only computes the score columns some row of it can see.
//
// Layout. The query heads of one GQA group read the same keys, so a query tile stacks them: its
// rows are (row t, head j of the group), t-major, packed group-major Qp [Hkv, T, g, Dp]. A group
// then does one product of 96 stacked rows per key tile instead of g small ones. All packs are O(T)
// scratch, released before the op returns.
//
// Forward: one work unit per (sample, kv head, query block) walks the key blocks with an online
// softmax (base 2: scores are scaled by scale*log2(e), so exp becomes exp2) and writes its output
// rows and their logsumexp. Causal tiles wholly above the diagonal are never visited.
//
// Backward (FA2, one pass): one work unit per (sample, kv head, chunk of key blocks) owns dK/dV of
// its key blocks and, for every query block that sees them, recomputes P = exp2(S - lse), then
// dV += P^T dO, dP = dO V^T, dS = scale P (dP - rowsum(dO O)), dK += dS^T Q, dQ += dS K. dQ of a
// query row gathers from all key blocks of its sample: with one chunk per (sample, kv head) the
// unit owns those dQ rows outright; with several (too few (sample, head) pairs to keep the threads
// busy) each chunk writes its own partial dQ and the partials are summed in chunk order afterwards.
// Five tile products per tile pair, no atomics, and every output's summation order is fixed by the
// shapes and the thread count alone.
//
// Scheduling is dynamic (units differ in cost: causal rows, unequal samples). That does not break
// determinism: each unit writes only outputs it owns, in an order fixed inside the unit, and its
// per-thread workspace is fully rewritten before it is read.
#include "attention.h"
#include <math.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "../../autograd/check.h"

#ifndef ATTN_BK  // (overridable for tuning runs)
#define ATTN_BK 192  // keys per tile: 12 vectors, 32 six-row blocks; deep products, few softmax rescales
#endif
#define ATTN_MQ 96   // stacked query rows per tile (rows x heads of a group): whole 6-row blocks
#define LOG2E 1.44269504088896340736f

// One native vector of VL floats (AVX-512: 16, AVX: 8, SSE2: 4); aligned(4): loads and stores need not be
// aligned; may_alias: they read float arrays. Layouts stay in units of 16 floats (pad16), a multiple of VL.
#if defined(__AVX512F__)
#define VL 16
#define MK_W 4  // kernel width in vectors: 6 x 4 accumulators of 32 registers
#elif defined(__AVX__)
#define VL 8
#define MK_W 2  // 6 x 2 accumulators of 16 registers
#else
#define VL 4
#define MK_W 2  // (SSE2 also has 16 registers)
#endif
typedef float f32v __attribute__((vector_size(VL * 4), aligned(4), may_alias));

static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }
static inline int64_t pad16(int64_t n) { return (n + 15) & ~(int64_t)15; }  // also keeps 64-byte alignment
// Query rows per tile for a GQA group of g heads: ATTN_MQ stacked rows (measured best at g = 1, 2, 4).
static inline int64_t query_block(int64_t g) { return max64(1, ATTN_MQ / g); }

static int n_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}
static int thread_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

// ---- tile products -----------------------------------------------------------------------------------

// Per-thread count of tile products for ctx->stats (one cache line each: no false sharing).
typedef struct { int64_t calls; double flops; char pad[48]; } mm_count;

// C[R, VL*W] = alpha * sum_k A(r, k) B[k, 0:VL*W] (+ C when acc), A(r, k) = A[r*sai + k*sak].
// R*W accumulators stay in registers.
#define ATTN_MK(R, W)                                                                                     \
    static void mk_##R##x##W(int64_t K, const float *A, int64_t sai, int64_t sak, const float *B,          \
                             int64_t ldb, float *C, int64_t ldc, float alpha, bool acc) {                \
        f32v c[R][W];                                                                                     \
        for (int r = 0; r < R; r++)                                                                       \
            for (int w = 0; w < W; w++) c[r][w] = (f32v){0};                                              \
        for (int64_t k = 0; k < K; k++) {                                                                 \
            f32v b[W];                                                                                    \
            for (int w = 0; w < W; w++) b[w] = *(const f32v *)(B + k * ldb + VL * w);                    \
            for (int r = 0; r < R; r++) {                                                                 \
                const float a = A[r * sai + k * sak];                                                     \
                for (int w = 0; w < W; w++) c[r][w] += a * b[w];                                          \
            }                                                                                             \
        }                                                                                                 \
        for (int r = 0; r < R; r++)                                                                       \
            for (int w = 0; w < W; w++) {                                                                 \
                f32v *p = (f32v *)(C + r * ldc + VL * w);                                                 \
                *p = acc ? *p + alpha * c[r][w] : alpha * c[r][w];                                        \
            }                                                                                             \
    }
typedef void (*mk_fn)(int64_t, const float *, int64_t, int64_t, const float *, int64_t, float *, int64_t, float, bool);
#if MK_W == 4
#define ATTN_MK_ROW(R) ATTN_MK(R, 1) ATTN_MK(R, 2) ATTN_MK(R, 3) ATTN_MK(R, 4)
#define MK_ROW(R) {mk_##R##x1, mk_##R##x2, mk_##R##x3, mk_##R##x4}
#else
#define ATTN_MK_ROW(R) ATTN_MK(R, 1) ATTN_MK(R, 2)
#define MK_ROW(R) {mk_##R##x1, mk_##R##x2}
#endif
ATTN_MK_ROW(1) ATTN_MK_ROW(2) ATTN_MK_ROW(3) ATTN_MK_ROW(4) ATTN_MK_ROW(5) ATTN_MK_ROW(6)
static const mk_fn mk_table[6][MK_W] = {MK_ROW(1), MK_ROW(2), MK_ROW(3), MK_ROW(4), MK_ROW(5), MK_ROW(6)};

// C [M, 16*n16] = alpha * A B (+ C when acc); A(i, k) = A[i*sai + k*sak] for i < M, k < K;
// B [K, 16*n16] row-major (ldb). Column panels of MK_W vectors, row blocks of 6.
static void tile_mm(mm_count *cnt, int64_t M, int64_t n16, int64_t K, const float *A, int64_t sai, int64_t sak,
                    const float *B, int64_t ldb, float *C, int64_t ldc, float alpha, bool acc) {
    const int64_t nv = n16 * (16 / VL);
    for (int64_t j = 0; j < nv; j += MK_W) {
        const int w = (int)min64(MK_W, nv - j);
        for (int64_t i = 0; i < M; i += 6)
            mk_table[min64(6, M - i) - 1][w - 1](K, A + i * sai, sai, sak, B + VL * j, ldb, C + i * ldc + VL * j,
                                                 ldc, alpha, acc);
    }
    cnt->calls++;
    cnt->flops += 2.0 * (double)M * (double)(16 * n16) * (double)K;
}

static void counts_merge(s2s_ctx *ctx, const mm_count *c, int nt) {
    for (int i = 0; i < nt; i++) {  // integer-valued flop counts: exact in double, any order
        ctx->stats.gemm_calls += c[i].calls;
        ctx->stats.gemm_flops += c[i].flops;
    }
}

// ---- vector helpers ----------------------------------------------------------------------------------

typedef int32_t i32v __attribute__((vector_size(VL * 4)));  // lane masks (-1 / 0) and exponent bits
#if VL == 16
static const i32v IOTA = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
#elif VL == 8
static const i32v IOTA = {0, 1, 2, 3, 4, 5, 6, 7};
#else
static const i32v IOTA = {0, 1, 2, 3};
#endif

static inline f32v vld(const float *p) { return *(const f32v *)p; }
static inline void vst(float *p, f32v v) { *(f32v *)p = v; }
static inline f32v vsplat(float x) { return (f32v){0} + x; }
static inline f32v vsel(i32v m, f32v a, f32v b) { return (f32v)(((i32v)a & m) | ((i32v)b & ~m)); }
static inline f32v vmax(f32v a, f32v b) { return vsel(a > b, a, b); }
static inline i32v lanes_below(int64_t j, int64_t n) { return IOTA + (int32_t)j < (i32v){0} + (int32_t)n; }

// Horizontal sum / max as a fixed pairwise tree (deterministic, log2(VL) shuffles).
#if VL == 16
#define HSTEPS(OP)                                                                                 \
    v = OP(v, __builtin_shuffle(v, (i32v){8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7})); \
    v = OP(v, __builtin_shuffle(v, (i32v){4, 5, 6, 7, 0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 15})); \
    v = OP(v, __builtin_shuffle(v, (i32v){2, 3, 0, 1, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15})); \
    v = OP(v, __builtin_shuffle(v, (i32v){1, 0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}));
#elif VL == 8
#define HSTEPS(OP)                                                   \
    v = OP(v, __builtin_shuffle(v, (i32v){4, 5, 6, 7, 0, 1, 2, 3})); \
    v = OP(v, __builtin_shuffle(v, (i32v){2, 3, 0, 1, 4, 5, 6, 7})); \
    v = OP(v, __builtin_shuffle(v, (i32v){1, 0, 2, 3, 4, 5, 6, 7}));
#else
#define HSTEPS(OP)                                       \
    v = OP(v, __builtin_shuffle(v, (i32v){2, 3, 0, 1})); \
    v = OP(v, __builtin_shuffle(v, (i32v){1, 0, 2, 3}));
#endif
static inline f32v vadd(f32v a, f32v b) { return a + b; }
static inline float hsum(f32v v) {
    HSTEPS(vadd)
    return v[0];
}
static inline float hmax(f32v v) {
    HSTEPS(vmax)
    return v[0];
}

// 2^x for softmax arguments (x <= ~0): x = n + f with n an integer and |f| <= 1/2, 2^f by the
// Cephes exp2f polynomial (relative error ~2e-7), 2^n through the exponent bits. Below -127 the
// result is 0 (and -inf gives 0, not NaN).
static inline f32v exp2v(f32v x) {
    x = vmax(x, vsplat(-127.0f));
    const f32v n = (x + 0x1.8p23f) - 0x1.8p23f;  // round to nearest (no -ffast-math, so not folded)
    const f32v f = x - n;
    f32v p = vsplat(1.535336188319500e-4f);
    p = p * f + 1.339887440266574e-3f;
    p = p * f + 9.618437357674640e-3f;
    p = p * f + 5.550332471162809e-2f;
    p = p * f + 2.402264791363012e-1f;
    p = p * f + 6.931472028550421e-1f;
    p = p * f + 1.0f;
    const i32v e = (__builtin_convertvector(n, i32v) + 127) << 23;  // 2^n; 0 when n = -127
    return p * (f32v)e;
}

// Score-row steps over the first w (a multiple of 16, so of VL) columns of a tile row; keys j >= n are
// masked (p = 0). Only the vector holding key n pays for a mask.
static inline float row_max(const float *s, int64_t n) {
    f32v m = vsplat(-INFINITY);
    int64_t j = 0;
    for (; j + VL <= n; j += VL) m = vmax(m, vld(s + j));
    if (j < n) m = vmax(m, vsel(lanes_below(j, n), vld(s + j), vsplat(-INFINITY)));
    return hmax(m);  // -inf when the row sees none of these keys
}

// s[j] <- exp2(s[j] - m) for j < n, 0 for n <= j < w; returns the sum.
static inline float row_exp2(float *s, int64_t w, int64_t n, float m) {
    f32v acc = vsplat(0.0f);
    int64_t j = 0;
    for (; j + VL <= n; j += VL) {
        const f32v p = exp2v(vld(s + j) - m);
        vst(s + j, p);
        acc += p;
    }
    if (j < n) {
        const f32v p = vsel(lanes_below(j, n), exp2v(vld(s + j) - m), vsplat(0.0f));
        vst(s + j, p);
        acc += p;
        j += VL;
    }
    for (; j < w; j += VL) vst(s + j, vsplat(0.0f));
    return hsum(acc);
}

// P row of the backward: s[j] <- exp2(s[j] - lse) for j < n, 0 for n <= j < w.
static inline void row_p(float *s, int64_t w, int64_t n, float lse) {
    int64_t j = 0;
    for (; j + VL <= n; j += VL) vst(s + j, exp2v(vld(s + j) - lse));
    if (j < n) {
        vst(s + j, vsel(lanes_below(j, n), exp2v(vld(s + j) - lse), vsplat(0.0f)));
        j += VL;
    }
    for (; j < w; j += VL) vst(s + j, vsplat(0.0f));
}

// Keys of the tile starting at k0 (N of them) that query row t may see: all, or (causal) those <= t.
static inline int64_t visible(const attn_shape *sh, int64_t t, int64_t k0, int64_t N) {
    return sh->causal ? max64(0, min64(N, t - k0 + 1)) : N;
}

size_t attention_lse_floats(const attn_shape *sh) { return (size_t)(sh->T * sh->Hq); }

// ---- packing -----------------------------------------------------------------------------------------

// Key blocks of all samples, numbered sample by sample (block kb of sample s is boff[s] + kb); a
// block never spans two samples.
static int64_t key_blocks(const attn_shape *sh, int64_t *boff) {
    int64_t nb = 0;
    for (int s = 0; s < sh->S; s++) {
        boff[s] = nb;
        nb += (sh->cu[s + 1] - sh->cu[s] + ATTN_BK - 1) / ATTN_BK;
    }
    return nb;
}

// The packs run as worksharing loops inside one parallel region per op (no barrier between them:
// they write disjoint buffers), so a busy machine costs one synchronisation, not one per pack.

// src [T, H*G, D] (head h*G + j) -> dst [H, T, G, Dp], zero-padded columns.
static void pack_rows(float *dst, const float *src, int64_t T, int64_t H, int64_t G, int64_t D, int64_t Dp) {
    #pragma omp for schedule(static) nowait
    for (int64_t t = 0; t < T; t++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t j = 0; j < G; j++) {
                float *d = dst + ((h * T + t) * G + j) * Dp;
                memcpy(d, src + ((t * H + h) * G + j) * D, (size_t)D * sizeof(float));
                for (int64_t e = D; e < Dp; e++) d[e] = 0.0f;
            }
}

// src [T, H, D] -> dst [H, NB, D, BK]: each key block transposed, keys past the block's end zero.
static void pack_blocks_t(float *dst, const float *src, const attn_shape *sh, const int64_t *boff, int64_t NB,
                          int64_t H) {
    const int64_t D = sh->D;
    #pragma omp for schedule(static) collapse(2) nowait
    for (int64_t h = 0; h < H; h++)
        for (int s = 0; s < sh->S; s++) {
            const int64_t a = sh->cu[s], b = sh->cu[s + 1];
            for (int64_t k0 = a; k0 < b; k0 += ATTN_BK) {
                const int64_t N = min64(ATTN_BK, b - k0);
                float *d = dst + ((h * NB + boff[s] + (k0 - a) / ATTN_BK) * D) * ATTN_BK;  // [D, BK]
                for (int64_t e = 0; N < ATTN_BK && e < D; e++)
                    memset(d + e * ATTN_BK + N, 0, (size_t)(ATTN_BK - N) * sizeof(float));
                for (int64_t j = 0; j < N; j++) {  // contiguous reads; strided writes stay in one L2-sized block
                    const float *row = src + ((k0 + j) * H + h) * D;
                    for (int64_t e = 0; e < D; e++) d[e * ATTN_BK + j] = row[e];
                }
            }
        }
}

// ---- forward -----------------------------------------------------------------------------------------

typedef struct { int32_t s, h, blk; } attn_unit;  // sample, kv head, query block (fwd) or key chunk (bwd)

typedef struct {
    const float *Qp;   // [Hkv, T, g, Dp]
    const float *KT;   // [Hkv, NB, D, BK]
    const float *Vp;   // [Hkv, T, Dp]
    const int64_t *boff;
    int64_t NB, Dp;
} fwd_args;

static void fwd_unit(const attn_shape *sh, const fwd_args *A, mm_count *cnt, float *ws, attn_unit u, float *out,
                     float *lse2) {
    const int64_t T = sh->T, D = sh->D, Dp = A->Dp, Hq = sh->Hq, g = sh->Hq / sh->Hkv, BQ = query_block(g), MQ = BQ * g;
    const int64_t a = sh->cu[u.s], b = sh->cu[u.s + 1];
    const int64_t q0 = a + (int64_t)u.blk * BQ, q1 = min64(q0 + BQ, b), M = (q1 - q0) * g;
    const float c = sh->scale * LOG2E;
    const float *Qt = A->Qp + (u.h * T + q0) * g * Dp;                      // [M, Dp] rows (t, j), t-major
    const float *KTs = A->KT + (u.h * A->NB + A->boff[u.s]) * D * ATTN_BK;  // the sample's [D, BK] blocks
    float *S = ws;                // [M, BK] scores, then probabilities
    float *O = S + MQ * ATTN_BK;  // [M, Dp] unnormalised output
    float *m = O + MQ * Dp;       // [M] running max (base 2)
    float *l = m + pad16(MQ);     // [M] running sum of exp2(s - m)

    const int64_t kend = sh->causal ? q1 : b;  // keys after the tile's last row are all masked
    for (int64_t k0 = a; k0 < kend; k0 += ATTN_BK) {
        const int64_t Ne = min64(ATTN_BK, kend - k0);  // keys some row of the tile sees
        const int64_t w = pad16(Ne);                   // score columns computed (KT is zero-padded)
        const bool first = k0 == a;  // every row sees key a, so the first tile initialises all rows
        tile_mm(cnt, M, w / 16, D, Qt, Dp, 1, KTs + (k0 - a) * D, ATTN_BK, S, ATTN_BK, c, false);
        for (int64_t r = 0; r < M; r++) {
            float *sr = S + r * ATTN_BK;
            const int64_t n = visible(sh, q0 + r / g, k0, Ne);
            const float mx = row_max(sr, n);
            const float mnew = first ? mx : fmaxf(m[r], mx);
            const float sum = row_exp2(sr, w, n, mnew);
            if (first) {
                l[r] = sum;
            } else {
                const float alpha = exp2f(m[r] - mnew);
                l[r] = l[r] * alpha + sum;
                if (alpha != 1.0f)
                    for (int64_t d = 0; d < Dp; d += VL) vst(O + r * Dp + d, vld(O + r * Dp + d) * alpha);
            }
            m[r] = mnew;
        }
        tile_mm(cnt, M, Dp / 16, Ne, S, ATTN_BK, 1, A->Vp + (u.h * T + k0) * Dp, Dp, O, Dp, 1.0f, !first);
    }
    for (int64_t r = 0; r < M; r++) {
        const int64_t t = q0 + r / g, h = u.h * g + r % g;
        const float inv = 1.0f / l[r];
        float *o = out + (t * Hq + h) * D;
        for (int64_t d = 0; d < D; d++) o[d] = O[r * Dp + d] * inv;
        lse2[(u.h * T + q0) * g + r] = m[r] + log2f(l[r]);
    }
}

void attention_forward_cpu(s2s_ctx *ctx, const attn_shape *sh, float *out, float *lse2, const float *q,
                           const float *k, const float *v) {
    const int64_t T = sh->T, D = sh->D, Dp = pad16(D), Hq = sh->Hq, Hkv = sh->Hkv, g = Hq / Hkv;
    const int nt = n_threads();
    s2s_arena_mark mark = s2s_arena_get_mark(ctx->cur);  // everything below is released on return

    int64_t *boff = s2s_scratch_alloc(ctx, (size_t)sh->S * sizeof *boff);
    const int64_t NB = key_blocks(sh, boff);
    float *Qp = s2s_scratch_alloc(ctx, (size_t)(T * Hq * Dp) * sizeof(float));            // [Hkv, T, g, Dp]
    float *KT = s2s_scratch_alloc(ctx, (size_t)(Hkv * NB * D * ATTN_BK) * sizeof(float));  // [Hkv, NB, D, BK]
    float *Vp = s2s_scratch_alloc(ctx, (size_t)(T * Hkv * Dp) * sizeof(float));           // [Hkv, T, Dp]
    #pragma omp parallel num_threads(nt) if (T * Hq * D > 65536)
    {
        pack_rows(Qp, q, T, Hkv, g, D, Dp);
        pack_blocks_t(KT, k, sh, boff, NB, Hkv);
        pack_rows(Vp, v, T, Hkv, 1, D, Dp);
    }
    const fwd_args A = {Qp, KT, Vp, boff, NB, Dp};

    // Units head by head (consecutive units share K/V tiles in cache), query blocks costliest first
    // (causal: late blocks see the most keys) so the dynamic schedule ends on cheap units.
    int64_t n_units = 0;
    const int64_t BQ = query_block(g);
    for (int s = 0; s < sh->S; s++) n_units += Hkv * ((sh->cu[s + 1] - sh->cu[s] + BQ - 1) / BQ);
    attn_unit *units = s2s_scratch_alloc(ctx, (size_t)max64(n_units, 1) * sizeof *units);
    int64_t nu = 0;
    for (int s = 0; s < sh->S; s++) {
        const int32_t nqb = (int32_t)((sh->cu[s + 1] - sh->cu[s] + BQ - 1) / BQ);
        for (int32_t h = 0; h < Hkv; h++)
            for (int32_t qb = nqb - 1; qb >= 0; qb--) units[nu++] = (attn_unit){s, h, qb};
    }

    const int64_t MQ = BQ * g, wsf = MQ * ATTN_BK + MQ * Dp + 2 * pad16(MQ);  // per-thread floats
    float *ws = s2s_scratch_alloc(ctx, (size_t)(nt * wsf) * sizeof(float));
    mm_count *cnt = s2s_scratch_alloc(ctx, (size_t)nt * sizeof *cnt);
    memset(cnt, 0, (size_t)nt * sizeof *cnt);
    #pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
    for (int64_t i = 0; i < n_units; i++) {
        const int tid = thread_id();
        fwd_unit(sh, &A, &cnt[tid], ws + tid * wsf, units[i], out, lse2);
    }
    counts_merge(ctx, cnt, nt);
    s2s_arena_rewind(ctx->cur, mark);
}

// ---- backward ----------------------------------------------------------------------------------------

typedef struct {
    float *dk, *dv;          // [T, Hkv, D] or NULL
    const float *Qp, *dOp;   // [Hkv, T, g, Dp]
    const float *KT, *VT;    // [Hkv, NB, D, BK]
    const float *Kp;         // [Hkv, T, Dp]
    const float *lse2, *Dv;  // [Hkv, T, g]
    const int64_t *boff;
    int64_t NB, Dp;
    int nch;                 // key-block chunks per (sample, kv head)
} bwd_args;

// dqp: this unit's chunk's dQ accumulator [Hkv, T, g, Dp] (group-major like Qp, so tile products
// accumulate into it in place), or NULL when q needs no gradient.
static void bwd_unit(const attn_shape *sh, const bwd_args *A, mm_count *cnt, float *ws, attn_unit u, float *dqp) {
    const int64_t T = sh->T, D = sh->D, Dp = A->Dp, Hq = sh->Hq, Hkv = sh->Hkv, g = Hq / Hkv;
    const int64_t BQ = query_block(g), MQ = BQ * g;
    const int64_t a = sh->cu[u.s], b = sh->cu[u.s + 1];
    const int64_t nkb = (b - a + ATTN_BK - 1) / ATTN_BK;
    const float c = sh->scale * LOG2E;
    const bool want_ds = dqp || A->dk;
    float *P = ws;                    // [M, BK] probabilities
    float *dP = P + MQ * ATTN_BK;     // [M, BK] dO V^T, then dS
    float *dKa = dP + MQ * ATTN_BK;   // [BK, Dp] dK of the key block
    float *dVa = dKa + ATTN_BK * Dp;  // [BK, Dp] dV of the key block

    // Round-robin key blocks over chunks: with causal masks, early key blocks are seen by more
    // queries, so contiguous chunks would be unequal.
    for (int64_t kb = u.blk; kb < nkb; kb += A->nch) {
        const int64_t k0 = a + kb * ATTN_BK, N = min64(ATTN_BK, b - k0);
        const int64_t blk = ((u.h * A->NB + A->boff[u.s] + kb) * D) * ATTN_BK;
        const float *KTb = A->KT + blk, *VTb = A->VT + blk;  // [D, BK]
        const float *Kb = A->Kp + (u.h * T + k0) * Dp;       // [N, Dp]
        memset(dKa, 0, (size_t)(N * Dp) * sizeof(float));
        memset(dVa, 0, (size_t)(N * Dp) * sizeof(float));
        // Causal: query blocks that end before k0 see none of these keys.
        const int64_t qs = sh->causal ? a + (k0 - a) / BQ * BQ : a;
        for (int64_t q0 = qs; q0 < b; q0 += BQ) {
            const int64_t q1 = min64(q0 + BQ, b), M = (q1 - q0) * g;
            const int64_t Ne = sh->causal ? min64(N, q1 - k0) : N;  // keys some row of the tile sees
            const int64_t w = pad16(Ne);                             // score columns computed
            const int64_t ro = (u.h * T + q0) * g;  // first stacked row of the tile
            const float *Qt = A->Qp + ro * Dp, *dOt = A->dOp + ro * Dp;  // [M, Dp]
            const float *lt = A->lse2 + ro, *Dt = A->Dv + ro;            // [M]
            tile_mm(cnt, M, w / 16, D, Qt, Dp, 1, KTb, ATTN_BK, P, ATTN_BK, c, false);
            for (int64_t r = 0; r < M; r++) {
                float *pr = P + r * ATTN_BK;
                const int64_t n = visible(sh, q0 + r / g, k0, Ne);
                row_p(pr, w, n, lt[r]);
            }
            if (A->dv)  // dV[key] += sum_r P[r, key] dO[r]
                tile_mm(cnt, Ne, Dp / 16, M, P, 1, ATTN_BK, dOt, Dp, dVa, Dp, 1.0f, true);
            if (!want_ds) continue;
            tile_mm(cnt, M, w / 16, D, dOt, Dp, 1, VTb, ATTN_BK, dP, ATTN_BK, 1.0f, false);
            for (int64_t r = 0; r < M; r++) {
                float *ds = dP + r * ATTN_BK;
                const float *pr = P + r * ATTN_BK;
                for (int64_t j = 0; j < w; j += VL) vst(ds + j, sh->scale * vld(pr + j) * (vld(ds + j) - Dt[r]));
            }
            if (dqp) tile_mm(cnt, M, Dp / 16, Ne, dP, ATTN_BK, 1, Kb, Dp, dqp + ro * Dp, Dp, 1.0f, true);
            if (A->dk)  // dK[key] += sum_r dS[r, key] Q[r]
                tile_mm(cnt, Ne, Dp / 16, M, dP, 1, ATTN_BK, Qt, Dp, dKa, Dp, 1.0f, true);
        }
        for (int64_t kk = 0; kk < N; kk++) {
            const int64_t row = ((k0 + kk) * Hkv + u.h) * D;
            if (A->dk)
                for (int64_t e = 0; e < D; e++) A->dk[row + e] += dKa[kk * Dp + e];
            if (A->dv)
                for (int64_t e = 0; e < D; e++) A->dv[row + e] += dVa[kk * Dp + e];
        }
    }
}

void attention_backward_cpu(s2s_ctx *ctx, const attn_shape *sh, float *dq, float *dk, float *dv, const float *dout,
                            const float *out, const float *lse2, const float *q, const float *k, const float *v) {
    if (!dq && !dk && !dv) return;
    const int64_t T = sh->T, D = sh->D, Dp = pad16(D), Hq = sh->Hq, Hkv = sh->Hkv, g = Hq / Hkv;
    const int nt = n_threads();
    s2s_arena_mark mark = s2s_arena_get_mark(ctx->cur);

    int64_t *boff = s2s_scratch_alloc(ctx, (size_t)sh->S * sizeof *boff);
    const int64_t NB = key_blocks(sh, boff);
    float *Qp = s2s_scratch_alloc(ctx, (size_t)(T * Hq * Dp) * sizeof(float));            // [Hkv, T, g, Dp]
    float *dOp = s2s_scratch_alloc(ctx, (size_t)(T * Hq * Dp) * sizeof(float));           // [Hkv, T, g, Dp]
    float *KT = s2s_scratch_alloc(ctx, (size_t)(Hkv * NB * D * ATTN_BK) * sizeof(float));  // [Hkv, NB, D, BK]
    float *VT = s2s_scratch_alloc(ctx, (size_t)(Hkv * NB * D * ATTN_BK) * sizeof(float));  // [Hkv, NB, D, BK]
    float *Kp = s2s_scratch_alloc(ctx, (size_t)(T * Hkv * Dp) * sizeof(float));           // [Hkv, T, Dp]
    float *Dv = s2s_scratch_alloc(ctx, (size_t)(T * Hq) * sizeof(float));                 // [Hkv, T, g]
    #pragma omp parallel num_threads(nt) if (T * Hq * D > 65536)
    {
        pack_rows(Qp, q, T, Hkv, g, D, Dp);
        pack_rows(dOp, dout, T, Hkv, g, D, Dp);
        pack_blocks_t(KT, k, sh, boff, NB, Hkv);
        pack_blocks_t(VT, v, sh, boff, NB, Hkv);
        pack_rows(Kp, k, T, Hkv, 1, D, Dp);
        #pragma omp for schedule(static) nowait
        for (int64_t t = 0; t < T; t++)
            for (int64_t h = 0; h < Hq; h++) {  // D_i = rowsum(dO * O), FA2's softmax-backward term
                const float *o = out + (t * Hq + h) * D, *d_o = dout + (t * Hq + h) * D;  // [D]
                float acc[16] = {0}, sum = 0.0f;
                int64_t e = 0;
                for (; e + 16 <= D; e += 16)
                    for (int l = 0; l < 16; l++) acc[l] += o[e + l] * d_o[e + l];
                for (; e < D; e++) sum += o[e] * d_o[e];
                for (int l = 0; l < 16; l++) sum += acc[l];
                Dv[((h / g) * T + t) * g + h % g] = sum;
            }
    }

    // Chunks: enough (sample, kv head, chunk) units to keep every thread busy.
    int64_t busy = 0, max_nkb = 1;
    for (int s = 0; s < sh->S; s++) {
        const int64_t nkb = (sh->cu[s + 1] - sh->cu[s] + ATTN_BK - 1) / ATTN_BK;
        busy += nkb > 0;
        max_nkb = max64(max_nkb, nkb);
    }
    const int64_t base = busy * Hkv;
    int nch = 1;
    if (nt > 1 && dq && base > 0 && base < 4 * nt) nch = (int)min64((4 * nt + base - 1) / base, max_nkb);
    const size_t nqp = (size_t)(T * Hq * Dp);
    float *dqp = NULL;  // [nch, Hkv, T, g, Dp] dQ accumulators, one per chunk
    if (dq) {
        dqp = s2s_scratch_alloc(ctx, (size_t)nch * nqp * sizeof(float));
        #pragma omp parallel for schedule(static) num_threads(nt) if (nch * nqp > 65536)
        for (int64_t i = 0; i < nch * Hkv * T; i++) memset(dqp + i * g * Dp, 0, (size_t)(g * Dp) * sizeof(float));
    }
    const bwd_args A = {dk, dv, Qp, dOp, KT, VT, Kp, lse2, Dv, boff, NB, Dp, nch};
    const int64_t n_units = (int64_t)sh->S * Hkv * nch;

    const int64_t MQ = query_block(g) * g, wsf = 2 * MQ * ATTN_BK + 2 * ATTN_BK * Dp;  // per-thread floats
    float *ws = s2s_scratch_alloc(ctx, (size_t)(nt * wsf) * sizeof(float));
    mm_count *cnt = s2s_scratch_alloc(ctx, (size_t)nt * sizeof *cnt);
    memset(cnt, 0, (size_t)nt * sizeof *cnt);
    #pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
    for (int64_t i = 0; i < n_units; i++) {
        const attn_unit u = {(int32_t)(i / (Hkv * nch)), (int32_t)(i / nch % Hkv), (int32_t)(i % nch)};
        if (sh->cu[u.s + 1] == sh->cu[u.s]) continue;
        const int tid = thread_id();
        bwd_unit(sh, &A, &cnt[tid], ws + tid * wsf, u, dq ? dqp + (size_t)u.blk * nqp : NULL);
    }
    counts_merge(ctx, cnt, nt);
    if (dq) {  // dq += the chunks' accumulators, chunk 0 first, back in the [T, Hq, D] layout
        #pragma omp parallel for schedule(static) num_threads(nt) if (T * Hq * D > 65536)
        for (int64_t t = 0; t < T; t++)
            for (int64_t h = 0; h < Hq; h++) {
                float *dst = dq + (t * Hq + h) * D;                   // [D]
                const float *src = dqp + (((h / g) * T + t) * g + h % g) * Dp;  // [Dp] of chunk 0
                for (int ch = 0; ch < nch; ch++)
                    for (int64_t e = 0; e < D; e++) dst[e] += src[(size_t)ch * nqp + e];
            }
    }
    s2s_arena_rewind(ctx->cur, mark);
}

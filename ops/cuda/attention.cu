// attention.cu — packed variable-length attention on the GPU (mirrors ops/cpu/attention.c): causal or
// bidirectional within each sample, GQA, any head_dim D <= 128, all f32.
//
// Work map. The host walks the sample offsets (sh->cu, host memory, [S+1]) once and builds a small
// array of block descriptors {row0, rows, sample begin, sample end}, one per (sample, row block);
// it is copied to device scratch. Grid = (descriptors, heads): blockIdx.x picks the rows, blockIdx.y
// the head. Samples of length 0 get no descriptor.
//
// Forward (FA2): one thread block per (sample, query head, block of BQ query rows). Q, the output
// accumulator and each K / V tile of BK keys sit in shared memory (dynamic, sized by D); the online
// softmax runs in base 2 (scores scaled by scale*log2(e)) like the CPU kernel. Writes out [T, Hq, D]
// and lse2 — on this path laid out [Hq, T] (base-2 logsumexp), private to the CUDA path (same size
// as the CPU layout). Causal key tiles wholly above the block's last row are never visited.
//
// Backward, no atomics: (1) Dv [Hq, T] = rowsum(dO * O), one warp per (row, head), fixed shuffle
// order. (2) dK/dV: one thread block per (sample, kv head, block of BK keys) walks the query heads of
// its GQA group, then the query blocks that see its keys, in a fixed order, recomputing
// P = exp2(S - lse2), dV += P^T dO, dP = dO V^T, dS = scale P (dP - Dv), dK += dS^T Q; it owns those
// dK/dV rows and adds them to the gradient once at the end. (3) dQ: one thread block per (sample,
// query head, block of BQ query rows) walks its key blocks and accumulates dQ += dS K, then adds.
// Every sum has an order fixed by the shapes alone, so repeated runs give identical bits.
#include "common.cuh"
extern "C" {
#include "../cpu/attention.h"
}

#define ATT_BQ 16       // query rows per tile
#define ATT_BK 16       // keys per tile
#define ATT_THREADS 128
#define ATT_DMAX 128
#define ATT_LOG2E 1.44269504088896340736f

struct att_desc {
    int row0, rows;  // the block's rows: row0 .. row0+rows-1 (absolute, in [0, T))
    int sb, se;      // its sample's rows: sb .. se-1
};

// Row stride of a shared tile: D + 1 (odd: row-parallel reads hit distinct banks).
static __device__ __forceinline__ int ldt(int D) { return D + 1; }

// Load rows [r0, r0+n) of head h of x [T, H, D] into tile [BR][D+1]; rows n..BR-1 are zeroed.
static __device__ void load_tile(float *tile, const float *x, int r0, int n, int BR, int h, int H, int D) {
    const int ld = ldt(D);
    for (int i = threadIdx.x; i < BR * D; i += blockDim.x) {
        int r = i / D, d = i - r * D;
        tile[r * ld + d] = r < n ? x[((int64_t)(r0 + r) * H + h) * D + d] : 0.0f;
    }
}

// ---- forward -----------------------------------------------------------------------------------------

// Shared: Q [BQ][D+1], O [BQ][D+1], K [BK][D+1], V [BK][D+1], S [BQ][BK+1], m, l, alpha [BQ].
static __global__ void attention_forward_kernel(float *out, float *lse2, const float *q, const float *k,
                                                const float *v, const att_desc *desc, int T, int Hq, int Hkv,
                                                int D, int causal, float sl2) {
    extern __shared__ float sm[];
    const att_desc b = desc[blockIdx.x];
    const int h = blockIdx.y, hk = h / (Hq / Hkv), ld = ldt(D), lds = ATT_BK + 1;
    float *Qs = sm, *Os = Qs + ATT_BQ * ld, *Ks = Os + ATT_BQ * ld, *Vs = Ks + ATT_BK * ld;
    float *Ss = Vs + ATT_BK * ld, *mr = Ss + ATT_BQ * lds, *lr = mr + ATT_BQ, *al = lr + ATT_BQ;
    load_tile(Qs, q, b.row0, b.rows, ATT_BQ, h, Hq, D);
    for (int i = threadIdx.x; i < ATT_BQ * ld; i += blockDim.x) Os[i] = 0.0f;
    if (threadIdx.x < ATT_BQ) {
        mr[threadIdx.x] = -INFINITY;
        lr[threadIdx.x] = 0.0f;
    }
    const int kend = causal ? b.row0 + b.rows : b.se;  // keys sb .. kend-1 can be seen by some row
    for (int j0 = b.sb; j0 < kend; j0 += ATT_BK) {
        const int nk = min(ATT_BK, kend - j0);
        __syncthreads();  // previous tile fully consumed
        load_tile(Ks, k, j0, nk, ATT_BK, hk, Hkv, D);
        load_tile(Vs, v, j0, nk, ATT_BK, hk, Hkv, D);
        __syncthreads();
        for (int i = threadIdx.x; i < ATT_BQ * ATT_BK; i += blockDim.x) {
            int r = i / ATT_BK, c = i - r * ATT_BK;
            float s = -INFINITY;
            if (r < b.rows && c < nk && (!causal || j0 + c <= b.row0 + r)) {
                const float *qr = Qs + r * ld, *kc = Ks + c * ld;
                float acc = 0.0f;
                for (int d = 0; d < D; d++) acc = fmaf(qr[d], kc[d], acc);
                s = acc * sl2;
            }
            Ss[r * lds + c] = s;
        }
        __syncthreads();
        if (threadIdx.x < ATT_BQ) {
            const int r = threadIdx.x;
            float *sr = Ss + r * lds;
            float mx = mr[r];
            for (int c = 0; c < ATT_BK; c++) mx = fmaxf(mx, sr[c]);
            const float mu = mx == -INFINITY ? 0.0f : mx;  // a row that sees nothing yet keeps p = 0
            float sum = 0.0f;
            for (int c = 0; c < ATT_BK; c++) {
                float p = exp2f(sr[c] - mu);
                sr[c] = p;
                sum += p;
            }
            const float a = exp2f(mr[r] - mu);
            lr[r] = lr[r] * a + sum;
            mr[r] = mx;
            al[r] = a;
        }
        __syncthreads();
        for (int i = threadIdx.x; i < ATT_BQ * D; i += blockDim.x) {
            int r = i / D, d = i - r * D;
            const float *pr = Ss + r * lds;
            float acc = 0.0f;
            for (int c = 0; c < nk; c++) acc = fmaf(pr[c], Vs[c * ld + d], acc);
            Os[r * ld + d] = Os[r * ld + d] * al[r] + acc;
        }
    }
    __syncthreads();
    for (int i = threadIdx.x; i < b.rows * D; i += blockDim.x) {
        int r = i / D, d = i - r * D;
        out[((int64_t)(b.row0 + r) * Hq + h) * D + d] = Os[r * ld + d] / lr[r];
    }
    if (threadIdx.x < b.rows) {
        const int r = threadIdx.x;
        lse2[(int64_t)h * T + b.row0 + r] = mr[r] + log2f(lr[r]);
    }
}

// ---- backward ----------------------------------------------------------------------------------------

// Dv [Hq, T] = sum_d dO[t, h, d] * O[t, h, d]; one warp per (t, h).
static __global__ void attention_rowdot_kernel(float *Dv, const float *dout, const float *out, int T, int Hq, int D) {
    const int64_t w = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    const int lane = threadIdx.x & 31;
    if (w >= (int64_t)T * Hq) return;  // whole warps leave together (blockDim is a multiple of 32)
    const float *a = dout + w * D, *o = out + w * D;  // row (t, h) of [T, Hq, D]
    float s = 0.0f;
    for (int d = lane; d < D; d += 32) s = fmaf(a[d], o[d], s);
    for (int off = 16; off > 0; off >>= 1) s += __shfl_down_sync(0xffffffffu, s, off);
    if (lane == 0) {
        const int64_t t = w / Hq, h = w - t * Hq;
        Dv[h * T + t] = s;
    }
}

// Scores of a (query tile, key tile) pair turned into dS (in Ps) and P (in Pt): for r < nq, c < nk,
// visible: P = exp2(sl2 * q.k - lse2), dP = dO.v, dS = scale * P * (dP - Dv); else both 0.
// Qs/dOs [BQ][D+1], Ks/Vs [BK][D+1], Ps/dSs [BQ][BK+1], lq/Dq [BQ].
static __device__ void attention_tile_ds(float *Ps, float *dSs, const float *Qs, const float *dOs, const float *Ks,
                                         const float *Vs, const float *lq, const float *Dq, int q0, int nq, int j0,
                                         int nk, int D, int causal, float sl2, float scale) {
    const int ld = ldt(D), lds = ATT_BK + 1;
    for (int i = threadIdx.x; i < ATT_BQ * ATT_BK; i += blockDim.x) {
        int r = i / ATT_BK, c = i - r * ATT_BK;
        float p = 0.0f, ds = 0.0f;
        if (r < nq && c < nk && (!causal || j0 + c <= q0 + r)) {
            const float *qr = Qs + r * ld, *kc = Ks + c * ld, *gr = dOs + r * ld, *vc = Vs + c * ld;
            float s = 0.0f, dp = 0.0f;
            for (int d = 0; d < D; d++) {
                s = fmaf(qr[d], kc[d], s);
                dp = fmaf(gr[d], vc[d], dp);
            }
            p = exp2f(s * sl2 - lq[r]);
            ds = scale * p * (dp - Dq[r]);
        }
        Ps[r * lds + c] = p;
        dSs[r * lds + c] = ds;
    }
}

// Load the query-side tiles of rows [q0, q0+nq) of query head h: Q, dO, lse2 and Dv.
static __device__ void load_query_side(float *Qs, float *dOs, float *lq, float *Dq, const float *q, const float *dout,
                                       const float *lse2, const float *Dv, int q0, int nq, int h, int T, int Hq,
                                       int D) {
    load_tile(Qs, q, q0, nq, ATT_BQ, h, Hq, D);
    load_tile(dOs, dout, q0, nq, ATT_BQ, h, Hq, D);
    if (threadIdx.x < ATT_BQ) {
        const int r = threadIdx.x;
        lq[r] = r < nq ? lse2[(int64_t)h * T + q0 + r] : 0.0f;
        Dq[r] = r < nq ? Dv[(int64_t)h * T + q0 + r] : 0.0f;
    }
}

// dK/dV of one (sample, kv head, key block). Shared: K, V, dK, dV [BK][D+1], Q, dO [BQ][D+1],
// P, dS [BQ][BK+1], lse, Dv [BQ].
static __global__ void attention_dkdv_kernel(float *dk, float *dv, const float *dout, const float *lse2,
                                             const float *Dv, const float *q, const float *k, const float *v,
                                             const att_desc *desc, int T, int Hq, int Hkv, int D, int causal,
                                             float sl2, float scale) {
    extern __shared__ float sm[];
    const att_desc b = desc[blockIdx.x];
    const int hk = blockIdx.y, g = Hq / Hkv, ld = ldt(D), lds = ATT_BK + 1;
    float *Ks = sm, *Vs = Ks + ATT_BK * ld, *dKs = Vs + ATT_BK * ld, *dVs = dKs + ATT_BK * ld;
    float *Qs = dVs + ATT_BK * ld, *dOs = Qs + ATT_BQ * ld, *Ps = dOs + ATT_BQ * ld, *dSs = Ps + ATT_BQ * lds;
    float *lq = dSs + ATT_BQ * lds, *Dq = lq + ATT_BQ;
    const int j0 = b.row0, nk = b.rows;
    load_tile(Ks, k, j0, nk, ATT_BK, hk, Hkv, D);
    load_tile(Vs, v, j0, nk, ATT_BK, hk, Hkv, D);
    for (int i = threadIdx.x; i < ATT_BK * ld; i += blockDim.x) dKs[i] = dVs[i] = 0.0f;
    // Causal: query rows before j0 see none of these keys. Query blocks start at the sample start in
    // steps of BQ (a fixed grid, the same as the forward's), so the first one is the block holding j0.
    const int qfirst = causal ? b.sb + ((j0 - b.sb) / ATT_BQ) * ATT_BQ : b.sb;
    for (int j = 0; j < g; j++) {
        const int h = hk * g + j;
        for (int q0 = qfirst; q0 < b.se; q0 += ATT_BQ) {
            const int nq = min(ATT_BQ, b.se - q0);
            __syncthreads();
            load_query_side(Qs, dOs, lq, Dq, q, dout, lse2, Dv, q0, nq, h, T, Hq, D);
            __syncthreads();
            attention_tile_ds(Ps, dSs, Qs, dOs, Ks, Vs, lq, Dq, q0, nq, j0, nk, D, causal, sl2, scale);
            __syncthreads();
            for (int i = threadIdx.x; i < ATT_BK * D; i += blockDim.x) {
                int c = i / D, d = i - c * D;
                float av = 0.0f, ak = 0.0f;
                for (int r = 0; r < ATT_BQ; r++) {
                    av = fmaf(Ps[r * lds + c], dOs[r * ld + d], av);
                    ak = fmaf(dSs[r * lds + c], Qs[r * ld + d], ak);
                }
                dVs[c * ld + d] += av;
                dKs[c * ld + d] += ak;
            }
        }
    }
    __syncthreads();
    for (int i = threadIdx.x; i < nk * D; i += blockDim.x) {
        int c = i / D, d = i - c * D;
        const int64_t o = ((int64_t)(j0 + c) * Hkv + hk) * D + d;
        if (dk) dk[o] += dKs[c * ld + d];
        if (dv) dv[o] += dVs[c * ld + d];
    }
}

// dQ of one (sample, query head, query block). Shared: Q, dO, dQ [BQ][D+1], K, V [BK][D+1],
// P, dS [BQ][BK+1], lse, Dv [BQ].
static __global__ void attention_dq_kernel(float *dq, const float *dout, const float *lse2, const float *Dv,
                                           const float *q, const float *k, const float *v, const att_desc *desc,
                                           int T, int Hq, int Hkv, int D, int causal, float sl2, float scale) {
    extern __shared__ float sm[];
    const att_desc b = desc[blockIdx.x];
    const int h = blockIdx.y, hk = h / (Hq / Hkv), ld = ldt(D), lds = ATT_BK + 1;
    float *Qs = sm, *dOs = Qs + ATT_BQ * ld, *dQs = dOs + ATT_BQ * ld, *Ks = dQs + ATT_BQ * ld;
    float *Vs = Ks + ATT_BK * ld, *Ps = Vs + ATT_BK * ld, *dSs = Ps + ATT_BQ * lds;
    float *lq = dSs + ATT_BQ * lds, *Dq = lq + ATT_BQ;
    const int q0 = b.row0, nq = b.rows;
    load_query_side(Qs, dOs, lq, Dq, q, dout, lse2, Dv, q0, nq, h, T, Hq, D);
    for (int i = threadIdx.x; i < ATT_BQ * ld; i += blockDim.x) dQs[i] = 0.0f;
    const int kend = causal ? q0 + nq : b.se;
    for (int j0 = b.sb; j0 < kend; j0 += ATT_BK) {
        const int nk = min(ATT_BK, kend - j0);
        __syncthreads();
        load_tile(Ks, k, j0, nk, ATT_BK, hk, Hkv, D);
        load_tile(Vs, v, j0, nk, ATT_BK, hk, Hkv, D);
        __syncthreads();
        attention_tile_ds(Ps, dSs, Qs, dOs, Ks, Vs, lq, Dq, q0, nq, j0, nk, D, causal, sl2, scale);
        __syncthreads();
        for (int i = threadIdx.x; i < ATT_BQ * D; i += blockDim.x) {
            int r = i / D, d = i - r * D;
            float a = 0.0f;
            for (int c = 0; c < ATT_BK; c++) a = fmaf(dSs[r * lds + c], Ks[c * ld + d], a);
            dQs[r * ld + d] += a;
        }
    }
    __syncthreads();
    for (int i = threadIdx.x; i < nq * D; i += blockDim.x) {
        int r = i / D, d = i - r * D;
        dq[((int64_t)(q0 + r) * Hq + h) * D + d] += dQs[r * ld + d];
    }
}

// ---- host side ---------------------------------------------------------------------------------------

// Descriptors of blocks of `br` rows over every sample, copied to device scratch; returns the count.
static int attention_descs(s2s_ctx *ctx, const attn_shape *sh, int br, att_desc **dev) {
    int n = 0;
    for (int s = 0; s < sh->S; s++) n += (sh->cu[s + 1] - sh->cu[s] + br - 1) / br;
    *dev = NULL;
    if (n == 0) return 0;
    att_desc *hd = (att_desc *)malloc((size_t)n * sizeof *hd);
    S2S_CHECK(hd, "attention: out of host memory for %d block descriptors", n);
    int i = 0;
    for (int s = 0; s < sh->S; s++)
        for (int r = sh->cu[s]; r < sh->cu[s + 1]; r += br)
            hd[i++] = att_desc{r, min(br, sh->cu[s + 1] - r), sh->cu[s], sh->cu[s + 1]};
    *dev = (att_desc *)s2s_scratch_alloc(ctx, (size_t)n * sizeof **dev);
    CUDA_CHECK(cudaMemcpy(*dev, hd, (size_t)n * sizeof *hd, cudaMemcpyHostToDevice));
    free(hd);
    return n;
}

static void attention_check_shape(const attn_shape *sh) {
    S2S_CHECK(sh->D <= ATT_DMAX, "attention (CUDA): head_dim %lld > %d is not supported", (long long)sh->D,
              ATT_DMAX);
    S2S_CHECK(sh->T <= INT32_MAX && sh->Hq <= 65535 && sh->Hkv <= 65535,
              "attention (CUDA): %lld rows x %lld heads exceed the grid", (long long)sh->T, (long long)sh->Hq);
}

template <typename K>
static void attention_smem_optin(K kern, size_t bytes) {
    if (bytes > 48 * 1024) CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
}

extern "C" void attention_forward_cuda(s2s_ctx *ctx, const attn_shape *sh, float *out, float *lse2, const float *q,
                                       const float *k, const float *v) {
    if (sh->T == 0) return;
    attention_check_shape(sh);
    const int D = (int)sh->D, ld = D + 1;
    s2s_arena_mark mark = s2s_arena_get_mark(ctx->cur);
    att_desc *desc;
    const int n = attention_descs(ctx, sh, ATT_BQ, &desc);
    if (n > 0) {
        const size_t smem =
            (size_t)(2 * ATT_BQ * ld + 2 * ATT_BK * ld + ATT_BQ * (ATT_BK + 1) + 3 * ATT_BQ) * sizeof(float);
        attention_smem_optin(attention_forward_kernel, smem);
        dim3 grid((unsigned)n, (unsigned)sh->Hq);
        attention_forward_kernel<<<grid, ATT_THREADS, smem>>>(out, lse2, q, k, v, desc, (int)sh->T, (int)sh->Hq,
                                                              (int)sh->Hkv, D, sh->causal ? 1 : 0,
                                                              sh->scale * ATT_LOG2E);
        CUDA_LAUNCHED();
    }
    s2s_arena_rewind(ctx->cur, mark);  // the launch queues ahead of any later reuse (default stream)
}

extern "C" void attention_backward_cuda(s2s_ctx *ctx, const attn_shape *sh, float *dq, float *dk, float *dv,
                                        const float *dout, const float *out, const float *lse2, const float *q,
                                        const float *k, const float *v) {
    if (sh->T == 0 || (!dq && !dk && !dv)) return;
    attention_check_shape(sh);
    const int T = (int)sh->T, Hq = (int)sh->Hq, Hkv = (int)sh->Hkv, D = (int)sh->D, ld = D + 1;
    const int causal = sh->causal ? 1 : 0;
    const float sl2 = sh->scale * ATT_LOG2E, scale = sh->scale;
    s2s_arena_mark mark = s2s_arena_get_mark(ctx->cur);
    float *Dv = (float *)s2s_scratch_alloc(ctx, (size_t)T * (size_t)Hq * sizeof(float));  // [Hq, T]
    {
        const int64_t threads = (int64_t)T * Hq * 32;
        attention_rowdot_kernel<<<(unsigned)((threads + 255) / 256), 256>>>(Dv, dout, out, T, Hq, D);
        CUDA_LAUNCHED();
    }
    const size_t side = (size_t)(2 * ATT_BQ * (ATT_BK + 1) + 2 * ATT_BQ);  // P, dS, lse, Dv
    if (dk || dv) {
        att_desc *desc;
        const int n = attention_descs(ctx, sh, ATT_BK, &desc);
        if (n > 0) {
            const size_t smem = (4 * ATT_BK * ld + 2 * ATT_BQ * ld + side) * sizeof(float);
            attention_smem_optin(attention_dkdv_kernel, smem);
            attention_dkdv_kernel<<<dim3((unsigned)n, (unsigned)Hkv), ATT_THREADS, smem>>>(
                dk, dv, dout, lse2, Dv, q, k, v, desc, T, Hq, Hkv, D, causal, sl2, scale);
            CUDA_LAUNCHED();
        }
    }
    if (dq) {
        att_desc *desc;
        const int n = attention_descs(ctx, sh, ATT_BQ, &desc);
        if (n > 0) {
            const size_t smem = (3 * ATT_BQ * ld + 2 * ATT_BK * ld + side) * sizeof(float);
            attention_smem_optin(attention_dq_kernel, smem);
            attention_dq_kernel<<<dim3((unsigned)n, (unsigned)Hq), ATT_THREADS, smem>>>(
                dq, dout, lse2, Dv, q, k, v, desc, T, Hq, Hkv, D, causal, sl2, scale);
            CUDA_LAUNCHED();
        }
    }
    s2s_arena_rewind(ctx->cur, mark);
}

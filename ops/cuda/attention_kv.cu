// attention_kv.cu — attention of Tq new query rows against Tk cached keys on the GPU (mirrors
// ops/cpu/attention_kv.c step by step): one thread block per (query row, query head) walks its visible keys in
// tiles of KV_BK with an online softmax in base 2. In a tile, thread c scores key c; thread 0 takes the tile max
// and sum in key order (the CPU's order); then thread d accumulates output column d over the tile's keys.
// Every sum has an order fixed by the shapes alone.
#include "common.cuh"
extern "C" {
#include "../cpu/attention_kv.h"
}

#define KV_BK 128  // keys per tile (= threads per block: one score each)
#define KV_THREADS 128
#define KV_LOG2E 1.44269504088896340736f

// Shared: s [BK] scores, q [D], o [D] unnormalised output, m, l, alpha.
static __global__ void attention_kv_kernel(float *out, const float *q, const float *k, const float *v, int Tq, int Tk,
                                           int Hq, int Hkv, int D, float sl2) {
    extern __shared__ float sm[];
    const int i = blockIdx.x, h = blockIdx.y;
    const int hk = h / (Hq / Hkv);
    const int n = Tk - Tq + i + 1;  // visible keys 0 .. n-1 (causal at absolute position n - 1)
    const float *qg = q + ((int64_t)i * Hq + h) * D;  // [D]
    float *s = sm, *qr = s + KV_BK, *o = qr + D, *st = o + D;  // st: m, l, alpha
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
        qr[d] = qg[d];
        o[d] = 0.0f;
    }
    if (threadIdx.x == 0) {
        st[0] = -INFINITY;  // running max (base 2)
        st[1] = 0.0f;       // running sum of exp2(s - m)
    }
    for (int j0 = 0; j0 < n; j0 += KV_BK) {
        const int nk = min(KV_BK, n - j0);
        __syncthreads();  // previous tile consumed, q loaded
        for (int c = threadIdx.x; c < nk; c += blockDim.x) {
            const float *kc = k + ((int64_t)(j0 + c) * Hkv + hk) * D;  // [D]
            float acc = 0.0f;
            for (int d = 0; d < D; d++) acc = fmaf(qr[d], kc[d], acc);
            s[c] = acc * sl2;
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            float mx = st[0];
            for (int c = 0; c < nk; c++) mx = fmaxf(mx, s[c]);
            const float alpha = exp2f(st[0] - mx);  // 0 on the first tile (m = -inf)
            float sum = 0.0f;
            for (int c = 0; c < nk; c++) {
                s[c] = exp2f(s[c] - mx);
                sum += s[c];
            }
            st[1] = st[1] * alpha + sum;
            st[0] = mx;
            st[2] = alpha;
        }
        __syncthreads();
        for (int d = threadIdx.x; d < D; d += blockDim.x) {
            float acc = 0.0f;
            for (int c = 0; c < nk; c++) acc = fmaf(s[c], v[((int64_t)(j0 + c) * Hkv + hk) * D + d], acc);
            o[d] = o[d] * st[2] + acc;
        }
    }
    __syncthreads();
    float *orow = out + ((int64_t)i * Hq + h) * D;  // [D]
    for (int d = threadIdx.x; d < D; d += blockDim.x) orow[d] = o[d] / st[1];
}

extern "C" void attention_kv_forward_cuda(s2s_ctx *ctx, float *out, const float *q, const float *k, const float *v,
                                          int64_t Tq, int64_t Tk, int64_t Hq, int64_t Hkv, int64_t D, float scale) {
    if (Tq == 0) return;
    S2S_CHECK(Tq <= INT32_MAX && Tk <= INT32_MAX && Hq <= 65535 && D <= 4096,
              "attention_kv (CUDA): %lld query rows x %lld heads, %lld keys, head_dim %lld exceed the grid",
              (long long)Tq, (long long)Hq, (long long)Tk, (long long)D);
    const size_t smem = (size_t)(KV_BK + 2 * D + 3) * sizeof(float);
    dim3 grid((unsigned)Tq, (unsigned)Hq);
    attention_kv_kernel<<<grid, KV_THREADS, smem>>>(out, q, k, v, (int)Tq, (int)Tk, (int)Hq, (int)Hkv, (int)D,
                                                    scale * KV_LOG2E);
    CUDA_LAUNCHED();
}

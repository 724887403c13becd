// cross_entropy.cu — row cross-entropy of materialised logits on the GPU (mirrors
// ops/cpu/cross_entropy.c): one block per row, f32 exponentials, f64 row sums and f64 lse - z[label],
// fixed-order block reductions (deterministic). The mean over kept rows is taken on the host
// (ops/cross_entropy.c) from the per-row losses, in row order, exactly as on the CPU.
#include "loss_rows.cuh"

// loss [N] = lse - z[label], lse [N]; ignored rows get 0 for both.
static __global__ void cross_entropy_forward_kernel(float *loss, float *lse, const float *logits,
                                                    const int32_t *labels, int32_t ignore, int64_t V) {
    const int64_t i = blockIdx.x;
    const int32_t y = labels[i];
    if (y == ignore) {  // uniform over the block: no thread reaches a reduction
        if (threadIdx.x == 0) loss[i] = 0.0f, lse[i] = 0.0f;
        return;
    }
    const float *z = logits + i * V;  // [V]
    float m = row_max_dev(z, V);
    double s = row_sumexp_dev(z, V, m);
    if (threadIdx.x == 0) {
        double l = (double)m + log(s);
        lse[i] = (float)l;
        loss[i] = (float)(l - (double)z[y]);
    }
}

// dlogits [N, V] += scale * (softmax(z) - onehot(label)) on kept rows (same two roundings at the
// label as the CPU: += scale * p, then -= scale).
static __global__ void cross_entropy_backward_kernel(float *dlogits, const float *logits, const float *lse,
                                                     const int32_t *labels, int32_t ignore, float scale,
                                                     int64_t V) {
    const int64_t i = blockIdx.x;
    const int32_t y = labels[i];
    if (y == ignore) return;
    const float *z = logits + i * V;  // [V]
    float *dz = dlogits + i * V;      // [V]
    const float l = lse[i];
    for (int64_t j = threadIdx.x; j < V; j += blockDim.x) {
        float v = dz[j] + scale * expf(z[j] - l);
        dz[j] = j == y ? v - scale : v;
    }
}

extern "C" void cross_entropy_forward_cuda(s2s_ctx *ctx, float *loss, float *lse, const float *logits,
                                           const int32_t *labels, int32_t ignore, int64_t N, int64_t V) {
    (void)ctx;
    if (N == 0) return;
    S2S_CHECK(N <= INT32_MAX, "cross_entropy: %lld rows exceed one grid", (long long)N);
    cross_entropy_forward_kernel<<<(unsigned)N, loss_row_threads(V)>>>(loss, lse, logits, labels, ignore, V);
    CUDA_LAUNCHED();
}

extern "C" void cross_entropy_backward_cuda(s2s_ctx *ctx, float *dlogits, const float *logits, const float *lse,
                                            const int32_t *labels, int32_t ignore, float scale, int64_t N,
                                            int64_t V) {
    (void)ctx;
    if (N == 0) return;
    S2S_CHECK(N <= INT32_MAX, "cross_entropy: %lld rows exceed one grid", (long long)N);
    cross_entropy_backward_kernel<<<(unsigned)N, loss_row_threads(V)>>>(dlogits, logits, lse, labels, ignore,
                                                                        scale, V);
    CUDA_LAUNCHED();
}

// softmax.cu — row softmax on the GPU (mirrors ops/cpu/softmax.c), all f32 with f64 row sums: one
// block per row, fixed-order block reductions (deterministic, no atomics).
#include "loss_rows.cuh"

// y [N, V] = softmax(x [N, V]) over the last dim.
static __global__ void softmax_forward_kernel(float *y, const float *x, int64_t V) {
    const float *xi = x + (int64_t)blockIdx.x * V;  // [V]
    float *yi = y + (int64_t)blockIdx.x * V;        // [V]
    float m = row_max_dev(xi, V);
    float inv = (float)(1.0 / row_sumexp_dev(xi, V, m));
    for (int64_t j = threadIdx.x; j < V; j += blockDim.x) yi[j] = expf(xi[j] - m) * inv;
}

// dx [N, V] += y * (dy - sum_j dy_j y_j), per row.
static __global__ void softmax_backward_kernel(float *dx, const float *dy, const float *y, int64_t V) {
    const int64_t o = (int64_t)blockIdx.x * V;
    const float *dyi = dy + o, *yi = y + o;  // [V]
    float *dxi = dx + o;                     // [V]
    // As softmax_backward_cpu: the dot and the difference in f64 (dx cancels where y is peaked).
    double s = 0.0;
    for (int64_t j = threadIdx.x; j < V; j += blockDim.x) s += (double)dyi[j] * (double)yi[j];
    const double d = block_sum<double>(s);
    for (int64_t j = threadIdx.x; j < V; j += blockDim.x) dxi[j] += (float)((double)yi[j] * ((double)dyi[j] - d));
}

extern "C" void softmax_forward_cuda(s2s_ctx *ctx, float *y, const float *x, int64_t N, int64_t V) {
    (void)ctx;
    if (N == 0 || V == 0) return;
    S2S_CHECK(N <= INT32_MAX, "softmax: %lld rows exceed one grid", (long long)N);
    softmax_forward_kernel<<<(unsigned)N, loss_row_threads(V)>>>(y, x, V);
    CUDA_LAUNCHED();
}

extern "C" void softmax_backward_cuda(s2s_ctx *ctx, float *dx, const float *dy, const float *y, int64_t N,
                                      int64_t V) {
    (void)ctx;
    if (N == 0 || V == 0) return;
    S2S_CHECK(N <= INT32_MAX, "softmax: %lld rows exceed one grid", (long long)N);
    softmax_backward_kernel<<<(unsigned)N, loss_row_threads(V)>>>(dx, dy, y, V);
    CUDA_LAUNCHED();
}

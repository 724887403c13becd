// embedding.cu — row lookup (nn.Embedding) on the GPU (mirrors ops/cpu/embedding.c). Ids are
// range-checked before the lookup by index_first_invalid_cuda (ops/embedding.c names the bad id).
#include "common.cuh"

static __global__ void embedding_forward_kernel(float *y, const int32_t *ids, const float *w, int64_t N, int64_t C) {
    GRID_STRIDE(i, N * C) y[i] = w[(int64_t)ids[i / C] * C + i % C];  // y [N, C] = w[ids[n]]
}

extern "C" void embedding_forward_cuda(s2s_ctx *ctx, float *y, const int32_t *ids, const float *w, int64_t N,
                                       int64_t C) {
    if (N * C == 0) return;
    embedding_forward_kernel<<<cuda_blocks(N * C), CUDA_THREADS>>>(y, ids, w, N, C);
    CUDA_LAUNCHED();
}

// dw [V, C] += dy [N, C] at rows ids: the gather-rows gradient (sorted runs, token order, no atomics).
extern "C" void embedding_backward_cuda(s2s_ctx *ctx, float *dw, const float *dy, const int32_t *ids, int64_t N,
                                        int64_t C, int64_t V) {
    gather_rows_backward_cuda(ctx, dw, dy, ids, N, C, V);
}

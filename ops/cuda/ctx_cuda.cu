// ctx_cuda.cu — the per-context CUDA state: cuBLASLt (and cuBLAS fallback) handles, the GEMM
// workspace, the GEMM precision mode and a device flag for index checks. Created on a context's first
// CUDA op; autograd frees it through ctx->cuda_free (autograd knows no op, so it gets a function).
#include <climits>
#include <cstring>
#include "common.cuh"

// 32 MiB: what NVIDIA suggests for Hopper cuBLASLt workspaces (split-K and stream-K kernels use it).
#define LT_WORKSPACE_BYTES ((size_t)32 << 20)

static void cuda_state_free(void *p) {
    s2s_cuda_state *st = (s2s_cuda_state *)p;
    if (!st) return;
    cublasLtDestroy(st->lt);
    cublasDestroy(st->blas);
    cudaFree(st->ws);
    cudaFree(st->flag);
    free(st);
}

s2s_cuda_state *cuda_state(s2s_ctx *ctx) {
    if (ctx->cuda) return (s2s_cuda_state *)ctx->cuda;
    S2S_CHECK(ctx->device == S2S_CUDA, "a CUDA kernel was called on a CPU context");
    s2s_cuda_state *st = (s2s_cuda_state *)s2s_calloc(1, sizeof *st);
    CUBLAS_CHECK(cublasLtCreate(&st->lt));
    CUBLAS_CHECK(cublasCreate(&st->blas));
    // Exact f32 in the fallback too: no TF32 even if NVIDIA_TF32_OVERRIDE asks for it.
    CUBLAS_CHECK(cublasSetMathMode(st->blas, CUBLAS_PEDANTIC_MATH));
    st->ws_bytes = LT_WORKSPACE_BYTES;
    CUDA_CHECK(cudaMalloc(&st->ws, st->ws_bytes));
    CUDA_CHECK(cudaMalloc(&st->flag, sizeof(int)));
    const char *mode = getenv("S2S_GEMM");
    st->gemm_mode = (mode && (strcmp(mode, "f32") == 0 || strcmp(mode, "F32") == 0)) ? S2S_GEMM_F32 : S2S_GEMM_BF16;
    ctx->cuda = st;
    ctx->cuda_free = cuda_state_free;
    return st;
}

extern "C" void s2s_cuda_set_gemm_mode(s2s_ctx *ctx, s2s_gemm_mode mode) { cuda_state(ctx)->gemm_mode = mode; }
extern "C" s2s_gemm_mode s2s_cuda_get_gemm_mode(s2s_ctx *ctx) { return cuda_state(ctx)->gemm_mode; }

// Integer atomicMin: the smallest failing position wins whatever the thread order (deterministic).
static __global__ void index_check_kernel(const int32_t *idx, int64_t n, int64_t limit, int *flag) {
    GRID_STRIDE(i, n) {
        int32_t v = idx[i];
        if (v < 0 || (int64_t)v >= limit) atomicMin(flag, (int)i);
    }
}

extern "C" int64_t index_first_invalid_cuda(s2s_ctx *ctx, const int32_t *idx, int64_t n, int64_t limit) {
    if (n <= 0) return -1;
    S2S_CHECK(n < INT_MAX, "index check: %lld indices do not fit the device flag (at most %d)", (long long)n,
              INT_MAX - 1);
    s2s_cuda_state *st = cuda_state(ctx);
    int none = INT_MAX, first;
    CUDA_CHECK(cudaMemcpy(st->flag, &none, sizeof(int), cudaMemcpyHostToDevice));
    index_check_kernel<<<cuda_blocks(n), CUDA_THREADS>>>(idx, n, limit, st->flag);
    CUDA_LAUNCHED();
    CUDA_CHECK(cudaMemcpy(&first, st->flag, sizeof(int), cudaMemcpyDeviceToHost));
    return first == INT_MAX ? -1 : (int64_t)first;
}

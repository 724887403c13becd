// rows.cu — row gather and scatter on the GPU (mirrors ops/cpu/rows.c). The one reduction, the
// gradient of a gather (and of an embedding), adds rows that may share an index: instead of float
// atomics, the indices are sorted stably (CUB radix sort: equal indices keep their order m) and one
// block per run of equal indices adds that run's rows in m order, exactly the CPU's order.
#include <climits>
#include <cub/cub.cuh>
#include "common.cuh"

// Rows move as 4-byte words when they can (f32 and i32 always do), else as bytes.
template <typename T>
static __global__ void gather_rows_kernel(T *y, const T *x, const int32_t *idx, int64_t M, int64_t W) {
    GRID_STRIDE(i, M * W) {
        int64_t m = i / W, c = i % W;
        y[i] = x[(int64_t)idx[m] * W + c];
    }
}

template <typename T>
static __global__ void scatter_rows_kernel(T *y, const int32_t *idx, const T *src, int64_t M, int64_t W) {
    GRID_STRIDE(i, M * W) {
        int64_t m = i / W, c = i % W;
        y[(int64_t)idx[m] * W + c] = src[i];
    }
}

extern "C" void gather_rows_cuda(s2s_ctx *ctx, void *y, const void *x, const int32_t *idx, int64_t M, int64_t C,
                                 size_t esize) {
    int64_t bytes = C * (int64_t)esize;
    if (M == 0 || bytes == 0) return;
    if (bytes % 4 == 0)
        gather_rows_kernel<<<cuda_blocks(M * bytes / 4), CUDA_THREADS>>>((uint32_t *)y, (const uint32_t *)x, idx, M,
                                                                         bytes / 4);
    else
        gather_rows_kernel<<<cuda_blocks(M * bytes), CUDA_THREADS>>>((uint8_t *)y, (const uint8_t *)x, idx, M, bytes);
    CUDA_LAUNCHED();
}

static __global__ void iota_kernel(int32_t *v, int64_t n) { GRID_STRIDE(i, n) v[i] = (int32_t)i; }

// keys [M] sorted, vals [M] the original positions (ascending within equal keys). Block x = m starts a
// run iff its key differs from the previous one; it adds the run's src rows onto dst row key, in order.
static __global__ void segment_add_kernel(float *dst, const float *src, const uint32_t *keys, const int32_t *vals,
                                          int64_t M, int64_t C) {
    int64_t m = blockIdx.x;
    if (m > 0 && keys[m] == keys[m - 1]) return;
    int64_t row = keys[m];
    for (int64_t c = (int64_t)blockIdx.y * blockDim.x + threadIdx.x; c < C; c += (int64_t)gridDim.y * blockDim.x) {
        float acc = dst[row * C + c];
        for (int64_t j = m; j < M && keys[j] == (uint32_t)row; j++) acc += src[(int64_t)vals[j] * C + c];
        dst[row * C + c] = acc;
    }
}

extern "C" void gather_rows_backward_cuda(s2s_ctx *ctx, float *dx, const float *dy, const int32_t *idx, int64_t M,
                                          int64_t C, int64_t N) {
    if (M == 0 || C == 0) return;
    S2S_CHECK(M < INT_MAX, "gather_rows backward: %lld indices exceed the sort's int count", (long long)M);
    int end_bit = 1;  // sort only the bits an index in [0, N) can have
    while (end_bit < 32 && ((int64_t)1 << end_bit) < N) end_bit++;
    s2s_arena_mark mark = s2s_arena_get_mark(ctx->cur);
    uint32_t *keys = (uint32_t *)s2s_scratch_alloc(ctx, (size_t)M * sizeof(uint32_t));  // [M] sorted idx
    int32_t *pos_in = (int32_t *)s2s_scratch_alloc(ctx, (size_t)M * sizeof(int32_t));  // [M] 0..M-1
    int32_t *pos = (int32_t *)s2s_scratch_alloc(ctx, (size_t)M * sizeof(int32_t));     // [M] m in key order
    iota_kernel<<<cuda_blocks(M), CUDA_THREADS>>>(pos_in, M);
    CUDA_LAUNCHED();
    // Indices were range-checked non-negative, so their bits sort as unsigned.
    size_t tmp_bytes = 0;
    CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, tmp_bytes, (const uint32_t *)idx, keys, pos_in, pos, (int)M,
                                               0, end_bit, (cudaStream_t)0));
    void *tmp = s2s_scratch_alloc(ctx, tmp_bytes ? tmp_bytes : 1);  // CUB's workspace
    CUDA_CHECK(cub::DeviceRadixSort::SortPairs(tmp, tmp_bytes, (const uint32_t *)idx, keys, pos_in, pos, (int)M, 0,
                                               end_bit, (cudaStream_t)0));
    int64_t cb = (C + 127) / 128;
    dim3 grid((unsigned)M, (unsigned)(cb < 65535 ? cb : 65535));
    segment_add_kernel<<<grid, 128>>>(dx, dy, keys, pos, M, C);
    CUDA_LAUNCHED();
    s2s_arena_rewind(ctx->cur, mark);
}

// Integer atomics only: counts and the smallest duplicate position do not depend on thread order.
static __global__ void count_rows_kernel(int32_t *count, const int32_t *idx, int64_t M) {
    GRID_STRIDE(m, M) atomicAdd(&count[idx[m]], 1);
}

static __global__ void first_duplicate_kernel(const int32_t *count, const int32_t *idx, int64_t M, int *flag) {
    GRID_STRIDE(m, M) if (count[idx[m]] > 1) atomicMin(flag, (int)m);
}

extern "C" int64_t scatter_rows_mark_cuda(s2s_ctx *ctx, int32_t *count, const int32_t *idx, int64_t N, int64_t M) {
    if (N > 0) CUDA_CHECK(cudaMemsetAsync(count, 0, (size_t)N * sizeof(int32_t), 0));
    if (M == 0) return -1;
    S2S_CHECK(M < INT_MAX, "scatter_rows: %lld indices do not fit the device flag", (long long)M);
    s2s_cuda_state *st = cuda_state(ctx);
    int none = INT_MAX, first;
    count_rows_kernel<<<cuda_blocks(M), CUDA_THREADS>>>(count, idx, M);
    CUDA_LAUNCHED();
    CUDA_CHECK(cudaMemcpy(st->flag, &none, sizeof(int), cudaMemcpyHostToDevice));
    first_duplicate_kernel<<<cuda_blocks(M), CUDA_THREADS>>>(count, idx, M, st->flag);
    CUDA_LAUNCHED();
    CUDA_CHECK(cudaMemcpy(&first, st->flag, sizeof(int), cudaMemcpyDeviceToHost));
    return first == INT_MAX ? -1 : (int64_t)first;
}

extern "C" void scatter_rows_cuda(s2s_ctx *ctx, void *y, const void *base, const int32_t *idx, const void *src,
                                  int64_t N, int64_t M, int64_t C, size_t esize) {
    int64_t bytes = C * (int64_t)esize;
    if (N * bytes > 0) CUDA_CHECK(cudaMemcpyAsync(y, base, (size_t)(N * bytes), cudaMemcpyDeviceToDevice, 0));
    if (M == 0 || bytes == 0) return;
    // Indices are distinct (checked by scatter_rows_mark_cuda): every row is written by one m.
    if (bytes % 4 == 0)
        scatter_rows_kernel<<<cuda_blocks(M * bytes / 4), CUDA_THREADS>>>((uint32_t *)y, idx, (const uint32_t *)src,
                                                                          M, bytes / 4);
    else
        scatter_rows_kernel<<<cuda_blocks(M * bytes), CUDA_THREADS>>>((uint8_t *)y, idx, (const uint8_t *)src, M,
                                                                      bytes);
    CUDA_LAUNCHED();
}

static __global__ void scatter_base_grad_kernel(float *dbase, const float *dy, const int32_t *count, int64_t N,
                                                int64_t C) {
    GRID_STRIDE(i, N * C) if (!count[i / C]) dbase[i] += dy[i];  // replaced rows came from src
}

static __global__ void scatter_src_grad_kernel(float *dsrc, const float *dy, const int32_t *idx, int64_t M, int64_t C) {
    GRID_STRIDE(i, M * C) dsrc[i] += dy[(int64_t)idx[i / C] * C + i % C];
}

extern "C" void scatter_rows_backward_cuda(s2s_ctx *ctx, float *dbase, float *dsrc, const float *dy,
                                           const int32_t *idx, const int32_t *count, int64_t N, int64_t M, int64_t C) {
    if (dbase && N * C > 0) {
        scatter_base_grad_kernel<<<cuda_blocks(N * C), CUDA_THREADS>>>(dbase, dy, count, N, C);
        CUDA_LAUNCHED();
    }
    if (dsrc && M * C > 0) {
        scatter_src_grad_kernel<<<cuda_blocks(M * C), CUDA_THREADS>>>(dsrc, dy, idx, M, C);
        CUDA_LAUNCHED();
    }
}

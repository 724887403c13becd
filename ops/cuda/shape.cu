// shape.cu — strided block copies (concat, slice), their accumulating adjoint and transpose on the GPU
// (mirrors ops/cpu/shape.c). Pure data movement: one thread per element, no reductions.
#include "common.cuh"

template <typename T>
static __global__ void copy_blocks_kernel(T *dst, int64_t ds, const T *src, int64_t ss, int64_t outer, int64_t n) {
    GRID_STRIDE(i, outer * n) {
        int64_t o = i / n, k = i % n;
        dst[o * ds + k] = src[o * ss + k];
    }
}

static __global__ void add_blocks_kernel(float *dst, int64_t ds, const float *src, int64_t ss, int64_t outer,
                                         int64_t n) {
    GRID_STRIDE(i, outer * n) {
        int64_t o = i / n, k = i % n;
        dst[o * ds + k] += src[o * ss + k];
    }
}

// dst [A, D1, B, D0, C] (=, or += when accumulate) src [A, D0, B, D1, C]: one thread per dst element.
static __global__ void transpose_kernel(float *dst, const float *src, int64_t A, int64_t D0, int64_t B, int64_t D1,
                                        int64_t C, bool accumulate) {
    GRID_STRIDE(idx, A * D1 * B * D0 * C) {
        int64_t c = idx % C, r = idx / C;
        int64_t i = r % D0;
        r /= D0;
        int64_t b = r % B;
        r /= B;
        int64_t j = r % D1, a = r / D1;
        float v = src[(((a * D0 + i) * B + b) * D1 + j) * C + c];
        if (accumulate) dst[idx] += v;
        else dst[idx] = v;
    }
}

extern "C" void copy_blocks_cuda(s2s_ctx *ctx, void *dst, int64_t dst_stride, const void *src, int64_t src_stride,
                                 int64_t outer, int64_t n, size_t esize) {
    if (outer * n == 0) return;
    if (outer == 1 || (dst_stride == n && src_stride == n)) {  // one contiguous run
        CUDA_CHECK(cudaMemcpyAsync(dst, src, (size_t)(outer * n) * esize, cudaMemcpyDeviceToDevice, 0));
        return;
    }
    if (esize == 4)
        copy_blocks_kernel<<<cuda_blocks(outer * n), CUDA_THREADS>>>((uint32_t *)dst, dst_stride, (const uint32_t *)src,
                                                                     src_stride, outer, n);
    else  // any element size as bytes
        copy_blocks_kernel<<<cuda_blocks(outer * n * (int64_t)esize), CUDA_THREADS>>>(
            (uint8_t *)dst, dst_stride * (int64_t)esize, (const uint8_t *)src, src_stride * (int64_t)esize, outer,
            n * (int64_t)esize);
    CUDA_LAUNCHED();
}

extern "C" void add_blocks_cuda(s2s_ctx *ctx, float *dst, int64_t dst_stride, const float *src, int64_t src_stride,
                                int64_t outer, int64_t n) {
    if (outer * n == 0) return;
    add_blocks_kernel<<<cuda_blocks(outer * n), CUDA_THREADS>>>(dst, dst_stride, src, src_stride, outer, n);
    CUDA_LAUNCHED();
}

extern "C" void transpose_cuda(s2s_ctx *ctx, float *dst, const float *src, int64_t A, int64_t D0, int64_t B,
                               int64_t D1, int64_t C, bool accumulate) {
    int64_t n = A * D0 * B * D1 * C;
    if (n == 0) return;
    transpose_kernel<<<cuda_blocks(n), CUDA_THREADS>>>(dst, src, A, D0, B, D1, C, accumulate);
    CUDA_LAUNCHED();
}

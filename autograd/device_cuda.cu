// device_cuda.cu — CUDA memory for the arena and parameter storage.
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>

#define CUDA_CHECK(call)                                                                        \
    do {                                                                                        \
        cudaError_t e_ = (call);                                                                \
        if (e_ != cudaSuccess) {                                                                \
            fprintf(stderr, "s2s: CUDA error at %s:%d: %s\n  hint: check the GPU is visible "   \
                            "(nvidia-smi, CUDA_VISIBLE_DEVICES) and has free memory\n",         \
                    __FILE__, __LINE__, cudaGetErrorString(e_));                                \
            exit(1);                                                                            \
        }                                                                                       \
    } while (0)

extern "C" void *s2s_cuda_alloc(size_t bytes) {
    void *p = NULL;
    CUDA_CHECK(cudaMalloc(&p, bytes ? bytes : 256));
    return p;
}

extern "C" void s2s_cuda_free(void *p) { CUDA_CHECK(cudaFree(p)); }

extern "C" void s2s_cuda_memset0(void *p, size_t bytes) { CUDA_CHECK(cudaMemset(p, 0, bytes)); }

extern "C" void s2s_cuda_copy(void *dst, int dst_dev, const void *src, int src_dev, size_t bytes) {
    cudaMemcpyKind k = dst_dev ? (src_dev ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice)
                               : (src_dev ? cudaMemcpyDeviceToHost : cudaMemcpyHostToHost);
    CUDA_CHECK(cudaMemcpy(dst, src, bytes, k));
}

extern "C" int s2s_cuda_probe(char *why, size_t n) {
    int count = 0;
    const cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        snprintf(why, n, "cudaGetDeviceCount: %s", cudaGetErrorString(e));
        return -1;
    }
    return count;
}

extern "C" int s2s_cuda_select(int index, char *info, size_t info_len, char *why, size_t why_len) {
    cudaDeviceProp prop;
    cudaError_t e = cudaSetDevice(index);
    if (e == cudaSuccess) e = cudaGetDeviceProperties(&prop, index);
    if (e != cudaSuccess) {
        snprintf(why, why_len, "%s", cudaGetErrorString(e));
        return -1;
    }
    snprintf(info, info_len, "cuda:%d %s, %.1f GiB, sm_%d%d", index, prop.name,
             (double)prop.totalGlobalMem / (1 << 30), prop.major, prop.minor);
    return 0;
}

extern "C" void s2s_cuda_sync(void) { CUDA_CHECK(cudaDeviceSynchronize()); }

extern "C" int s2s_cuda_device_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) return 0;
    return n;
}

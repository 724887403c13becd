#include "device.h"
#include <string.h>
#include "check.h"

void *s2s_dev_alloc(s2s_device dev, size_t bytes) {
    if (dev == S2S_CPU) {
        void *p = NULL;
        // 64-byte alignment: whole cache lines, and what AVX-512 loads prefer.
        S2S_CHECK(posix_memalign(&p, 64, bytes ? (bytes + 63) / 64 * 64 : 64) == 0,
                  "out of host memory allocating %zu bytes", bytes);
        return p;
    }
#ifdef S2S_HAVE_CUDA
    return s2s_cuda_alloc(bytes);
#else
    S2S_CHECK(0, "this s2s was built without CUDA; rebuild where nvcc is found (cmake -DS2S_CUDA=ON)");
#endif
}

void s2s_dev_free(s2s_device dev, void *p) {
    if (!p) return;
    if (dev == S2S_CPU) { free(p); return; }
#ifdef S2S_HAVE_CUDA
    s2s_cuda_free(p);
#endif
}

void s2s_dev_memset0(s2s_device dev, void *p, size_t bytes) {
    if (dev == S2S_CPU) { memset(p, 0, bytes); return; }
#ifdef S2S_HAVE_CUDA
    s2s_cuda_memset0(p, bytes);
#endif
}

void s2s_dev_copy(s2s_device dd, void *dst, s2s_device sd, const void *src, size_t bytes) {
    if (dd == S2S_CPU && sd == S2S_CPU) { memmove(dst, src, bytes); return; }
#ifdef S2S_HAVE_CUDA
    s2s_cuda_copy(dst, dd == S2S_CUDA, src, sd == S2S_CUDA, bytes);
#else
    S2S_CHECK(0, "this s2s was built without CUDA");
#endif
}

void s2s_dev_sync(s2s_device dev) {
    if (dev == S2S_CPU) return;
#ifdef S2S_HAVE_CUDA
    s2s_cuda_sync();
#else
    S2S_CHECK(0, "this s2s was built without CUDA");
#endif
}

int s2s_cuda_available(void) {
#ifdef S2S_HAVE_CUDA
    return s2s_cuda_device_count();
#else
    return 0;
#endif
}

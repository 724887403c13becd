#include "device.h"
#include <stdio.h>
#include <string.h>
#include "base/err.h"
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

int s2s_device_open(const char *name, int local_rank, s2s_device *dev, char *info, size_t info_len, char *err,
                    size_t errlen) {
    if (!name || !strcmp(name, "cpu")) {
        *dev = S2S_CPU;
        snprintf(info, info_len, "cpu");
        return 0;
    }
    if (strcmp(name, "cuda"))
        return s2s_errf(err, errlen, "device '%s': cpu or cuda", name);
#ifdef S2S_HAVE_CUDA
    char why[256] = {0};
    const int n = s2s_cuda_probe(why, sizeof why);
    if (n <= 0)
        return s2s_errf(err, errlen, "device cuda: this s2s has the CUDA backend but sees no GPU (%s); check "
                        "nvidia-smi and CUDA_VISIBLE_DEVICES, or use device: cpu", n < 0 ? why : "0 devices");
    if (s2s_cuda_select(local_rank % n, info, info_len, why, sizeof why))
        return s2s_errf(err, errlen, "device cuda: GPU %d of %d: %s", local_rank % n, n, why);
    *dev = S2S_CUDA;
    return 0;
#else
    (void)local_rank;
    return s2s_errf(err, errlen, "device cuda: this s2s was built without CUDA (nvcc was not found when it was "
                    "configured): install the CUDA toolkit and rebuild (cmake -DS2S_CUDA=ON), or use device: cpu");
#endif
}

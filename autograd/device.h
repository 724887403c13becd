// device.h — raw memory on a device. CPU is malloc/memcpy; CUDA goes through device_cuda.cu when the
// build has CUDA (S2S_HAVE_CUDA), and is a clear error otherwise.
#pragma once
#include <stddef.h>
#include "tensor.h"

void *s2s_dev_alloc(s2s_device dev, size_t bytes);
void s2s_dev_free(s2s_device dev, void *p);
void s2s_dev_memset0(s2s_device dev, void *p, size_t bytes);
// Copy between any two devices (host<->cuda, cuda<->cuda, host<->host).
void s2s_dev_copy(s2s_device dst_dev, void *dst, s2s_device src_dev, const void *src, size_t bytes);
int s2s_cuda_available(void);  // number of CUDA devices usable by this build (0 without CUDA)
// Wait until the device has finished all queued work (timing; a no-op on the CPU).
void s2s_dev_sync(s2s_device dev);

#ifdef S2S_HAVE_CUDA
// Implemented in device_cuda.cu.
void *s2s_cuda_alloc(size_t bytes);
void s2s_cuda_free(void *p);
void s2s_cuda_memset0(void *p, size_t bytes);
void s2s_cuda_copy(void *dst, int dst_on_device, const void *src, int src_on_device, size_t bytes);
int s2s_cuda_device_count(void);
void s2s_cuda_sync(void);
#endif

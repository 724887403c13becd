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
// A command's --device / recipe `device`: "cpu" or "cuda". For cuda, picks GPU local_rank % (visible GPUs) (one
// rank per GPU, the node-local rank choosing) and describes it in info ("cuda:1 NVIDIA H200, 139.8 GiB"). Fails
// with a message saying why: a build without CUDA, no GPU visible at run time (the CUDA runtime's reason).
int s2s_device_open(const char *name, int local_rank, s2s_device *dev, char *info, size_t info_len, char *err,
                    size_t errlen);
// Wait until the device has finished all queued work (timing; a no-op on the CPU).
void s2s_dev_sync(s2s_device dev);

#ifdef S2S_HAVE_CUDA
// Implemented in device_cuda.cu.
void *s2s_cuda_alloc(size_t bytes);
void s2s_cuda_free(void *p);
void s2s_cuda_memset0(void *p, size_t bytes);
void s2s_cuda_copy(void *dst, int dst_on_device, const void *src, int src_on_device, size_t bytes);
int s2s_cuda_device_count(void);
// The visible GPUs' count, or -1 with the runtime's reason in why (no driver, no device, ...).
int s2s_cuda_probe(char *why, size_t n);
// Make GPU index current for this process's thread; its name and memory into info. 0, or -1 with why.
int s2s_cuda_select(int index, char *info, size_t info_len, char *why, size_t why_len);
void s2s_cuda_sync(void);
#endif

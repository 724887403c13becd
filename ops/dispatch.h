// dispatch.h — helpers shared by the device-dispatching op files (ops/<op>.c).
#pragma once
#include "../autograd/check.h"
#include "ops.h"

#define F32(t) ((float *)(t)->data)
#define I32(t) ((int32_t *)(t)->data)

// Every float operand of an op is f32 on the context's device.
#define S2S_CHECK_F32(ctx, t, opname)                                                                     \
    S2S_CHECK((t)->dtype == S2S_F32 && (t)->device == (ctx)->device,                                    \
              "%s: operand %s must be f32 on the context's device (got %s); cast checkpoint weights to " \
              "f32 when loading",                                                                       \
              opname, (t)->name ? (t)->name : #t, s2s_dtype_name((t)->dtype))
#define S2S_CHECK_I32(ctx, t, opname)                                                                     \
    S2S_CHECK((t)->dtype == S2S_I32 && (t)->device == (ctx)->device, "%s: operand %s must be i32 indices", \
              opname, #t)

// CUDA kernels that are not written yet fail clearly instead of computing on the wrong device.
#ifdef S2S_HAVE_CUDA
#define S2S_NO_CUDA(opname) S2S_CHECK(0, "%s has no CUDA kernel yet; run this op on the CPU", opname)
#else
#define S2S_NO_CUDA(opname) S2S_CHECK(0, "%s: this s2s was built without CUDA", opname)
#endif

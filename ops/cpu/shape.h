#pragma once
#include <stddef.h>
#include "../../autograd/ctx.h"

// Strided block copy: for o < outer, dst[o * dst_stride + k] = src[o * src_stride + k], k < n (strides and
// n in elements of esize bytes; any dtype). Concat and slice are this with different strides.
void copy_blocks_cpu(void *dst, int64_t dst_stride, const void *src, int64_t src_stride, int64_t outer, int64_t n,
                     size_t esize);
// The same pattern accumulating f32: dst[o * dst_stride + k] += src[o * src_stride + k].
void add_blocks_cpu(float *dst, int64_t dst_stride, const float *src, int64_t src_stride, int64_t outer, int64_t n);

// dst [A, D1, B, D0, C] = (or +=, when accumulate) src [A, D0, B, D1, C] with axes 1 and 3 swapped.
// Backward of a transpose is the same call on dy with D0 and D1 exchanged.
void transpose_cpu(float *dst, const float *src, int64_t A, int64_t D0, int64_t B, int64_t D1, int64_t C,
                   bool accumulate);

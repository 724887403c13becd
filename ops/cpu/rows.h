#pragma once
#include <stddef.h>
#include "../../autograd/ctx.h"

// y [M, C] = x [N, C] rows idx[m] (elements of esize bytes: any dtype)
void gather_rows_cpu(void *y, const void *x, const int32_t *idx, int64_t M, int64_t C, size_t esize);
// dx [N, C] += dy [M, C] rows scattered to idx[m]; repeated indices add up. Threads own column ranges
// and walk m in order: deterministic.
void gather_rows_backward_cpu(float *dx, const float *dy, const int32_t *idx, int64_t M, int64_t C);
// y [N, C] = base with rows idx[m] replaced by src [M, C] (esize-byte elements)
void scatter_rows_cpu(void *y, const void *base, const int32_t *idx, const void *src, int64_t N, int64_t M,
                      int64_t C, size_t esize);
// dbase [N, C] += dy rows not in idx (replaced[n] != 0 marks rows in idx); dsrc [M, C] += dy rows idx[m].
// Either may be NULL.
void scatter_rows_backward_cpu(float *dbase, float *dsrc, const float *dy, const int32_t *idx,
                               const unsigned char *replaced, int64_t N, int64_t M, int64_t C);

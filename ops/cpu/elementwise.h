#pragma once
#include "../../autograd/ctx.h"

// y [R, M] = a [R, M] + b [M] broadcast over rows (R = 1: same shape)
void add_forward_cpu(float *y, const float *a, const float *b, int64_t R, int64_t M);
// dst [n] += src [n]
void add_into_cpu(float *dst, const float *src, int64_t n);
// db [M] += sum over rows of dy [R, M], accumulated in f64; threads own columns: deterministic.
void add_rows_into_cpu(float *db, const float *dy, int64_t R, int64_t M);
// y [n] = a * b
void mul_forward_cpu(float *y, const float *a, const float *b, int64_t n);
// da += dy * b, db += dy * a; either may be NULL.
void mul_backward_cpu(float *da, float *db, const float *dy, const float *a, const float *b, int64_t n);
// y [n] = s * a
void scale_forward_cpu(float *y, const float *a, float s, int64_t n);
// da [n] += s * dy
void scale_backward_cpu(float *da, const float *dy, float s, int64_t n);

// avgpool1d.h — CPU average pooling over the last axis (ops/avgpool1d.c is the graph op).
#pragma once
#include <stdint.h>

// y [R, Lout] = mean of x [R, L] over windows [t*stride, t*stride + k).
void avgpool1d_forward_cpu(float *y, const float *x, int64_t R, int64_t L, int64_t Lout, int k, int stride);
// dx [R, L] += dy [R, Lout] spread evenly over each window.
void avgpool1d_backward_cpu(float *dx, const float *dy, int64_t R, int64_t L, int64_t Lout, int k, int stride);

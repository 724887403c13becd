// conv1d.h — CPU conv1d kernels: im2col + one GEMM per batch element (ops/conv1d.c is the graph op).
#pragma once
#include "../../autograd/ctx.h"

// col [Cin*K, Lout]: col[c*K + k, t] = x[c, t*stride - pad + k], 0 outside [0, L). x is one batch
// element [Cin, L].
void conv1d_im2col_cpu(float *col, const float *x, int64_t Cin, int64_t L, int64_t K, int64_t Lout, int stride,
                       int pad);
// The adjoint of im2col: dx [Cin, L] += scatter of dcol [Cin*K, Lout].
void conv1d_col2im_cpu(float *dx, const float *dcol, int64_t Cin, int64_t L, int64_t K, int64_t Lout, int stride,
                       int pad);
// Workspace floats the kernels below need: Cin*K*Lout, or 0 for a 1-wide unit-stride unpadded conv
// (its column matrix is x itself).
int64_t conv1d_col_floats(int64_t Cin, int64_t K, int64_t Lout, int stride, int pad);
// y [B, Cout, Lout] = w [Cout, Cin*K] @ im2col(x[b]) + bias [Cout] (bias may be NULL).
// col is a workspace of conv1d_col_floats() floats.
void conv1d_forward_cpu(s2s_ctx *ctx, float *y, const float *x, const float *w, const float *bias, float *col,
                        int64_t B, int64_t Cin, int64_t L, int64_t Cout, int64_t K, int64_t Lout, int stride,
                        int pad);
// Accumulates into whichever of dx [B, Cin, L], dw [Cout, Cin, K], db [Cout] is non-NULL. col is a
// workspace of conv1d_col_floats() floats (im2col of x for dw, then reused as dcol for dx).
void conv1d_backward_cpu(s2s_ctx *ctx, float *dx, float *dw, float *db, const float *dy, const float *x,
                         const float *w, float *col, int64_t B, int64_t Cin, int64_t L, int64_t Cout, int64_t K,
                         int64_t Lout, int stride, int pad);

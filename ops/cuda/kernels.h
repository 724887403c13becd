// kernels.h — the CUDA kernels' C entry points (ops/cuda/*.cu, extern "C"). Each mirrors the CPU
// kernel of the same name in ops/cpu/ (same arguments, same semantics): forward writes its output;
// backward ACCUMULATES into the gradient buffers it is given and skips the NULL ones. All pointers
// are device memory unless said otherwise; everything runs on the default stream, in order.
// Only ops/<op>.c (under S2S_HAVE_CUDA) and tests call these.
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "../../autograd/ctx.h"
#include "../cpu/adamw.h"
#include "../cpu/cross_entropy_fused.h"
#include "../cpu/kl.h"

// ---- context state (ctx_cuda.cu) -------------------------------------------------------------------
// How GEMMs treat their f32 operands. BF16 (the default, DESIGN: "cuBLASLt bf16 GEMMs with fp32
// accumulation"): operands are rounded to bf16 (nearest-even) on the fly, products accumulate in f32,
// the output (and beta * C) stays f32. F32: plain f32 GEMMs with f32 accumulation (no TF32), for tests
// that compare against the CPU tightly. The environment variable S2S_GEMM=f32 picks F32 for every new
// context.
typedef enum { S2S_GEMM_BF16 = 0, S2S_GEMM_F32 = 1 } s2s_gemm_mode;
void s2s_cuda_set_gemm_mode(s2s_ctx *ctx, s2s_gemm_mode mode);
s2s_gemm_mode s2s_cuda_get_gemm_mode(s2s_ctx *ctx);
typedef struct s2s_cuda_state s2s_cuda_state;
// First position m < n with idx[m] outside [0, limit), or -1 when all are inside. Synchronises (one
// int comes back to the host) so the caller can fail with a message naming the index.
int64_t index_first_invalid_cuda(s2s_ctx *ctx, const int32_t *idx, int64_t n, int64_t limit);

// ---- GEMM (gemm.cu): the one place CUDA GEMMs go through, counted in ctx->stats like gemm_cpu -----
// Row-major C[M,N] = alpha * op(A)[M,K] @ op(B)[K,N] + beta * C, op = transpose when ta / tb.
void gemm_cuda(s2s_ctx *ctx, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
               int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);
// The same for `batch` independent products at element strides sA, sB, sC (0: shared operand).
// Counts `batch` GEMMs, as the CPU path's loop of gemm_cpu calls does.
void gemm_batched_cuda(s2s_ctx *ctx, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                       int64_t lda, int64_t sA, const float *B, int64_t ldb, int64_t sB, float beta, float *C,
                       int64_t ldc, int64_t sC, int64_t batch);
// Operands already in bf16 (a_bf16 / b_bf16 true: that pointer holds __nv_bfloat16, e.g. a weight
// converted once with f32_to_bf16_cuda and reused over many calls); an f32 operand paired with a
// bf16 one is rounded to bf16. Output f32.
void gemm_ex_cuda(s2s_ctx *ctx, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const void *A,
                  bool a_bf16, int64_t lda, int64_t sA, const void *B, bool b_bf16, int64_t ldb, int64_t sB, float beta,
                  float *C, int64_t ldc, int64_t sC, int64_t batch);
// dst [n] (bf16) = round-to-nearest-even(src [n]).
void f32_to_bf16_cuda(s2s_ctx *ctx, void *dst, const float *src, int64_t n);

// ---- linear / bmm ----------------------------------------------------------------------------------
void linear_forward_cuda(s2s_ctx *ctx, float *y, const float *x, const float *w, const float *b, int64_t N,
                         int64_t K, int64_t M);
void linear_backward_cuda(s2s_ctx *ctx, float *dx, float *dw, float *db, const float *dy, const float *x,
                          const float *w, int64_t N, int64_t K, int64_t M);
void bmm_forward_cuda(s2s_ctx *ctx, float *c, const float *a, const float *b, int64_t B, int64_t M, int64_t K,
                      int64_t N, bool trans_b);
void bmm_backward_cuda(s2s_ctx *ctx, float *da, float *db, const float *dc, const float *a, const float *b,
                       int64_t B, int64_t M, int64_t K, int64_t N, bool trans_b);

// ---- embedding / rows ------------------------------------------------------------------------------
void embedding_forward_cuda(s2s_ctx *ctx, float *y, const int32_t *ids, const float *w, int64_t N, int64_t C);
// dw [V, C] += dy rows at ids (repeated ids add up in token order; no atomics: ids are sorted stably).
void embedding_backward_cuda(s2s_ctx *ctx, float *dw, const float *dy, const int32_t *ids, int64_t N, int64_t C,
                             int64_t V);
void gather_rows_cuda(s2s_ctx *ctx, void *y, const void *x, const int32_t *idx, int64_t M, int64_t C, size_t esize);
// dx [N, C] += dy [M, C] rows scattered to idx[m]; repeated indices add up in m order.
void gather_rows_backward_cuda(s2s_ctx *ctx, float *dx, const float *dy, const int32_t *idx, int64_t M, int64_t C,
                               int64_t N);
// count [N] = how often each row appears in idx [M] (idx already range-checked); returns the first m
// whose row appears twice, or -1 (synchronises).
int64_t scatter_rows_mark_cuda(s2s_ctx *ctx, int32_t *count, const int32_t *idx, int64_t N, int64_t M);
void scatter_rows_cuda(s2s_ctx *ctx, void *y, const void *base, const int32_t *idx, const void *src, int64_t N,
                       int64_t M, int64_t C, size_t esize);
// dbase [N, C] += dy rows with count[n] == 0; dsrc [M, C] += dy rows idx[m]. Either may be NULL.
void scatter_rows_backward_cuda(s2s_ctx *ctx, float *dbase, float *dsrc, const float *dy, const int32_t *idx,
                                const int32_t *count, int64_t N, int64_t M, int64_t C);

// ---- norms -----------------------------------------------------------------------------------------
void rmsnorm_forward_cuda(s2s_ctx *ctx, float *y, float *rstd, const float *x, const float *w, int64_t N, int64_t C,
                          float eps);
void rmsnorm_backward_cuda(s2s_ctx *ctx, float *dx, float *dw, const float *dy, const float *x, const float *w,
                           const float *rstd, int64_t N, int64_t C);
void layernorm_forward_cuda(s2s_ctx *ctx, float *y, float *stats, const float *x, const float *w, const float *b,
                            int64_t N, int64_t C, float eps);
void layernorm_backward_cuda(s2s_ctx *ctx, float *dx, float *dw, float *db, const float *dy, const float *x,
                             const float *w, const float *stats, int64_t N, int64_t C);

// ---- rope ------------------------------------------------------------------------------------------
void rope_forward_cuda(s2s_ctx *ctx, float *y, const float *x, const int32_t *pos, int64_t T, int64_t H, int64_t D,
                       float theta);
void rope_backward_cuda(s2s_ctx *ctx, float *dx, const float *dy, const int32_t *pos, int64_t T, int64_t H,
                        int64_t D, float theta);

// ---- activations -----------------------------------------------------------------------------------
void silu_mul_forward_cuda(s2s_ctx *ctx, float *y, const float *g, const float *u, int64_t n);
void silu_mul_backward_cuda(s2s_ctx *ctx, float *dg, float *du, const float *dy, const float *g, const float *u,
                            int64_t n);
void gelu_forward_cuda(s2s_ctx *ctx, float *y, const float *x, int64_t n);
void gelu_backward_cuda(s2s_ctx *ctx, float *dx, const float *dy, const float *x, int64_t n);
void glu_forward_cuda(s2s_ctx *ctx, float *y, const float *x, int64_t O, int64_t H, int64_t I);
void glu_backward_cuda(s2s_ctx *ctx, float *dx, const float *dy, const float *x, int64_t O, int64_t H, int64_t I);

// ---- elementwise -----------------------------------------------------------------------------------
void add_forward_cuda(s2s_ctx *ctx, float *y, const float *a, const float *b, int64_t R, int64_t M);
void add_into_cuda(s2s_ctx *ctx, float *dst, const float *src, int64_t n);
void add_rows_into_cuda(s2s_ctx *ctx, float *db, const float *dy, int64_t R, int64_t M);  // f64 column sums
void mul_forward_cuda(s2s_ctx *ctx, float *y, const float *a, const float *b, int64_t n);
void mul_backward_cuda(s2s_ctx *ctx, float *da, float *db, const float *dy, const float *a, const float *b, int64_t n);
void scale_forward_cuda(s2s_ctx *ctx, float *y, const float *a, float s, int64_t n);
void scale_backward_cuda(s2s_ctx *ctx, float *da, const float *dy, float s, int64_t n);

// ---- shape -----------------------------------------------------------------------------------------
void copy_blocks_cuda(s2s_ctx *ctx, void *dst, int64_t dst_stride, const void *src, int64_t src_stride,
                      int64_t outer, int64_t n, size_t esize);
void add_blocks_cuda(s2s_ctx *ctx, float *dst, int64_t dst_stride, const float *src, int64_t src_stride,
                     int64_t outer, int64_t n);
void transpose_cuda(s2s_ctx *ctx, float *dst, const float *src, int64_t A, int64_t D0, int64_t B, int64_t D1,
                    int64_t C, bool accumulate);

// ---- conv / pool -----------------------------------------------------------------------------------
// col: a device workspace of conv1d_col_floats() floats (ops/cpu/conv1d.h), as on the CPU.
void conv1d_forward_cuda(s2s_ctx *ctx, float *y, const float *x, const float *w, const float *bias, float *col,
                         int64_t B, int64_t Cin, int64_t L, int64_t Cout, int64_t K, int64_t Lout, int stride,
                         int pad);
void conv1d_backward_cuda(s2s_ctx *ctx, float *dx, float *dw, float *db, const float *dy, const float *x,
                          const float *w, float *col, int64_t B, int64_t Cin, int64_t L, int64_t Cout, int64_t K,
                          int64_t Lout, int stride, int pad);
void avgpool1d_forward_cuda(s2s_ctx *ctx, float *y, const float *x, int64_t R, int64_t L, int64_t Lout, int k,
                            int stride);
void avgpool1d_backward_cuda(s2s_ctx *ctx, float *dx, const float *dy, int64_t R, int64_t L, int64_t Lout, int k,
                             int stride);

// ---- optimizer -------------------------------------------------------------------------------------
void adamw_update_cuda(s2s_ctx *ctx, float *p, const float *g, float *m, float *v, int64_t n, adamw_scalars s);
// *slot (device double) = sum of g[i]^2 in f64, in a fixed order (two passes, no atomics).
void grad_sumsq_cuda(s2s_ctx *ctx, const float *g, int64_t n, double *slot);
void grad_scale_cuda(s2s_ctx *ctx, float *g, int64_t n, float f);

// ---- attention (attention.cu) ------------------------------------------------------------------------
// Same shapes and semantics as attention_forward_cpu / attention_backward_cpu (ops/cpu/attention.h);
// sh->cu is HOST memory ([S+1] sample offsets). lse2 is device memory of attention_lse_floats(sh)
// floats, laid out [Hq, T] (base-2 logsumexp) on this path: only attention_backward_cuda reads it.
// Deterministic backward (no atomics); accumulates into the non-NULL dq / dk / dv. D <= 128.
#include "../cpu/attention.h"
void attention_forward_cuda(s2s_ctx *ctx, const attn_shape *sh, float *out, float *lse2, const float *q,
                            const float *k, const float *v);
void attention_backward_cuda(s2s_ctx *ctx, const attn_shape *sh, float *dq, float *dk, float *dv, const float *dout,
                             const float *out, const float *lse2, const float *q, const float *k, const float *v);

// attention_kv.cu: same shapes and semantics as attention_kv_forward_cpu (ops/cpu/attention_kv.h); forward only.
#include "../cpu/attention_kv.h"
void attention_kv_forward_cuda(s2s_ctx *ctx, float *out, const float *q, const float *k, const float *v, int64_t Tq,
                               int64_t Tk, int64_t Hq, int64_t Hkv, int64_t D, float scale);

// ---- softmax and losses (softmax.cu, cross_entropy.cu, cross_entropy_fused.cu, kl.cu) ----------------
// Same semantics as the CPU kernels of the same name (ops/cpu/softmax.h, cross_entropy.h,
// cross_entropy_fused.h, kl.h): one block per row, f32 exponentials, f64 row sums, fixed-order block
// reductions (deterministic, no atomics). The fused losses take the CPU's chunk plan and workspace
// size (ce_fused_workspace_floats / kl_fused_workspace_floats, device floats); every pointer in
// `a` (h, w, rows, labels) is device memory. Per-row losses stay on the device; the op files copy
// them to the host and reduce them there in row order (as the CPU path does).
void softmax_forward_cuda(s2s_ctx *ctx, float *y, const float *x, int64_t N, int64_t V);
void softmax_backward_cuda(s2s_ctx *ctx, float *dx, const float *dy, const float *y, int64_t N, int64_t V);
void cross_entropy_forward_cuda(s2s_ctx *ctx, float *loss, float *lse, const float *logits, const int32_t *labels,
                                int32_t ignore, int64_t N, int64_t V);
void cross_entropy_backward_cuda(s2s_ctx *ctx, float *dlogits, const float *logits, const float *lse,
                                 const int32_t *labels, int32_t ignore, float scale, int64_t N, int64_t V);
void ce_fused_forward_cuda(s2s_ctx *ctx, const ce_fused_args *a, float scale, float *loss, float *lse, float *dh,
                           float *dw, float *ws);
void ce_fused_dw_cuda(s2s_ctx *ctx, const ce_fused_args *a, const float *lse, float alpha, float *dw, float *ws);
void kl_fused_forward_cuda(s2s_ctx *ctx, const kl_fused_args *a, float scale, float *kl, float *lse_s, float *lse_t,
                           float *dhs, float *dht, float *dw, float *ws);
void kl_fused_dw_cuda(s2s_ctx *ctx, const kl_fused_args *a, const float *kl, const float *lse_s, const float *lse_t,
                      float alpha, float *dw, float *ws);
// dst[rows[m]] += alpha * src[m] for rows of C floats (rows distinct: no two threads touch one element).
void loss_rows_axpy_cuda(s2s_ctx *ctx, float *dst, const int32_t *rows, const float *src, int64_t M, int64_t C,
                         float alpha);

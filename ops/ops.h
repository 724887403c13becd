// ops.h — the s2s op API. Each op runs its forward on the context's device and, when grad mode is
// on and an input requires grad, records a node whose backward is the op's own. The API is the same
// for every device: ops/<op>.c dispatches to ops/cpu/<op>.c or ops/cuda/<op>.cu.
// All float tensors are f32 here (the CPU path computes in f32; CUDA keeps f32 masters and casts
// inside its kernels). Index tensors are i32. Scalars are 0-dim tensors.
#pragma once
#include "../autograd/ctx.h"
#include "../autograd/params.h"

// ---- shape -----------------------------------------------------------------------------------------
// reshape / concat / slice / gather_rows / scatter_rows also move i32 tensors (ids, masks); transpose is f32.
// Axes may be negative (counted from the end), here and in s2s_glu.
// Same data, new shape (numel must match). Records a node so gradients reach x.
s2s_tensor *s2s_reshape(s2s_ctx *ctx, s2s_tensor *x, int ndim, const int64_t *shape);
// Swap two axes (materialised copy).
s2s_tensor *s2s_transpose(s2s_ctx *ctx, s2s_tensor *x, int axis0, int axis1);
// Concatenate along axis; all other dims equal. Any n (more than a node holds are grouped).
s2s_tensor *s2s_concat(s2s_ctx *ctx, s2s_tensor **xs, int n, int axis);
// x[..., start:start+len, ...] along axis.
s2s_tensor *s2s_slice(s2s_ctx *ctx, s2s_tensor *x, int axis, int64_t start, int64_t len);
// x [N, C], idx i32 [M] -> [M, C]: out[m] = x[idx[m]].
s2s_tensor *s2s_gather_rows(s2s_ctx *ctx, s2s_tensor *x, s2s_tensor *idx);
// base [N, C], idx i32 [M] (distinct), src [M, C] -> [N, C]: a copy of base with row idx[m] = src[m].
s2s_tensor *s2s_scatter_rows(s2s_ctx *ctx, s2s_tensor *base, s2s_tensor *idx, s2s_tensor *src);

// ---- elementwise -----------------------------------------------------------------------------------
// a [..shape], b either the same shape or a's trailing dims (broadcast over the leading ones; leading
// size-1 dims of b are ignored, so b [1, C] adds to a [N, C]).
s2s_tensor *s2s_add(s2s_ctx *ctx, s2s_tensor *a, s2s_tensor *b);
s2s_tensor *s2s_mul(s2s_ctx *ctx, s2s_tensor *a, s2s_tensor *b);  // same shape
s2s_tensor *s2s_scale(s2s_ctx *ctx, s2s_tensor *a, float s);

// ---- embedding and GEMM ----------------------------------------------------------------------------
// ids i32 [...], w [V, C] -> [..., C]. Out-of-range ids are an error naming the id.
s2s_tensor *s2s_embedding(s2s_ctx *ctx, s2s_tensor *ids, s2s_tensor *w);
// x [..., K], w [N, K] (PyTorch layout), b [N] or NULL -> [..., N]
s2s_tensor *s2s_linear(s2s_ctx *ctx, s2s_tensor *x, s2s_tensor *w, s2s_tensor *b);
// a [B, M, K], b [B, K, N] (or [B, N, K] when trans_b) -> [B, M, N]
s2s_tensor *s2s_bmm(s2s_ctx *ctx, s2s_tensor *a, s2s_tensor *b, bool trans_b);
// Not an op (not taped): f32 GEMM on plain row-major host arrays, whatever the context's device, for one-off
// set-up outside the step (vocabulary resizing). C[M,N] = alpha * op(A)[M,K] @ op(B)[K,N] + beta * C with
// op = transpose when ta / tb; counted in ctx->stats like every CPU GEMM.
void s2s_gemm_host(s2s_ctx *ctx, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                   int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);

// ---- normalisation ---------------------------------------------------------------------------------
s2s_tensor *s2s_rmsnorm(s2s_ctx *ctx, s2s_tensor *x, s2s_tensor *w, float eps);                 // x [..., C], w [C]
s2s_tensor *s2s_layernorm(s2s_ctx *ctx, s2s_tensor *x, s2s_tensor *w, s2s_tensor *b, float eps); // b may be NULL

// ---- position --------------------------------------------------------------------------------------
// Hugging Face rotate-half RoPE. x [T, H, D] (D even), pos i32 [T] -> [T, H, D];
// inv_freq[i] = theta^(-2i/D), angle = pos * inv_freq.
s2s_tensor *s2s_rope(s2s_ctx *ctx, s2s_tensor *x, s2s_tensor *pos, float theta);

// ---- attention -------------------------------------------------------------------------------------
// Packed variable-length attention. q [T, Hq, D], k/v [T, Hkv, D] with Hq % Hkv == 0 (GQA: query head
// h reads kv head h / (Hq/Hkv)); cu_seqlens i32 [S+1] (sample s owns rows cu[s]..cu[s+1]; NULL = one
// sample of T rows). Causal or bidirectional within each sample, never across. scale multiplies
// q.k (pass 1/sqrt(D) for the usual). Tiled: memory O(T) (saves only out and the row logsumexp).
s2s_tensor *s2s_attention(s2s_ctx *ctx, s2s_tensor *q, s2s_tensor *k, s2s_tensor *v, s2s_tensor *cu_seqlens,
                          bool causal, float scale);

// Attention of Tq new query rows against a key / value cache (decoding): q [Tq, Hq, D], k / v [Tk, Hkv, D] with
// Tk >= Tq, GQA as above. Causal with the queries at absolute positions Tk - Tq .. Tk - 1: query row i sees keys
// 0 .. Tk - Tq + i. Forward only: refused where a gradient would be recorded (training uses s2s_attention).
s2s_tensor *s2s_attention_kv(s2s_ctx *ctx, s2s_tensor *q, s2s_tensor *k, s2s_tensor *v, float scale);

// ---- activations -----------------------------------------------------------------------------------
s2s_tensor *s2s_softmax(s2s_ctx *ctx, s2s_tensor *x);                   // over the last dim
s2s_tensor *s2s_silu_mul(s2s_ctx *ctx, s2s_tensor *gate, s2s_tensor *up); // silu(gate) * up
s2s_tensor *s2s_gelu(s2s_ctx *ctx, s2s_tensor *x);                      // exact (erf) GELU
// GLU along axis: x split in halves a, b on that axis -> a * sigmoid(b).
s2s_tensor *s2s_glu(s2s_ctx *ctx, s2s_tensor *x, int axis);

// ---- convolution and pooling -----------------------------------------------------------------------
// x [B, Cin, L], w [Cout, Cin, K], b [Cout] or NULL -> [B, Cout, (L + 2*pad - K)/stride + 1]
s2s_tensor *s2s_conv1d(s2s_ctx *ctx, s2s_tensor *x, s2s_tensor *w, s2s_tensor *b, int stride, int pad);
// x [B, C, L] -> [B, C, (L - k)/stride + 1]
s2s_tensor *s2s_avgpool1d(s2s_ctx *ctx, s2s_tensor *x, int k, int stride);

// ---- losses ----------------------------------------------------------------------------------------
// Plain cross-entropy on materialised logits [N, V] with labels i32 [N]; mean over labels != ignore.
// All rows ignored gives 0 (and zero gradients), not NaN.
s2s_tensor *s2s_cross_entropy(s2s_ctx *ctx, s2s_tensor *logits, s2s_tensor *labels, int ignore_index);
// weight * cross-entropy of logits = h @ w^T, fused: h [N, C], w [V, C], labels i32 [N]. Processed in
// token chunks and vocabulary blocks so no [N, V] buffer exists. With grad on, the gradients for h
// and w are formed during the forward (one pass over the logits instead of two) for an upstream
// gradient of 1; w's share is added to w.grad then. backward() adds h's share and corrects both if
// the upstream gradient turns out to be other than 1. `weight` is typically the loss weight.
s2s_tensor *s2s_cross_entropy_fused(s2s_ctx *ctx, s2s_tensor *h, s2s_tensor *w, s2s_tensor *labels,
                                    int ignore_index, float weight);
// Response KL with temperature T between a teacher and a student sharing the output projection w:
// p = softmax(h_t w^T / T), q = softmax(h_s w^T / T); loss = sum_rows mask * KL(p || q) / sum(mask).
// h_s, h_t [N, C], w [V, C], mask i32 [N] (0/1). Chunked like the fused cross-entropy; gradients go
// to h_s (and h_t / w when they require grad).
s2s_tensor *s2s_kl_fused(s2s_ctx *ctx, s2s_tensor *h_s, s2s_tensor *h_t, s2s_tensor *w, s2s_tensor *mask,
                         float temperature);

// ---- optimizer (not taped) -------------------------------------------------------------------------
// Hyper-parameters are f64 like PyTorch's Python floats: with f32, 1 - beta2 for beta2 = 0.999 is off
// by 1.3e-5 relative, which drifts the second moment away from PyTorch's. Write 0.999, not 0.999f.
typedef struct s2s_adamw_cfg {
    double lr, beta1, beta2, eps, weight_decay;
} s2s_adamw_cfg;
// One AdamW step (decoupled weight decay, bias correction) on n elements. step counts from 1.
void s2s_adamw_update(s2s_ctx *ctx, float *p, const float *g, float *m, float *v, int64_t n,
                      s2s_adamw_cfg cfg, bool decay, int64_t step);
// L2 norm of all trainable gradients in the registry (f64 accumulation, fixed order).
double s2s_grad_norm(s2s_ctx *ctx, s2s_params *params);
// Scale gradients so their global norm is at most max_norm (PyTorch clip_grad_norm_ semantics:
// factor = max_norm / (norm + 1e-6), applied when < 1). Returns the norm before clipping.
double s2s_grad_clip(s2s_ctx *ctx, s2s_params *params, double max_norm);
// The same scaling for a norm already computed (s2s_grad_norm): a trainer that logs the norm needs it once.
void s2s_grad_clip_known(s2s_ctx *ctx, s2s_params *params, double norm, double max_norm);
// The same operations on a raw f32 buffer on ctx's device (ZeRO's gradient shards, train/zero.h): the f64 sum of
// squares (blocked and added in a fixed order: the same bits for any thread count), x *= f, dst += src.
double s2s_buf_sumsq(s2s_ctx *ctx, const float *x, int64_t n);
void s2s_buf_scale(s2s_ctx *ctx, float *x, int64_t n, float f);
void s2s_buf_add(s2s_ctx *ctx, float *dst, const float *src, int64_t n);

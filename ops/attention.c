// attention.c — packed variable-length attention (causal or bidirectional, GQA), forward and
// backward. The tiled kernels are in cpu/attention.c; this file checks shapes and sample offsets,
// and keeps what backward needs: the row logsumexp (O(T)) and the sample offsets.
#include <math.h>
#include "cpu/attention.h"
#include "dispatch.h"
#include "../autograd/device.h"
#ifdef S2S_HAVE_CUDA
#include "cuda/kernels.h"
#endif

typedef struct {
    attn_shape sh;  // sh.cu (host memory) points at cu below, the caller's cu_seqlens (CPU) or a host copy (CUDA)
    float *lse2;    // CPU: [Hkv, T, Hq/Hkv]; CUDA: [Hq, T] (each path reads only its own)
    int32_t one[2]; // cu for cu_seqlens == NULL: one sample of T rows
} attn_saved;

static void attention_backward(s2s_ctx *ctx, s2s_node *n) {
    s2s_tensor *q = n->in[0], *k = n->in[1], *v = n->in[2], *o = n->out[0];
    attn_saved *sv = n->saved;
    float *dq = s2s_grad_if(ctx, q), *dk = s2s_grad_if(ctx, k), *dv = s2s_grad_if(ctx, v);
    if (ctx->device == S2S_CPU)
        attention_backward_cpu(ctx, &sv->sh, dq, dk, dv, F32(o->grad), F32(o), sv->lse2, F32(q), F32(k), F32(v));
#ifdef S2S_HAVE_CUDA
    else attention_backward_cuda(ctx, &sv->sh, dq, dk, dv, F32(o->grad), F32(o), sv->lse2, F32(q), F32(k), F32(v));
#else
    else S2S_NO_CUDA("attention");
#endif
}

s2s_tensor *s2s_attention(s2s_ctx *ctx, s2s_tensor *q, s2s_tensor *k, s2s_tensor *v, s2s_tensor *cu_seqlens,
                          bool causal, float scale) {
    S2S_CHECK_F32(ctx, q, "attention");
    S2S_CHECK_F32(ctx, k, "attention");
    S2S_CHECK_F32(ctx, v, "attention");
    S2S_CHECK(q->ndim == 3 && k->ndim == 3 && v->ndim == 3,
              "attention: q [T, Hq, D], k and v [T, Hkv, D] (got %d, %d and %d dims)", q->ndim, k->ndim, v->ndim);
    S2S_CHECK(s2s_same_shape(k, v), "attention: k and v must have the same shape [T, Hkv, D]");
    const int64_t T = q->shape[0], Hq = q->shape[1], D = q->shape[2], Hkv = k->shape[1];
    S2S_CHECK(k->shape[0] == T && k->shape[2] == D,
              "attention: k [%lld, %lld, %lld] does not match q [%lld, %lld, %lld] in rows or head_dim",
              (long long)k->shape[0], (long long)Hkv, (long long)k->shape[2], (long long)T, (long long)Hq,
              (long long)D);
    S2S_CHECK(Hkv > 0 && Hq % Hkv == 0, "attention: %lld query heads are not a multiple of %lld kv heads (GQA)",
              (long long)Hq, (long long)Hkv);
    S2S_CHECK(D > 0, "attention: head_dim must be positive");
    S2S_CHECK(isfinite(scale), "attention: scale must be finite (pass 1/sqrt(head_dim) for the usual)");

    s2s_tensor *o = s2s_new3(ctx, S2S_F32, T, Hq, D);  // [T, Hq, D]
    // What backward needs; released again below when nothing is recorded (inference, frozen inputs).
    s2s_arena_mark mark = s2s_arena_get_mark(ctx->cur);
    attn_saved *sv = s2s_host_alloc(ctx, sizeof *sv);
    const int32_t *cu = sv->one;
    int S = 1;
    sv->one[0] = 0;
    sv->one[1] = (int32_t)T;
    if (cu_seqlens) {
        S2S_CHECK_I32(ctx, cu_seqlens, "attention");
        S2S_CHECK(cu_seqlens->ndim == 1 && cu_seqlens->shape[0] >= 2,
                  "attention: cu_seqlens must be i32 [S+1] with S >= 1 (sample offsets 0, ..., T)");
        S = (int)cu_seqlens->shape[0] - 1;
        cu = I32(cu_seqlens);
        if (ctx->device != S2S_CPU) {  // the offsets are read on the host (checks, block descriptors)
            int32_t *h = s2s_host_alloc(ctx, (size_t)(S + 1) * sizeof *h);
            s2s_dev_copy(S2S_CPU, h, ctx->device, cu, (size_t)(S + 1) * sizeof *h);
            cu = h;
        }
        S2S_CHECK(cu[0] == 0 && cu[S] == T, "attention: cu_seqlens must run from 0 to T=%lld (got %d..%d)",
                  (long long)T, cu[0], cu[S]);
        for (int s = 0; s < S; s++)
            S2S_CHECK(cu[s + 1] >= cu[s], "attention: cu_seqlens must not decrease (cu[%d]=%d > cu[%d]=%d)", s,
                      cu[s], s + 1, cu[s + 1]);
    }
    sv->sh = (attn_shape){.T = T, .Hq = Hq, .Hkv = Hkv, .D = D, .S = S, .cu = cu, .causal = causal, .scale = scale};
    sv->lse2 = s2s_scratch_alloc(ctx, attention_lse_floats(&sv->sh) * sizeof(float));
    if (ctx->device == S2S_CPU) attention_forward_cpu(ctx, &sv->sh, F32(o), sv->lse2, F32(q), F32(k), F32(v));
#ifdef S2S_HAVE_CUDA
    else attention_forward_cuda(ctx, &sv->sh, F32(o), sv->lse2, F32(q), F32(k), F32(v));
#else
    else S2S_NO_CUDA("attention");
#endif
    s2s_node *nd = s2s_record(ctx, "attention", attention_backward, (s2s_tensor *[]){q, k, v, cu_seqlens}, 4, &o, 1);
    if (nd) nd->saved = sv;
    else s2s_arena_rewind(ctx->cur, mark);
    return o;
}

// attention_kv.c — attention of a few new query rows against cached keys / values (inference). Shape checks and
// dispatch; the kernels are cpu/attention_kv.c and cuda/attention_kv.cu. No backward: decoding runs without a tape,
// and a training step that reached this op by mistake must fail here rather than silently drop gradients.
#include <math.h>
#include "cpu/attention_kv.h"
#include "dispatch.h"
#ifdef S2S_HAVE_CUDA
#include "cuda/kernels.h"
#endif

s2s_tensor *s2s_attention_kv(s2s_ctx *ctx, s2s_tensor *q, s2s_tensor *k, s2s_tensor *v, float scale) {
    S2S_CHECK_F32(ctx, q, "attention_kv");
    S2S_CHECK_F32(ctx, k, "attention_kv");
    S2S_CHECK_F32(ctx, v, "attention_kv");
    S2S_CHECK(!s2s_grad_enabled(ctx) || !(q->requires_grad || k->requires_grad || v->requires_grad),
              "attention_kv is forward only (decoding with a KV cache) and an input requires grad: run it inside "
              "s2s_no_grad_begin / s2s_no_grad_end, or use s2s_attention where a gradient is needed");
    S2S_CHECK(q->ndim == 3 && k->ndim == 3 && v->ndim == 3,
              "attention_kv: q [Tq, Hq, D], k and v [Tk, Hkv, D] (got %d, %d and %d dims)", q->ndim, k->ndim,
              v->ndim);
    S2S_CHECK(s2s_same_shape(k, v), "attention_kv: k and v must have the same shape [Tk, Hkv, D]");
    const int64_t Tq = q->shape[0], Hq = q->shape[1], D = q->shape[2], Tk = k->shape[0], Hkv = k->shape[1];
    S2S_CHECK(k->shape[2] == D, "attention_kv: k has head_dim %lld, q %lld", (long long)k->shape[2], (long long)D);
    S2S_CHECK(Tk >= Tq, "attention_kv: %lld cached keys for %lld query rows: the cache must already hold the new rows",
              (long long)Tk, (long long)Tq);
    S2S_CHECK(Hkv > 0 && Hq % Hkv == 0, "attention_kv: %lld query heads are not a multiple of %lld kv heads (GQA)",
              (long long)Hq, (long long)Hkv);
    S2S_CHECK(D > 0, "attention_kv: head_dim must be positive");
    S2S_CHECK(isfinite(scale), "attention_kv: scale must be finite (pass 1/sqrt(head_dim) for the usual)");

    s2s_tensor *o = s2s_new3(ctx, S2S_F32, Tq, Hq, D);  // [Tq, Hq, D]
    if (ctx->device == S2S_CPU) attention_kv_forward_cpu(ctx, F32(o), F32(q), F32(k), F32(v), Tq, Tk, Hq, Hkv, D, scale);
#ifdef S2S_HAVE_CUDA
    else attention_kv_forward_cuda(ctx, F32(o), F32(q), F32(k), F32(v), Tq, Tk, Hq, Hkv, D, scale);
#else
    else S2S_NO_CUDA("attention_kv");
#endif
    return o;
}

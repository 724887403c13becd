// attention.h — tiled (flash-attention style) packed variable-length attention on the CPU.
// Memory is O(T): the forward keeps only the output and one logsumexp per (row, query head); the
// backward recomputes the scores tile by tile (FA2).
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include "../../autograd/ctx.h"

typedef struct attn_shape {
    int64_t T, Hq, Hkv, D;  // q [T, Hq, D], k/v [T, Hkv, D]; query head h reads kv head h / (Hq/Hkv)
    int S;                  // samples in the packed batch
    const int32_t *cu;      // [S+1]: sample s owns rows cu[s]..cu[s+1]
    bool causal;
    float scale;            // multiplies q.k
} attn_shape;

// lse2 [Hkv, T, Hq/Hkv]: per (row, query head) logsumexp of scale*log2(e)*q.k, in base 2, laid out
// group-major (kv head, row, head within the group) like the kernels' stacked tiles. Only the
// backward reads it.
size_t attention_lse_floats(const attn_shape *sh);

// out [T, Hq, D], lse2 (see above).
void attention_forward_cpu(s2s_ctx *ctx, const attn_shape *sh, float *out, float *lse2, const float *q,
                           const float *k, const float *v);
// Accumulates into whichever of dq [T, Hq, D], dk / dv [T, Hkv, D] is non-NULL.
void attention_backward_cpu(s2s_ctx *ctx, const attn_shape *sh, float *dq, float *dk, float *dv, const float *dout,
                            const float *out, const float *lse2, const float *q, const float *k, const float *v);

// attention_kv.h — attention of a few new query rows against a key / value cache on the CPU (inference).
#pragma once
#include <stdint.h>
#include "../../autograd/ctx.h"

// q [Tq, Hq, D], k / v [Tk, Hkv, D] (Tk >= Tq, Hq % Hkv == 0: query head h reads kv head h / (Hq/Hkv)),
// out [Tq, Hq, D]. Query row i sits at absolute position Tk - Tq + i and sees keys 0 .. Tk - Tq + i.
void attention_kv_forward_cpu(s2s_ctx *ctx, float *out, const float *q, const float *k, const float *v, int64_t Tq,
                              int64_t Tk, int64_t Hq, int64_t Hkv, int64_t D, float scale);

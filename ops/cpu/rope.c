// rope.c — rotate-half RoPE as Hugging Face Qwen3 computes it. Pairs (i, i + D/2) rotate by
// angle pos * inv_freq[i]:  y1 = x1 cos - x2 sin,  y2 = x2 cos + x1 sin.  The backward is the
// inverse rotation (the transpose): dx1 = dy1 cos + dy2 sin,  dx2 = dy2 cos - dy1 sin.
//
// The angles must carry HF's float32 roundings bit for bit: at position 8000 one ulp of an angle
// is ~5e-4 rad, far above the 1e-6 we match HF to. So, as HF does in float32:
//   inv_freq[i] = 1 / theta^(float(2i) / D)   (pow correctly rounded to float)
//   angle       = float(pos) * inv_freq[i]    (one rounding, as HF's K=1 matmul)
// and cos/sin of that float angle, here taken in double and rounded (HF: float32 cos, <= 1 ulp).
#include "rope.h"
#include <math.h>
#include "../../autograd/arena.h"

static float rope_inv_freq(int64_t i, int64_t D, float theta) {
    const float e = (float)(2 * i) / (float)D;
    return 1.0f / (float)pow((double)theta, (double)e);
}

// sign = +1: forward rotation into dst; -1: the inverse rotation, accumulated into dst (backward).
static void rope_apply(s2s_ctx *ctx, float *dst, const float *src, const int32_t *pos, int64_t T, int64_t H,
                       int64_t D, float theta, float sign) {
    const int64_t half = D / 2;
    s2s_arena_mark mark = s2s_arena_get_mark(ctx->cur);  // the tables are released on return
    float *inv = s2s_scratch_alloc(ctx, (size_t)half * sizeof(float));         // [D/2]
    float *cs = s2s_scratch_alloc(ctx, (size_t)(2 * T * half) * sizeof(float));  // [T, 2, D/2]: cos, sign*sin
    for (int64_t i = 0; i < half; i++) inv[i] = rope_inv_freq(i, D, theta);
    // One table row per token, shared by its H heads (sincos costs more than the rotation).
    #pragma omp parallel for schedule(static) if (T * half > 4096)
    for (int64_t t = 0; t < T; t++)
        for (int64_t i = 0; i < half; i++) {
            const float ang = (float)pos[t] * inv[i];
            double sd, cd;
            sincos((double)ang, &sd, &cd);
            cs[(2 * t) * half + i] = (float)cd;
            cs[(2 * t + 1) * half + i] = sign * (float)sd;
        }
    #pragma omp parallel for schedule(static) if (T * H * D > 32768)
    for (int64_t t = 0; t < T; t++) {
        const float *c = cs + (2 * t) * half, *s = cs + (2 * t + 1) * half;  // [D/2] each
        for (int64_t h = 0; h < H; h++) {
            const float *x = src + (t * H + h) * D;  // [D]
            float *y = dst + (t * H + h) * D;        // [D]
            if (sign > 0)
                for (int64_t i = 0; i < half; i++) {
                    const float x1 = x[i], x2 = x[i + half];
                    y[i] = x1 * c[i] - x2 * s[i];
                    y[i + half] = x2 * c[i] + x1 * s[i];
                }
            else
                for (int64_t i = 0; i < half; i++) {
                    const float x1 = x[i], x2 = x[i + half];
                    y[i] += x1 * c[i] - x2 * s[i];
                    y[i + half] += x2 * c[i] + x1 * s[i];
                }
        }
    }
    s2s_arena_rewind(ctx->cur, mark);
}

void rope_forward_cpu(s2s_ctx *ctx, float *y, const float *x, const int32_t *pos, int64_t T, int64_t H, int64_t D,
                      float theta) {
    rope_apply(ctx, y, x, pos, T, H, D, theta, 1.0f);
}

void rope_backward_cpu(s2s_ctx *ctx, float *dx, const float *dy, const int32_t *pos, int64_t T, int64_t H, int64_t D,
                       float theta) {
    rope_apply(ctx, dx, dy, pos, T, H, D, theta, -1.0f);
}

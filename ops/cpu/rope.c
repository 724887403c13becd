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

// One token's half-dimension cos/sin table is recomputed per (t, i) rather than stored: no
// workspace, and sincos is cheap next to the H rows it serves.
static inline void rope_angle(float inv, int32_t p, float *c, float *s) {
    const float ang = (float)p * inv;
    double sd, cd;
    sincos((double)ang, &sd, &cd);
    *c = (float)cd;
    *s = (float)sd;
}

static inline float rope_inv_freq(int64_t i, int64_t D, float theta) {
    const float e = (float)(2 * i) / (float)D;
    return 1.0f / (float)pow((double)theta, (double)e);
}

// sign = +1: forward rotation; -1: the inverse (backward), accumulated into dst.
static void rope_apply(float *dst, const float *src, const int32_t *pos, int64_t T, int64_t H, int64_t D,
                       float theta, int sign, int accumulate) {
    const int64_t half = D / 2;
    #pragma omp parallel for schedule(static) if (T * H * D > 32768)
    for (int64_t t = 0; t < T; t++) {
        for (int64_t i = 0; i < half; i++) {
            float c, s;
            rope_angle(rope_inv_freq(i, D, theta), pos[t], &c, &s);
            s *= (float)sign;
            for (int64_t h = 0; h < H; h++) {
                const float *x = src + (t * H + h) * D;
                float *y = dst + (t * H + h) * D;
                const float x1 = x[i], x2 = x[i + half];
                const float y1 = x1 * c - x2 * s, y2 = x2 * c + x1 * s;
                if (accumulate) {
                    y[i] += y1;
                    y[i + half] += y2;
                } else {
                    y[i] = y1;
                    y[i + half] = y2;
                }
            }
        }
    }
}

void rope_forward_cpu(s2s_ctx *ctx, float *y, const float *x, const int32_t *pos, int64_t T, int64_t H, int64_t D,
                      float theta) {
    rope_apply(y, x, pos, T, H, D, theta, +1, 0);
}

void rope_backward_cpu(s2s_ctx *ctx, float *dx, const float *dy, const int32_t *pos, int64_t T, int64_t H, int64_t D,
                       float theta) {
    rope_apply(dx, dy, pos, T, H, D, theta, -1, 1);
}

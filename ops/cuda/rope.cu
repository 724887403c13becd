// rope.cu — Hugging Face rotate-half RoPE on the GPU (mirrors ops/cpu/rope.c). The angles carry HF's
// float32 roundings: inv_freq[i] = 1 / float(theta^(float(2i)/D)), angle = float(pos) * inv_freq[i]
// (one f32 rounding), cos / sin of that f32 angle taken in f64 and rounded, as the CPU does. A table
// [T, 2, D/2] is built once per call and shared by the H heads of a token.
#include "common.cuh"

// cs [T, 2, half]: cos, sign * sin.
static __global__ void rope_table_kernel(float *cs, const int32_t *pos, int64_t T, int64_t half, int64_t D,
                                         float theta, float sign) {
    GRID_STRIDE(j, T * half) {
        int64_t t = j / half, i = j % half;
        const float e = (float)(2 * i) / (float)D;
        const float inv = 1.0f / (float)pow((double)theta, (double)e);
        const float ang = (float)pos[t] * inv;
        double sd, cd;
        sincos((double)ang, &sd, &cd);
        cs[(2 * t) * half + i] = (float)cd;
        cs[(2 * t + 1) * half + i] = sign * (float)sd;
    }
}

// sign > 0: y = rotation of x; sign < 0: y += inverse rotation of x (the backward).
static __global__ void rope_apply_kernel(float *dst, const float *src, const float *cs, int64_t T, int64_t H,
                                         int64_t half, bool accumulate) {
    GRID_STRIDE(j, T * H * half) {
        int64_t i = j % half, th = j / half, t = th / H;
        const float c = cs[(2 * t) * half + i], s = cs[(2 * t + 1) * half + i];
        const float *x = src + th * 2 * half;  // [D]
        float *y = dst + th * 2 * half;        // [D]
        const float x1 = x[i], x2 = x[i + half];
        if (accumulate) {
            y[i] += x1 * c - x2 * s;
            y[i + half] += x2 * c + x1 * s;
        } else {
            y[i] = x1 * c - x2 * s;
            y[i + half] = x2 * c + x1 * s;
        }
    }
}

static void rope_apply_cuda(s2s_ctx *ctx, float *dst, const float *src, const int32_t *pos, int64_t T, int64_t H,
                            int64_t D, float theta, float sign) {
    const int64_t half = D / 2;
    if (T * H * half == 0) return;
    s2s_arena_mark mark = s2s_arena_get_mark(ctx->cur);  // the table is released on return
    float *cs = (float *)s2s_scratch_alloc(ctx, (size_t)(2 * T * half) * sizeof(float));  // [T, 2, D/2]
    rope_table_kernel<<<cuda_blocks(T * half), CUDA_THREADS>>>(cs, pos, T, half, D, theta, sign);
    CUDA_LAUNCHED();
    rope_apply_kernel<<<cuda_blocks(T * H * half), CUDA_THREADS>>>(dst, src, cs, T, H, half, sign < 0);
    CUDA_LAUNCHED();
    s2s_arena_rewind(ctx->cur, mark);
}

extern "C" void rope_forward_cuda(s2s_ctx *ctx, float *y, const float *x, const int32_t *pos, int64_t T, int64_t H,
                                  int64_t D, float theta) {
    rope_apply_cuda(ctx, y, x, pos, T, H, D, theta, 1.0f);
}

extern "C" void rope_backward_cuda(s2s_ctx *ctx, float *dx, const float *dy, const int32_t *pos, int64_t T,
                                   int64_t H, int64_t D, float theta) {
    rope_apply_cuda(ctx, dx, dy, pos, T, H, D, theta, -1.0f);
}

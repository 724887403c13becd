// adamw.c — one fused AdamW step (PyTorch torch.optim.AdamW semantics: decoupled weight decay,
// bias-corrected moments). Not taped: it runs after backward on raw parameter / state buffers, so a
// ZeRO shard can pass its slice.
#include <math.h>
#include "cpu/adamw.h"
#include "dispatch.h"
#ifdef S2S_HAVE_CUDA
#include "cuda/kernels.h"
#endif

void s2s_adamw_update(s2s_ctx *ctx, float *p, const float *g, float *m, float *v, int64_t n, s2s_adamw_cfg cfg,
                      bool decay, int64_t step) {
    S2S_CHECK(step >= 1, "adamw: step counts from 1 (got %lld); a resumed run passes the checkpoint's step + 1",
              (long long)step);
    S2S_CHECK(cfg.beta1 >= 0.0 && cfg.beta1 < 1.0 && cfg.beta2 >= 0.0 && cfg.beta2 < 1.0,
              "adamw: betas must lie in [0, 1) (got %g, %g)", cfg.beta1, cfg.beta2);
    S2S_CHECK(cfg.eps > 0.0, "adamw: eps must be > 0 (got %g)", cfg.eps);
    if (n == 0) return;
    adamw_scalars s = {
        .beta1 = (float)cfg.beta1,
        .one_minus_beta1 = (float)(1.0 - cfg.beta1),
        .beta2 = (float)cfg.beta2,
        .one_minus_beta2 = (float)(1.0 - cfg.beta2),
        .decay_factor = decay ? (float)(1.0 - cfg.lr * cfg.weight_decay) : 1.0f,
        .step_size = (float)(cfg.lr / (1.0 - pow(cfg.beta1, (double)step))),
        .bc2_sqrt = (float)sqrt(1.0 - pow(cfg.beta2, (double)step)),
        .eps = (float)cfg.eps,
    };
    if (ctx->device == S2S_CPU) adamw_update_cpu(p, g, m, v, n, s);
#ifdef S2S_HAVE_CUDA
    else adamw_update_cuda(ctx, p, g, m, v, n, s);
#else
    else S2S_NO_CUDA("adamw_update");
#endif
}

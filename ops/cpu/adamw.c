#include "adamw.h"
#include <math.h>

// Same operation order as torch.optim.AdamW (single-tensor path): decay the weight first, then
// m = lerp(m, g, 1 - beta1), v = beta2 v + (1 - beta2) g^2, p -= step_size m / (sqrt(v) / bc2_sqrt + eps).
// Elementwise: every element is owned by one thread, so the result does not depend on the thread count.
void adamw_update_cpu(float *p, const float *g, float *m, float *v, int64_t n, adamw_scalars s) {
    #pragma omp parallel for simd schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i];
        float mi = m[i] + s.one_minus_beta1 * (gi - m[i]);
        float vi = v[i] * s.beta2 + s.one_minus_beta2 * (gi * gi);
        m[i] = mi;
        v[i] = vi;
        p[i] = p[i] * s.decay_factor - s.step_size * (mi / (sqrtf(vi) / s.bc2_sqrt + s.eps));
    }
}

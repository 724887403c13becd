#include "cross_entropy.h"
#include "softmax.h"

void cross_entropy_forward_cpu(float *loss, float *lse, const float *logits, const int32_t *labels,
                               int32_t ignore, int64_t N, int64_t V) {
    #pragma omp parallel for schedule(static) if (N * V > 32768)
    for (int64_t i = 0; i < N; i++) {
        if (labels[i] == ignore) { loss[i] = 0.0f; lse[i] = 0.0f; continue; }
        const float *z = logits + i * V;  // [V]
        float m = s2s_row_max(z, V);
        // f64 for lse - z_y: both are O(max logit) and the loss is their small difference.
        double l = (double)m + log(s2s_row_sumexp(z, V, m));
        lse[i] = (float)l;
        loss[i] = (float)(l - (double)z[labels[i]]);
    }
}

void cross_entropy_backward_cpu(float *dlogits, const float *logits, const float *lse, const int32_t *labels,
                                int32_t ignore, float scale, int64_t N, int64_t V) {
    #pragma omp parallel for schedule(static) if (N * V > 32768)
    for (int64_t i = 0; i < N; i++) {
        if (labels[i] == ignore) continue;
        const float *z = logits + i * V;  // [V]
        float *dz = dlogits + i * V;      // [V]
        float l = lse[i];
        #pragma omp simd
        for (int64_t j = 0; j < V; j++) dz[j] += scale * s2s_expf(z[j] - l);
        dz[labels[i]] -= scale;
    }
}

#include "embedding.h"
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

void embedding_forward_cpu(float *y, const int32_t *ids, const float *w, int64_t N, int64_t C) {
    #pragma omp parallel for schedule(static) if (N * C > 65536)
    for (int64_t n = 0; n < N; n++) memcpy(y + n * C, w + (int64_t)ids[n] * C, (size_t)C * sizeof(float));
}

void embedding_backward_cpu(float *dw, const float *dy, const int32_t *ids, int64_t N, int64_t C) {
    #pragma omp parallel
    {
#ifdef _OPENMP
        int nt = omp_get_num_threads(), t = omp_get_thread_num();
#else
        int nt = 1, t = 0;
#endif
        int64_t c0 = C * t / nt, c1 = C * (t + 1) / nt;
        for (int64_t n = 0; n < N; n++) {
            float *d = dw + (int64_t)ids[n] * C;
            const float *g = dy + n * C;
            for (int64_t c = c0; c < c1; c++) d[c] += g[c];
        }
    }
}

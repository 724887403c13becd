// grad_sync.c — bucketed gradient all-reduce (grad_sync.h).
#include "grad_sync.h"
#include <stdlib.h>
#include "autograd/check.h"

void s2s_grad_allreduce(s2s_comm *c, s2s_params *P, double bucket_mb) {
    if (s2s_comm_world(c) == 1 || P->flat_grad_n == 0) return;
    S2S_CHECK(P->flat_grad, "grad_sync: the registry's gradients are not flattened (s2s_params_flatten first)");
    int64_t per = (int64_t)(bucket_mb * (1 << 20) / sizeof(float));
    if (per < 1024) per = 1024;
    const int64_t nb = (P->flat_grad_n + per - 1) / per;
    s2s_comm_handle last = 0;
    for (int64_t b = 0; b < nb; b++) {
        const int64_t off = b * per, n = off + per <= P->flat_grad_n ? per : P->flat_grad_n - off;
        last = s2s_comm_allreduce_async(c, P->flat_grad + off, n, S2S_COMM_F32, S2S_COMM_SUM);
    }
    s2s_comm_wait(c, last);  // in order: the last done means all done
}

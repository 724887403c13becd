// gemm.cu — the one place CUDA GEMMs go through (cuBLASLt), so every call is counted like gemm_cpu.
//
// Precision (DESIGN: "cuBLASLt bf16 GEMMs with fp32 accumulation, fp32 master weights"): tensors are
// f32; in the default BF16 mode each f32 operand is rounded to bf16 (nearest-even) into an arena
// workspace right before the product, cuBLASLt multiplies bf16 x bf16 with CUBLAS_COMPUTE_32F
// (f32 accumulation) and writes / accumulates the f32 output, so gradients still add up in f32.
// Relative error per output is ~2^-8 * sqrt(K)-ish of the operands' scale, not f32's 2^-24: tests
// compare with a looser tolerance in this mode. S2S_GEMM_F32 keeps the operands f32 and computes
// in plain f32 (CUBLAS_COMPUTE_32F, never TF32) for tight CPU-vs-GPU checks.
//
// Layout: s2s is row-major, cuBLAS column-major. A row-major X [r, c] is the column-major X^T, so
// C = op(A) op(B) is computed as C^T = op(B)^T op(A)^T: B goes in cuBLASLt's A slot and A in its B
// slot, with m = N, n = M.
//
// Determinism: cuBLASLt returns the same bits run to run for the same problem, algorithm and
// workspace on the same GPU model with one stream (cuBLAS "results reproducibility"); the heuristic's
// choice is itself a function of the problem, and everything here runs on the default stream.
#include "common.cuh"

static __global__ void f32_to_bf16_kernel(__nv_bfloat16 *dst, const float *src, int64_t n) {
    GRID_STRIDE(i, n) dst[i] = __float2bfloat16_rn(src[i]);
}

extern "C" void f32_to_bf16_cuda(s2s_ctx *ctx, void *dst, const float *src, int64_t n) {
    if (n <= 0) return;
    f32_to_bf16_kernel<<<cuda_blocks(n), CUDA_THREADS>>>((__nv_bfloat16 *)dst, src, n);
    CUDA_LAUNCHED();
}

// C [batch][M, N] (ld ldc, stride sC) *= beta (beta 0 writes zeros: C may hold garbage): the whole
// GEMM when K == 0, which cuBLASLt does not take.
static __global__ void scale_matrix_kernel(float *C, int64_t M, int64_t N, int64_t ldc, int64_t sC, int64_t batch,
                                           float beta) {
    GRID_STRIDE(i, batch * M * N) {
        int64_t b = i / (M * N), r = (i / N) % M, c = i % N;
        float *p = C + b * sC + r * ldc + c;
        *p = beta == 0.0f ? 0.0f : beta * *p;
    }
}

// Largest power of two (<= 256 bytes) dividing the address, the row pitch and the batch stride: what
// the heuristic may assume about this operand (its default of 256 would rule out most layouts here).
static uint32_t operand_align(const void *p, int64_t ld, int64_t stride, size_t es) {
    uintptr_t bits = (uintptr_t)p | (uintptr_t)(ld * (int64_t)es) | (uintptr_t)(stride * (int64_t)es);
    uint32_t a = 256;
    while (a > 1 && (bits & (a - 1))) a >>= 1;
    return a;
}

// Elements an operand spans: the last batch's last row ends there (stride 0: one shared matrix).
static int64_t operand_extent(int64_t rows, int64_t cols, int64_t ld, int64_t stride, int64_t batch) {
    return (batch > 1 ? (batch - 1) * stride : 0) + (rows - 1) * ld + cols;
}

static void lt_layout(cublasLtMatrixLayout_t *l, cudaDataType t, int64_t rows, int64_t cols, int64_t ld,
                      int64_t stride, int64_t batch) {
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(l, t, (uint64_t)rows, (uint64_t)cols, ld));
    if (batch > 1) {
        int32_t bc = (int32_t)batch;
        CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(*l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &bc, sizeof bc));
        CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(*l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride,
                                                      sizeof stride));
    }
}

extern "C" void gemm_ex_cuda(s2s_ctx *ctx, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
                             const void *A, bool a_bf16, int64_t lda, int64_t sA, const void *B, bool b_bf16,
                             int64_t ldb, int64_t sB, float beta, float *C, int64_t ldc, int64_t sC, int64_t batch) {
    if (M == 0 || N == 0 || batch == 0) return;
    S2S_CHECK(batch < INT32_MAX, "gemm: batch %lld is too large for cuBLASLt", (long long)batch);
    ctx->stats.gemm_calls += batch;
    ctx->stats.gemm_flops += 2.0 * (double)M * (double)N * (double)K * (double)batch;
    if (K == 0) {  // an empty sum: C = beta * C
        scale_matrix_kernel<<<cuda_blocks(batch * M * N), CUDA_THREADS>>>(C, M, N, ldc, sC, batch, beta);
        CUDA_LAUNCHED();
        return;
    }
    s2s_cuda_state *st = cuda_state(ctx);
    // Stored shapes (row-major) of the operands.
    int64_t a_rows = ta ? K : M, a_cols = ta ? M : K, b_rows = tb ? N : K, b_cols = tb ? K : N;
    bool bf16 = st->gemm_mode == S2S_GEMM_BF16 || a_bf16 || b_bf16;
    s2s_arena_mark mark = s2s_arena_get_mark(ctx->cur);  // the bf16 copies live until the GEMM is queued
    if (bf16 && !a_bf16) {
        int64_t n = operand_extent(a_rows, a_cols, lda, sA, batch);
        void *t = s2s_scratch_alloc(ctx, (size_t)n * sizeof(__nv_bfloat16));  // A's span in bf16
        f32_to_bf16_cuda(ctx, t, (const float *)A, n);
        A = t;
    }
    if (bf16 && !b_bf16) {
        int64_t n = operand_extent(b_rows, b_cols, ldb, sB, batch);
        void *t = s2s_scratch_alloc(ctx, (size_t)n * sizeof(__nv_bfloat16));  // B's span in bf16
        f32_to_bf16_cuda(ctx, t, (const float *)B, n);
        B = t;
    }
    cudaDataType in_t = bf16 ? CUDA_R_16BF : CUDA_R_32F;
    size_t es = bf16 ? 2 : 4;

    // cuBLASLt's A = our B, its B = our A (see the top of the file).
    cublasOperation_t op_a = tb ? CUBLAS_OP_T : CUBLAS_OP_N, op_b = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasLtMatmulDesc_t desc;
    CUBLAS_CHECK(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof op_a));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof op_b));
    cublasLtMatrixLayout_t la, lb, lc;
    // Column-major views: our B [b_rows, b_cols] ld ldb is [b_cols, b_rows]; likewise A; C is [N, M].
    lt_layout(&la, in_t, b_cols, b_rows, ldb, sB, batch);
    lt_layout(&lb, in_t, a_cols, a_rows, lda, sA, batch);
    lt_layout(&lc, CUDA_R_32F, N, M, ldc, sC, batch);

    cublasLtMatmulPreference_t pref;
    CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &st->ws_bytes,
                                                      sizeof st->ws_bytes));
    uint32_t al_a = operand_align(B, ldb, sB, es), al_b = operand_align(A, lda, sA, es);
    uint32_t al_c = operand_align(C, ldc, sC, 4);
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a, sizeof al_a));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b, sizeof al_b));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_c, sizeof al_c));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_c, sizeof al_c));
    cublasLtMatmulHeuristicResult_t res;
    int nres = 0;
    cublasStatus_t hs = cublasLtMatmulAlgoGetHeuristic(st->lt, desc, la, lb, lc, lc, pref, 1, &res, &nres);
    if (hs == CUBLAS_STATUS_SUCCESS && nres > 0) {
        CUBLAS_CHECK(cublasLtMatmul(st->lt, desc, &alpha, B, la, A, lb, &beta, C, lc, C, lc, &res.algo, st->ws,
                                    st->ws_bytes, 0));
    } else {
        // No Lt kernel for this layout (odd leading dimensions, unaligned sub-matrices): cuBLAS's
        // general path takes any layout, with the same types and accumulation.
        CUBLAS_CHECK(cublasGemmStridedBatchedEx_64(st->blas, op_a, op_b, N, M, K, &alpha, B, in_t, ldb, sB, A, in_t,
                                                   lda, sA, &beta, C, CUDA_R_32F, ldc, sC, batch,
                                                   bf16 ? CUBLAS_COMPUTE_32F : CUBLAS_COMPUTE_32F_PEDANTIC,
                                                   CUBLAS_GEMM_DEFAULT));
    }
    cublasLtMatmulPreferenceDestroy(pref);
    cublasLtMatrixLayoutDestroy(la);
    cublasLtMatrixLayoutDestroy(lb);
    cublasLtMatrixLayoutDestroy(lc);
    cublasLtMatmulDescDestroy(desc);
    // Released for reuse by later launches; those queue behind this GEMM on the same stream.
    s2s_arena_rewind(ctx->cur, mark);
}

extern "C" void gemm_batched_cuda(s2s_ctx *ctx, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
                                  const float *A, int64_t lda, int64_t sA, const float *B, int64_t ldb, int64_t sB,
                                  float beta, float *C, int64_t ldc, int64_t sC, int64_t batch) {
    gemm_ex_cuda(ctx, ta, tb, M, N, K, alpha, A, false, lda, sA, B, false, ldb, sB, beta, C, ldc, sC, batch);
}

extern "C" void gemm_cuda(s2s_ctx *ctx, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                          int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    gemm_ex_cuda(ctx, ta, tb, M, N, K, alpha, A, false, lda, 0, B, false, ldb, 0, beta, C, ldc, 0, 1);
}

// tensor.h — the s2s tensor: dtype, device, up to 4 dims, contiguous row-major (shape[0] outermost,
// as in PyTorch), plus the autograd fields. Tensors are created through a context (ctx.h) so their
// memory comes from the step arena; parameters are created by the registry (params.h).
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define S2S_MAX_DIMS 4

typedef enum { S2S_F32 = 0, S2S_BF16, S2S_F16, S2S_I32 } s2s_dtype;
typedef enum { S2S_CPU = 0, S2S_CUDA } s2s_device;

struct s2s_node;

typedef struct s2s_tensor {
    s2s_dtype dtype;
    s2s_device device;
    int ndim;
    int64_t shape[S2S_MAX_DIMS];
    void *data;
    struct s2s_tensor *grad;  // f32, same shape; NULL until a gradient flows into it
    bool requires_grad;       // a gradient w.r.t. this tensor is wanted (trainable param, or depends on one)
    bool is_param;            // owned by a parameter registry: grad is persistent and accumulates
    bool flat_view;           // data lives in a registry's flat buffer (params.h): never freed on its own
    const char *name;         // optional, for error messages and the registry
    int32_t track;            // > 0: slot track - 1 of the context's backward-progress tracking (ctx.h)
} s2s_tensor;

size_t s2s_dtype_size(s2s_dtype t);
const char *s2s_dtype_name(s2s_dtype t);
int s2s_dtype_from_name(const char *name);  // "F32"/"BF16"/"F16"/"I32" (safetensors spelling), -1 if unknown
int64_t s2s_numel(const s2s_tensor *t);
size_t s2s_nbytes(const s2s_tensor *t);
int64_t s2s_rows(const s2s_tensor *t);      // product of all dims but the last
int64_t s2s_cols(const s2s_tensor *t);      // last dim
bool s2s_same_shape(const s2s_tensor *a, const s2s_tensor *b);
// "[2, 3, 5]" into buf; returns buf.
const char *s2s_shape_str(const s2s_tensor *t, char *buf, size_t n);

// Element conversion (round-to-nearest-even for bf16, IEEE half for f16).
uint16_t s2s_f32_to_bf16(float x);
float s2s_bf16_to_f32(uint16_t x);
uint16_t s2s_f32_to_f16(float x);
float s2s_f16_to_f32(uint16_t x);
// Convert n elements between host buffers of any float dtype (f32/bf16/f16).
void s2s_convert_host(void *dst, s2s_dtype dt, const void *src, s2s_dtype st, int64_t n);

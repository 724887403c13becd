#include "tensor.h"
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "check.h"

size_t s2s_dtype_size(s2s_dtype t) {
    switch (t) {
        case S2S_F32: return 4;
        case S2S_BF16: return 2;
        case S2S_F16: return 2;
        case S2S_I32: return 4;
    }
    return 0;
}

const char *s2s_dtype_name(s2s_dtype t) {
    static const char *names[] = {"F32", "BF16", "F16", "I32"};
    return (unsigned)t < 4 ? names[t] : "?";
}

int s2s_dtype_from_name(const char *name) {
    for (int i = 0; i < 4; i++)
        if (strcmp(name, s2s_dtype_name((s2s_dtype)i)) == 0) return i;
    return -1;
}

int64_t s2s_numel(const s2s_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

size_t s2s_nbytes(const s2s_tensor *t) { return (size_t)s2s_numel(t) * s2s_dtype_size(t->dtype); }

int64_t s2s_cols(const s2s_tensor *t) { return t->ndim ? t->shape[t->ndim - 1] : 1; }
int64_t s2s_rows(const s2s_tensor *t) { return s2s_numel(t) / (s2s_cols(t) ? s2s_cols(t) : 1); }

bool s2s_same_shape(const s2s_tensor *a, const s2s_tensor *b) {
    if (a->ndim != b->ndim) return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return false;
    return true;
}

const char *s2s_shape_str(const s2s_tensor *t, char *buf, size_t n) {
    size_t off = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < t->ndim && off < n; i++)
        off += (size_t)snprintf(buf + off, n - off, i ? ", %lld" : "%lld", (long long)t->shape[i]);
    if (off < n) snprintf(buf + off, n - off, "]");
    return buf;
}

uint16_t s2s_f32_to_bf16(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);  // quiet NaN
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float s2s_bf16_to_f32(uint16_t x) {
    uint32_t u = (uint32_t)x << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t s2s_f32_to_f16(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t e = (u >> 23) & 0xffu;
    uint32_t m = u & 0x7fffffu;
    if (e == 0xff) return (uint16_t)(sign | 0x7c00u | (m ? 0x200u : 0));  // inf / nan
    int32_t ne = (int32_t)e - 127 + 15;
    if (ne >= 0x1f) return (uint16_t)(sign | 0x7c00u);                  // overflow -> inf
    if (ne <= 0) {                                                        // subnormal or zero
        if (ne < -10) return (uint16_t)sign;
        m |= 0x800000u;
        uint32_t shift = (uint32_t)(14 - ne);
        uint32_t h = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1u))) h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = sign | ((uint32_t)ne << 10) | (m >> 13);
    uint32_t rem = m & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++;  // may carry into the exponent: correct
    return (uint16_t)h;
}

float s2s_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu, u;
    if (e == 0) {
        if (m == 0) u = sign;
        else {  // subnormal: normalise
            int s = -1;
            do { s++; m <<= 1; } while (!(m & 0x400u));
            u = sign | ((uint32_t)(127 - 15 - s) << 23) | ((m & 0x3ffu) << 13);
        }
    } else if (e == 0x1f) u = sign | 0x7f800000u | (m << 13);
    else u = sign | ((e - 15 + 127) << 23) | (m << 13);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

void s2s_convert_host(void *dst, s2s_dtype dt, const void *src, s2s_dtype st, int64_t n) {
    S2S_CHECK(dt != S2S_I32 && st != S2S_I32, "convert_host handles float dtypes only (got %s -> %s)",
              s2s_dtype_name(st), s2s_dtype_name(dt));
    if (dt == st) { memcpy(dst, src, (size_t)n * s2s_dtype_size(dt)); return; }
    #pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) {
        float v = st == S2S_F32 ? ((const float *)src)[i]
                : st == S2S_BF16 ? s2s_bf16_to_f32(((const uint16_t *)src)[i])
                : s2s_f16_to_f32(((const uint16_t *)src)[i]);
        if (dt == S2S_F32) ((float *)dst)[i] = v;
        else if (dt == S2S_BF16) ((uint16_t *)dst)[i] = s2s_f32_to_bf16(v);
        else ((uint16_t *)dst)[i] = s2s_f32_to_f16(v);
    }
}

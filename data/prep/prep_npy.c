// prep_npy.c — speaker embeddings as OpenS2S stores them: one NumPy .npy per item (np.load in its collator),
// float32 [1, 1, 512]. Only what such a file can hold is read: format 1.x-3.x, little-endian f4 or f8, C order.
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "prep_internal.h"

// Finds `'key':` in the header dict and returns the text after the colon, spaces skipped.
static const char *dict_value(const char *hdr, const char *key) {
    char pat[32];
    snprintf(pat, sizeof pat, "'%s'", key);
    const char *p = strstr(hdr, pat);
    if (!p) return NULL;
    p = strchr(p + strlen(pat), ':');
    if (!p) return NULL;
    for (p++; *p == ' '; p++) {}
    return p;
}

int s2s_npy_spk(const char *path, float *out, int dim, s2s_derr *e) {
    FILE *f = fopen(path, "rb");
    if (!f) return s2s_derr_set(e, "cannot open '%s': %s", path, strerror(errno));
    unsigned char pre[12];
    char *hdr = NULL;
    int rc = -1;
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6)) {
        s2s_derr_set(e, "'%s' is not a .npy file", path);
        goto done;
    }
    size_t hlen;
    if (pre[6] == 1) hlen = pre[8] | (size_t)pre[9] << 8;
    else if (pre[6] == 2 || pre[6] == 3) {
        if (fread(pre + 10, 1, 2, f) != 2) {
            s2s_derr_set(e, "'%s': truncated .npy header", path);
            goto done;
        }
        hlen = pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
    } else {
        s2s_derr_set(e, "'%s': .npy format version %d is not supported", path, pre[6]);
        goto done;
    }
    if (hlen > 1 << 20 || !(hdr = malloc(hlen + 1)) || fread(hdr, 1, hlen, f) != hlen) {
        s2s_derr_set(e, "'%s': truncated .npy header", path);
        goto done;
    }
    hdr[hlen] = 0;
    const char *descr = dict_value(hdr, "descr"), *order = dict_value(hdr, "fortran_order"),
               *shape = dict_value(hdr, "shape");
    int f8;
    if (descr && !strncmp(descr, "'<f4'", 5)) f8 = 0;
    else if (descr && !strncmp(descr, "'<f8'", 5)) f8 = 1;
    else {
        s2s_derr_set(e, "'%s': dtype must be little-endian float32 or float64 ('<f4' / '<f8')", path);
        goto done;
    }
    if (!order || strncmp(order, "False", 5)) {
        s2s_derr_set(e, "'%s': Fortran-ordered arrays are not supported", path);
        goto done;
    }
    long long count = 1;
    if (!shape || *shape != '(') {
        s2s_derr_set(e, "'%s': no shape in the .npy header", path);
        goto done;
    }
    for (const char *p = shape + 1; *p && *p != ')';) {
        char *end;
        long long d = strtoll(p, &end, 10);
        if (end == p) {
            p++;
            continue;
        }
        count *= d;
        p = end;
    }
    if (count != dim) {
        s2s_derr_set(e, "'%s' holds %lld values, a speaker embedding has %d", path, count, dim);
        goto done;
    }
    for (int i = 0; i < dim; i++) {
        if (f8) {
            double v;
            if (fread(&v, 8, 1, f) != 1) break;
            out[i] = (float)v;
        } else if (fread(&out[i], 4, 1, f) != 1) break;
        if (!isfinite(out[i])) {
            s2s_derr_set(e, "'%s': value %d is not finite", path, i);
            goto done;
        }
        if (i == dim - 1) rc = 0;
    }
    if (rc) s2s_derr_set(e, "'%s': truncated data", path);
done:
    free(hdr);
    fclose(f);
    return rc;
}

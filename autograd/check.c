#include "check.h"
#include <stdarg.h>

void s2s_fail(const char *file, int line, const char *what, const char *fmt, ...) {
    fprintf(stderr, "s2s: error at %s:%d: check `%s` failed\n  hint: ", file, line, what);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

void *s2s_xmalloc(size_t n, const char *file, int line) {
    void *p = malloc(n ? n : 1);
    if (!p) s2s_fail(file, line, "malloc", "out of host memory allocating %zu bytes", n);
    return p;
}
void *s2s_xcalloc(size_t n, size_t sz, const char *file, int line) {
    void *p = calloc(n ? n : 1, sz ? sz : 1);
    if (!p) s2s_fail(file, line, "calloc", "out of host memory allocating %zu x %zu bytes", n, sz);
    return p;
}
void *s2s_xrealloc(void *p, size_t n, const char *file, int line) {
    void *q = realloc(p, n ? n : 1);
    if (!q) s2s_fail(file, line, "realloc", "out of host memory growing to %zu bytes", n);
    return q;
}

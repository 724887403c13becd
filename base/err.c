#include "err.h"
#include <stdio.h>

int s2s_verrf(char *err, size_t n, const char *fmt, va_list ap) {
    if (err && n) vsnprintf(err, n, fmt, ap);
    return -1;
}

int s2s_errf(char *err, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    s2s_verrf(err, n, fmt, ap);
    va_end(ap);
    return -1;
}

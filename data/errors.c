#include "errors.h"
#include <stdarg.h>
#include <stdio.h>

int s2s_derr_set(s2s_derr *e, const char *fmt, ...) {
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

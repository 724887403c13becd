#include "errors.h"
#include <stdarg.h>
#include "base/err.h"

int s2s_derr_set(s2s_derr *e, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    s2s_verrf(e ? e->msg : NULL, e ? sizeof e->msg : 0, fmt, ap);
    va_end(ap);
    return -1;
}

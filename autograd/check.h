// check.h — failure reporting shared by every s2s library. A failed check names file:line, what was
// expected, and a hint for the user; it never returns.
#pragma once
#include <stdio.h>
#include <stdlib.h>
#include "../base/err.h"  // s2s_errf: format a message into err[n] for the caller; returns -1

_Noreturn void s2s_fail(const char *file, int line, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

// S2S_CHECK(cond, "hint with %d args", x): abort with file:line, the failed condition and the hint.
#define S2S_CHECK(cond, ...) \
    do { if (!(cond)) s2s_fail(__FILE__, __LINE__, #cond, __VA_ARGS__); } while (0)

// Allocation that never returns NULL.
void *s2s_xmalloc(size_t n, const char *file, int line);
void *s2s_xcalloc(size_t n, size_t sz, const char *file, int line);
void *s2s_xrealloc(void *p, size_t n, const char *file, int line);
#define s2s_malloc(n) s2s_xmalloc((n), __FILE__, __LINE__)
#define s2s_calloc(n, sz) s2s_xcalloc((n), (sz), __FILE__, __LINE__)
#define s2s_realloc(p, n) s2s_xrealloc((p), (n), __FILE__, __LINE__)

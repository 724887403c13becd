// err.h — the error formatter every s2s library shares (base/ stands below all of them, data/ included):
// functions that report failure to their caller fill a caller-owned buffer and return -1.
#pragma once
#include <stdarg.h>
#include <stddef.h>

// Formats the message into err[n] (nothing when err is NULL or n is 0); returns -1, so callers can
// `return s2s_errf(err, n, "%s: ...", path)`.
int s2s_errf(char *err, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int s2s_verrf(char *err, size_t n, const char *fmt, va_list ap) __attribute__((format(printf, 3, 0)));

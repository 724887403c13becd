// errors.h — error reporting for data/. data/ stands alone (it includes nothing from autograd, ops,
// model or train, only base/), so its functions report into an s2s_derr: they return 0 on success and -1 on
// failure with a message that names the file, the record (line / sample) and the field at fault. The formatting
// is base/err.h's s2s_errf; S2S_DERR_BUF(e) hands an s2s_derr to base/ functions that take (err, errlen).
#pragma once

typedef struct s2s_derr {
    char msg[1024];
} s2s_derr;

// Formats the message into e (if e is non-NULL) and returns -1, so callers can `return s2s_derr_set(...)`.
int s2s_derr_set(s2s_derr *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define S2S_DERR_BUF(e) ((e) ? (e)->msg : (char *)0), ((e) ? sizeof (e)->msg : 0)

// errors.h — error reporting for data/. data/ stands alone (it includes nothing from autograd, ops,
// model or train), so it has its own: functions return 0 on success and -1 on failure with a message
// in an s2s_derr that names the file, the record (line / sample) and the field at fault.
#pragma once

typedef struct s2s_derr {
    char msg[1024];
} s2s_derr;

// Formats the message into e (if e is non-NULL) and returns -1, so callers can `return s2s_derr_set(...)`.
int s2s_derr_set(s2s_derr *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

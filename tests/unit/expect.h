// expect.h — the C unit tests' check: a failed EXPECT prints file:line, the condition and a message,
// counts the failure and carries on, so one run reports every failure; main returns failures != 0.
#pragma once
#include <stdio.h>

static int failures;

#define EXPECT(cond, ...)                                                     \
    do {                                                                      \
        if (!(cond)) {                                                        \
            failures++;                                                       \
            fprintf(stderr, "%s:%d: FAILED %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                     \
            fprintf(stderr, "\n");                                            \
        }                                                                     \
    } while (0)

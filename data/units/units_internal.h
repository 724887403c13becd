// units_internal.h — what units_fit.c and units_encode.c share: JSONL lines and the audio paths of records.
#pragma once
#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdio.h>
#include "units.h"

// "path" relative to root (unless absolute or root is NULL / empty) into buf; -1 when it does not fit.
int units_resolve(const char *root, const char *path, char *buf, size_t cap);

// 1 when name ends with ".jsonl" (an input that is a manifest rather than an audio file).
int units_is_manifest(const char *name);

// Reads one line (without its newline) into *line (grown as needed); returns its length or -1 at the end.
long units_getline(char **line, size_t *cap, FILE *f);

// Calls fn on every audio string a record names: a top-level "audio" and the "audio" of each content item of
// each message. `what` is the field's path ("audio", "messages[1].content[0].audio"). Stops at the first
// non-zero return of fn and returns it.
typedef int (*units_audio_fn)(void *ctx, const char *spec, const char *what);
int units_record_audios(const cJSON *root, units_audio_fn fn, void *ctx);

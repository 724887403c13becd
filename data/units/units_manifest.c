// units_manifest.c — reading JSONL manifests for units: lines, relative paths, the audio fields of a record.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "units_internal.h"

int units_resolve(const char *root, const char *path, char *buf, size_t cap) {
    int n = root && *root && path[0] != '/' ? snprintf(buf, cap, "%s/%s", root, path) : snprintf(buf, cap, "%s", path);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

int units_is_manifest(const char *name) {
    size_t n = strlen(name);
    return n >= 6 && !strcmp(name + n - 6, ".jsonl");
}

long units_getline(char **line, size_t *cap, FILE *f) {
    ssize_t n = getline(line, cap, f);
    if (n < 0) return -1;
    while (n > 0 && ((*line)[n - 1] == '\n' || (*line)[n - 1] == '\r')) (*line)[--n] = 0;
    return (long)n;
}

int units_record_audios(const cJSON *root, units_audio_fn fn, void *ctx) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, "audio");
    int rc;
    if (cJSON_IsString(a) && *a->valuestring && (rc = fn(ctx, a->valuestring, "audio"))) return rc;
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(root, "messages");
    int mi = 0;
    for (const cJSON *m = cJSON_IsArray(msgs) ? msgs->child : NULL; m; m = m->next, mi++) {
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        int ci = 0;
        for (const cJSON *it = cJSON_IsArray(content) ? content->child : NULL; it; it = it->next, ci++) {
            const cJSON *au = cJSON_GetObjectItemCaseSensitive(it, "audio");
            if (!cJSON_IsString(au) || !*au->valuestring) continue;
            char what[64];
            snprintf(what, sizeof what, "messages[%d].content[%d].audio", mi, ci);
            if ((rc = fn(ctx, au->valuestring, what))) return rc;
        }
    }
    return 0;
}

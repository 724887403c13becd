// loader_cursor.c — the loader cursor as JSON for trainer.json. The seed and the plan hash are 64-bit and JSON
// numbers are doubles, so they travel as strings (decimal seed, hex hash) and come back exactly.
#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "data/loader/loader.h"

char *s2s_loader_cursor_json(const s2s_loader_cursor *c) {
    char seed[32], hash[32];
    snprintf(seed, sizeof seed, "%" PRIu64, c->seed);
    snprintf(hash, sizeof hash, "%016" PRIx64, c->plan_hash);
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddNumberToObject(o, "epoch", (double)c->epoch);
    cJSON_AddNumberToObject(o, "step", (double)c->step);
    cJSON_AddNumberToObject(o, "base", (double)c->base);
    cJSON_AddStringToObject(o, "seed", seed);
    cJSON_AddNumberToObject(o, "world", c->world);
    cJSON_AddStringToObject(o, "plan_hash", hash);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

// An integer member that a double holds exactly (|v| < 2^53).
static int get_int(const cJSON *o, const char *name, int64_t *out, s2s_derr *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble <= 9007199254740992.0) ||
        v->valuedouble != (double)(int64_t)v->valuedouble)  // range first: the cast of a huge double is UB
        return s2s_derr_set(e, "loader cursor: '%s' must be a non-negative integer", name);
    *out = (int64_t)v->valuedouble;
    return 0;
}

static int get_u64(const cJSON *o, const char *name, int base, uint64_t *out, s2s_derr *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    char *end = NULL;
    errno = 0;
    if (cJSON_IsString(v) && v->valuestring[0] && v->valuestring[0] != '-')
        *out = strtoull(v->valuestring, &end, base);
    if (!end || *end || errno)
        return s2s_derr_set(e, "loader cursor: '%s' must be a string holding a 64-bit %s number", name,
                            base == 16 ? "hexadecimal" : "decimal");
    return 0;
}

int s2s_loader_cursor_parse(const char *json, s2s_loader_cursor *c, s2s_derr *e) {
    cJSON *o = cJSON_Parse(json);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return s2s_derr_set(e, "loader cursor: not a JSON object");
    }
    int64_t world = 0;
    c->base = 0;  // absent in cursors written before resuming on another world size existed
    const cJSON *base = cJSON_GetObjectItemCaseSensitive(o, "base");
    int rc = get_int(o, "epoch", &c->epoch, e) || get_int(o, "step", &c->step, e) || get_int(o, "world", &world, e) ||
             (base && get_int(o, "base", &c->base, e)) ||
             get_u64(o, "seed", 10, &c->seed, e) || get_u64(o, "plan_hash", 16, &c->plan_hash, e);
    cJSON_Delete(o);
    if (rc) return -1;
    if (world < 1 || world > 1 << 24) return s2s_derr_set(e, "loader cursor: 'world' = %lld is out of range", (long long)world);
    c->world = (int)world;
    return 0;
}

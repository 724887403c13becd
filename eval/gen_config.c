// gen_config.c — generation_config.json reader (see gen_config.h).
#include "gen_config.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "../autograd/check.h"

#define GEN_CONFIG_MAX_BYTES ((long)1 << 20)

static const cJSON *field(const cJSON *j, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    return v && !cJSON_IsNull(v) ? v : NULL;  // transformers treats null as "not set"
}

static bool as_int(const cJSON *v, int64_t *out) {
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble != floor(v->valuedouble) ||
        fabs(v->valuedouble) > 2147483647.0)
        return false;
    *out = (int64_t)v->valuedouble;
    return true;
}

static int parse(s2s_gen_config *c, const cJSON *j, const char *file, char *err, size_t n) {
    const cJSON *v;
    if ((v = field(j, "do_sample"))) {
        if (!cJSON_IsBool(v)) return s2s_errf(err, n, "%s: field 'do_sample' must be true or false", file);
        c->sample.do_sample = cJSON_IsTrue(v);
    }
    if ((v = field(j, "temperature"))) {
        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble <= 0)
            return s2s_errf(err, n, "%s: field 'temperature' must be a positive number", file);
        c->sample.temperature = v->valuedouble;
    }
    if ((v = field(j, "top_k"))) {
        int64_t k;
        if (!as_int(v, &k) || k < 0) return s2s_errf(err, n, "%s: field 'top_k' must be an integer >= 0", file);
        c->sample.top_k = k;
    }
    if ((v = field(j, "top_p"))) {
        if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble <= 1))
            return s2s_errf(err, n, "%s: field 'top_p' must be a number in [0, 1]", file);
        c->sample.top_p = v->valuedouble;
    }
    if ((v = field(j, "max_new_tokens"))) {
        int64_t m;
        if (!as_int(v, &m) || m <= 0) return s2s_errf(err, n, "%s: field 'max_new_tokens' must be positive", file);
        c->max_new_tokens = m;
    }
    if ((v = field(j, "eos_token_id"))) {
        const bool list = cJSON_IsArray(v);
        if (list && cJSON_GetArraySize(v) > S2S_CFG_MAX_EOS)
            return s2s_errf(err, n, "%s: field 'eos_token_id' lists more than %d ids", file, S2S_CFG_MAX_EOS);
        for (const cJSON *one = list ? v->child : v; one; one = list ? one->next : NULL) {
            int64_t id;
            if (!as_int(one, &id) || id < 0)
                return s2s_errf(err, n, "%s: field 'eos_token_id' must be a token id or a list of them", file);
            c->eos[c->n_eos++] = (int32_t)id;
        }
    }
    return 0;
}

int s2s_gen_config_read(s2s_gen_config *c, const char *path, char *err, size_t n) {
    memset(c, 0, sizeof *c);
    c->sample = s2s_sample_defaults();
    struct stat st;
    char file[4096];
    const bool dir = stat(path, &st) == 0 && S_ISDIR(st.st_mode);
    snprintf(file, sizeof file, dir ? "%s/generation_config.json" : "%s", path);
    FILE *fp = fopen(file, "rb");
    if (!fp) return s2s_errf(err, n, "%s: cannot open: %s", file, strerror(errno));
    fseek(fp, 0, SEEK_END);
    const long size = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    if (size < 0 || size > GEN_CONFIG_MAX_BYTES) {
        fclose(fp);
        return s2s_errf(err, n, "%s: %ld bytes is not a plausible generation_config.json", file, size);
    }
    char *text = s2s_malloc((size_t)size + 1);
    const size_t got = fread(text, 1, (size_t)size, fp);
    fclose(fp);
    text[got] = 0;
    cJSON *j = cJSON_Parse(text);
    free(text);
    int rc;
    if (!j || !cJSON_IsObject(j)) rc = s2s_errf(err, n, "%s: not a JSON object", file);
    else rc = parse(c, j, file, err, n);
    cJSON_Delete(j);
    return rc;
}

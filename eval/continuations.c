// continuations.c — text_generation.py's items, prompts and the align records (continuations.h).
#include "continuations.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "autograd/check.h"
#include "base/err.h"
#include "prompt.h"

// text_generation.py's instruction_dict.
#define ASR_GENERATION "Continue the following sentence in a coherent style: "
#define ASR_TRAINING "Continue the following sentence in a coherent style: "
#define SER_GENERATION_A "Continue the following sentence that reflects a '"
#define SER_GENERATION_B "' emotion tone in a coherent style: "
#define SER_TRAINING "Continue the following sentence based on the conveyed emotion tone in a coherent style: "

int s2s_cont_task_parse(const char *name) {
    if (!strcmp(name, "asr")) return S2S_CONT_ASR;
    if (!strcmp(name, "ser")) return S2S_CONT_SER;
    return -1;
}

const char *s2s_cont_training_instruction(s2s_cont_task task) {
    return task == S2S_CONT_SER ? SER_TRAINING : ASR_TRAINING;
}

static char *dup(const char *s) {
    const size_t n = strlen(s) + 1;
    return memcpy(s2s_malloc(n), s, n);
}

// A string field: required (present and a string), and non-empty when nonempty is set.
static int str_field(const cJSON *root, const char *key, bool nonempty, char **out, char *err, size_t errlen) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v)) return s2s_errf(err, errlen, "%s: missing", key);
    if (!cJSON_IsString(v)) return s2s_errf(err, errlen, "%s: must be a string", key);
    if (nonempty && !*v->valuestring) return s2s_errf(err, errlen, "%s: empty", key);
    *out = dup(v->valuestring);
    return 0;
}

int s2s_cont_item_parse(const char *json, size_t len, s2s_cont_task task, int64_t line, s2s_cont_item *it,
                        char *err, size_t errlen) {
    memset(it, 0, sizeof *it);
    it->line = line;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (!root) {
        const size_t at = end && end >= json ? (size_t)(end - json) : 0;
        return s2s_errf(err, errlen, "invalid JSON near byte %zu", at);
    }
    int rc = 0;
    for (; end && end < json + len && !rc; end++)
        if (*end != ' ' && *end != '\t' && *end != '\r' && *end != '\n')
            rc = s2s_errf(err, errlen, "invalid JSON: text after the record at byte %zu", (size_t)(end - json));
    if (!rc && !cJSON_IsObject(root)) rc = s2s_errf(err, errlen, "an item must be a JSON object");
    // text_generation.py indexes line["text"] and line["audio"]; the audio must name something for prep to load.
    if (!rc) rc = str_field(root, "text", false, &it->text, err, errlen);
    if (!rc) rc = str_field(root, "audio", true, &it->audio, err, errlen);
    if (!rc && task == S2S_CONT_SER) {  // assert line["label"]
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "label");
        if (!v || cJSON_IsNull(v) || (cJSON_IsString(v) && !*v->valuestring))
            rc = s2s_errf(err, errlen, "label: required for the ser task");
        else if (!cJSON_IsString(v)) rc = s2s_errf(err, errlen, "label: must be a string");
        else it->label = dup(v->valuestring);
    }
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "id");
    if (!rc && id) it->id = cJSON_PrintUnformatted(id);
    cJSON_Delete(root);
    if (rc) s2s_cont_item_free(it);
    return rc;
}

void s2s_cont_item_free(s2s_cont_item *it) {
    free(it->text), free(it->audio), free(it->label);
    if (it->id) cJSON_free(it->id);
    memset(it, 0, sizeof *it);
}

char *s2s_cont_prompt(const s2s_cont_item *it, s2s_cont_task task) {
    const char *a = task == S2S_CONT_SER ? SER_GENERATION_A : ASR_GENERATION;
    const char *b = task == S2S_CONT_SER ? it->label : "", *c = task == S2S_CONT_SER ? SER_GENERATION_B : "";
    const size_t n = strlen(a) + strlen(b) + strlen(c) + strlen(it->text) + 1;
    char *instr = s2s_malloc(n);
    snprintf(instr, n, "%s%s%s%s", a, b, c, it->text);
    const s2s_chat_msg m[2] = {{"system", S2S_PROMPT_SYSTEM}, {"user", instr}};
    char *p = s2s_prompt_render_qwen3(m, 2, true, false);
    free(instr);
    return p;
}

char *s2s_cont_record(const s2s_cont_item *it, s2s_cont_task task, const char *continuation) {
    cJSON *j = cJSON_CreateObject();
    if (it->id) cJSON_AddItemToObject(j, "id", cJSON_Parse(it->id));
    cJSON_AddStringToObject(j, "audio", it->audio);
    if (*it->text) cJSON_AddStringToObject(j, "transcript", it->text);  // prep refuses an empty transcript
    if (it->label) cJSON_AddStringToObject(j, "emotion", it->label);
    cJSON_AddStringToObject(j, "instruction", s2s_cont_training_instruction(task));
    cJSON_AddStringToObject(j, "continuation", continuation);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    S2S_CHECK(s, "continuations: out of memory printing the record of line %lld", (long long)it->line);
    char *r = dup(s);  // malloc'd like everything else here (cJSON may use its own allocator)
    cJSON_free(s);
    return r;
}

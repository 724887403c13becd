// stage.c — the stage table (stage.h).
#include "stage.h"
#include <string.h>

static const s2s_stage *const STAGES[] = {&s2s_stage1, &s2s_stage2a, &s2s_stage2b, &s2s_stage3};

const s2s_stage *s2s_stage_find(const char *name) {
    for (size_t i = 0; i < sizeof STAGES / sizeof *STAGES; i++)
        if (name && !strcmp(STAGES[i]->name, name)) return STAGES[i];
    return NULL;
}

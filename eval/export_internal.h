// export_internal.h — what export.c (source, weights, the directory swap) and export_files.c (tokenizers,
// generation and feature-extractor configs) share.
#pragma once
#include <stdbool.h>
#include "export.h"
#include "model/hf_config.h"
#include "source.h"


// true when dir/name exists.
bool s2s_export_has(const char *dir, const char *name);
// Everything but the weights and config.json into tmp (see export.h), recorded in rep.
int s2s_export_files(const s2s_export_opts *o, const s2s_model_src *s, const s2s_omnispeech_config *cfg,
                     const char *tmp, s2s_export_report *rep, char *err, size_t errlen);

// tok_hf_files.c — the Hugging Face tokenizer file names (tok_hf_files.h).
#include "tok_hf_files.h"
#include <stddef.h>

const char *const *s2s_tok_hf_files(void) {
    static const char *const files[] = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                                        "added_tokens.json", "vocab.json", "merges.txt", "chat_template.jinja",
                                        "chat_template.json", NULL};
    return files;
}

// tok_hf_files.h — the files of a Hugging Face tokenizer directory that `save_pretrained` writes and
// `AutoTokenizer.from_pretrained` reads, for code that copies a tokenizer along with a model (training
// checkpoints, export). tokenizer.json is the one s2s itself reads.
#pragma once

// NULL-terminated: tokenizer.json, tokenizer_config.json, special_tokens_map.json, added_tokens.json, vocab.json,
// merges.txt, chat_template.jinja, chat_template.json.
const char *const *s2s_tok_hf_files(void);

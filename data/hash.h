// hash.h — SHA-256 of a file (tokenizer hashes in shards, checkpoint checksums), 64 lower-case hex digits.
#pragma once
#include "data/errors.h"

int s2s_sha256_file(const char *path, char hex[65], s2s_derr *e);

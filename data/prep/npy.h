// npy.h — a speaker embedding as OpenS2S stores them: a NumPy .npy (np.load in its collator), float32 [1, 1, 512].
// `s2s prep` reads them into shards and `s2s chat --spk` reads one for its reply.
#pragma once
#include "data/errors.h"

// Reads a .npy (format 1.x-3.x, little-endian float32 or float64, C order, dim elements in any shape) into out;
// the error names the file and what is wrong with it.
int s2s_npy_spk(const char *path, float *out, int dim, s2s_derr *e);

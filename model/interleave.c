// interleave.c — speech-response spans and the M:N TTS input layout (see interleave.h).
#include "interleave.h"
#include <stdlib.h>
#include "../autograd/check.h"

int64_t s2s_interleave_find_spans(const int32_t *token_types, const int32_t *cu_seqlens, int n_seq, int64_t *start,
                                  int64_t *end, int64_t max_spans) {
    int64_t n = 0;
    for (int s = 0; s < n_seq; s++) {
        const int64_t b = cu_seqlens[s], e = cu_seqlens[s + 1];
        S2S_CHECK(b <= e, "interleave: cu_seqlens must not decrease (sample %d)", s);
        int64_t open = -1;  // start row of the run being read, -1 outside a run
        for (int64_t t = b; t < e; t++) {
            const int32_t v = token_types[t];
            S2S_CHECK(v == 0 || v == 1, "interleave: token_type %d at packed row %lld (sample %d); only 0 (text, "
                      "audio) and 1 (speech response) exist", (int)v, (long long)t, s);
            if (v == 1 && open < 0) open = t;
            if (v == 0 && open >= 0) {
                if (n < max_spans) start[n] = open, end[n] = t;
                n++, open = -1;
            }
        }
        if (open >= 0) {  // the run reaches the end of its sample
            if (n < max_spans) start[n] = open, end[n] = e;
            n++;
        }
    }
    return n;
}

int64_t s2s_interleave_split_runs(const int32_t *units, int64_t n, int32_t eos, int64_t *run_len, int64_t max_runs) {
    if (n == 0) return 0;
    if (units[n - 1] != eos) return -1;
    int64_t k = 0, from = 0;
    for (int64_t i = 0; i < n; i++)
        if (units[i] == eos) {
            if (k < max_runs) run_len[k] = i + 1 - from;
            k++, from = i + 1;
        }
    return k;
}

void s2s_interleave_build(s2s_interleave *il, int64_t n_seq, const int64_t *text_len, const int32_t *units,
                          const int64_t *units_len, int64_t M, int64_t N) {
    S2S_CHECK(M >= 1 && N >= 1, "interleave: strategy %lld:%lld needs at least one row of each side per round",
              (long long)M, (long long)N);
    *il = (s2s_interleave){.n_seq = n_seq};
    for (int64_t i = 0; i < n_seq; i++) {
        S2S_CHECK(text_len[i] >= 1, "interleave: span %lld has no hidden rows", (long long)i);
        S2S_CHECK(units_len[i] >= 1, "interleave: unit sequence %lld is empty (every one ends with the TTS EOS)",
                  (long long)i);
        il->n_text += text_len[i];
        il->n_units += units_len[i];
    }
    il->T = n_seq + il->n_text + il->n_units;
    S2S_CHECK(il->T <= INT32_MAX, "interleave: %lld TTS rows exceed i32 row indices", (long long)il->T);
    il->src = s2s_malloc((size_t)(il->T + 1) * sizeof(int32_t));
    il->labels = s2s_malloc((size_t)(il->T + 1) * sizeof(int32_t));
    il->pos = s2s_malloc((size_t)(il->T + 1) * sizeof(int32_t));
    il->cu_seqlens = s2s_malloc((size_t)(n_seq + 1) * sizeof(int32_t));

    const int64_t text0 = n_seq, unit0 = n_seq + il->n_text;  // where each block starts in [spk | text | units]
    int64_t r = 0, text_off = 0, unit_off = 0;
    il->cu_seqlens[0] = 0;
    for (int64_t i = 0; i < n_seq; i++) {
        const int64_t r0 = r;
        il->src[r] = (int32_t)i, il->labels[r] = S2S_IGNORE_INDEX, r++;  // the speaker slot comes first
        int64_t a = 0, u = 0;  // hidden rows and units placed so far
        while (a < text_len[i] || u < units_len[i]) {
            for (int64_t k = 0; k < M && a < text_len[i]; k++, a++)
                il->src[r] = (int32_t)(text0 + text_off + a), il->labels[r] = S2S_IGNORE_INDEX, r++;
            for (int64_t k = 0; k < N && u < units_len[i]; k++, u++)
                il->src[r] = (int32_t)(unit0 + unit_off + u), il->labels[r] = units[unit_off + u], r++;
        }
        for (int64_t t = r0; t < r; t++) il->pos[t] = (int32_t)(t - r0);
        il->cu_seqlens[i + 1] = (int32_t)r;
        text_off += text_len[i];
        unit_off += units_len[i];
    }
}

void s2s_interleave_free(s2s_interleave *il) {
    free(il->src);
    free(il->labels);
    free(il->pos);
    free(il->cu_seqlens);
    *il = (s2s_interleave){0};
}

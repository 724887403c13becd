// interleave.h — the host-side bookkeeping of OpenS2S's LLM -> TTS-LM hand-over
// (src/modeling_omnispeech.py prepare_inputs_labels_for_tts_lm): which LLM rows are speech responses, and how
// their hidden states and the unit embeddings are laid out in the TTS-LM's input.
//
// Spans. A speech response is a maximal run of token_type 1 inside one sample of the spliced LLM sequence
// (OpenS2S finds the 0->1 and 1->0 transitions of F.pad(token_types, (1, 1))). Spans are numbered in batch
// order, then position order — torch.nonzero's row-major order, which is how OpenS2S pairs span i with
// speech_units[i].
//
// One TTS sequence per span i (OpenS2S's tts batch row i), text_len[i] hidden rows and units_len[i] units:
//   [spk_i] t t .. (M rows) u u .. (N rows) t t .. u u .. ...     M:N = interleave_strategy ("1:2" default)
// When one side runs out the other continues alone. Labels (HF, unshifted) are the unit ids on unit rows and
// S2S_IGNORE_INDEX on the speaker and text rows; the causal-LM shift then makes the row before each unit
// predict it. Rows are described by `src`: an index into the concatenation
//   [ speaker rows (n_seq) | text rows (sum text_len, span 0's first) | unit rows (sum units_len) ]
// so the TTS input is one gather_rows of that concatenation (its backward scatters the gradients back).
#pragma once
#include <stdint.h>

#ifndef S2S_IGNORE_INDEX
#define S2S_IGNORE_INDEX (-100)  // HF labels: not supervised
#endif

// Speech-response spans of a packed batch. token_types i32 [T] (0 or 1), cu_seqlens [n_seq + 1].
// Writes start[k], end[k] (packed rows, end exclusive) for at most max_spans spans and returns how many there
// are (call with max_spans 0 to count). A run that reaches the end of its sample ends there (see
// docs/forward-batch.md: OpenS2S would only see it in the batch's longest sample). Any value but 0 and 1 is an
// error naming the row.
int64_t s2s_interleave_find_spans(const int32_t *token_types, const int32_t *cu_seqlens, int n_seq, int64_t *start,
                                  int64_t *end, int64_t max_spans);

// Split a unit row of n ids into its EOS-terminated runs (prep stores a sample's several speech responses as one
// row of runs, each closed by the TTS EOS). Writes run_len[k] for at most max_runs runs; returns the number of
// runs, or -1 when the row does not end with eos (a run without its EOS).
int64_t s2s_interleave_split_runs(const int32_t *units, int64_t n, int32_t eos, int64_t *run_len, int64_t max_runs);

typedef struct s2s_interleave {
    int64_t n_seq;        // TTS sequences (= spans)
    int64_t T;            // TTS rows in all: sum over spans of 1 + text_len + units_len
    int64_t n_text, n_units;  // sum text_len, sum units_len
    int32_t *src;         // [T] row of [spk | text | units] each TTS row copies
    int32_t *labels;      // [T] unit id on unit rows, else S2S_IGNORE_INDEX (unshifted)
    int32_t *pos;         // [T] position inside its sequence (0 = the speaker row)
    int32_t *cu_seqlens;  // [n_seq + 1]
} s2s_interleave;

// Lay out n_seq sequences with text_span M >= 1 hidden rows then speech_span N >= 1 units per round.
// units: the unit ids of all sequences, concatenated (sequence i's are units_len[i] long).
void s2s_interleave_build(s2s_interleave *il, int64_t n_seq, const int64_t *text_len, const int32_t *units,
                          const int64_t *units_len, int64_t M, int64_t N);
void s2s_interleave_free(s2s_interleave *il);

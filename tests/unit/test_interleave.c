// test_interleave.c — model/interleave.c against layouts written out by hand from OpenS2S's
// prepare_inputs_labels_for_tts_lm: the speaker slot first, M hidden rows then N units per round, the side that
// is left continuing alone, labels only on unit rows; span finding (0->1 / 1->0 transitions, a run at a
// sample's end, never across samples); splitting a row of EOS-terminated runs.
#include <stdio.h>
#include <string.h>
#include "model/interleave.h"
#include "expect.h"


static int same(const int32_t *a, const int32_t *b, int64_t n) { return !memcmp(a, b, (size_t)n * sizeof *a); }

// Rows are named as the concatenation [spk | text | units] indexes them: with 2 spans, 3 + 2 text rows and
// 4 + 5 units, spk = 0..1, text = 2..6 (span 0: 2,3,4; span 1: 5,6), units = 7..15 (span 0: 7..10; span 1: 11..15).
static void layouts(void) {
    const int64_t text_len[2] = {3, 2}, units_len[2] = {4, 5};
    const int32_t units[9] = {50, 51, 52, 99, 60, 61, 62, 63, 99};  // 99: EOS
    const int32_t I = S2S_IGNORE_INDEX;
    s2s_interleave il;

    // 1:2 (OpenS2S's default): s t u u t u u t u u | s t u u t u u u   (span 1's text runs out first)
    s2s_interleave_build(&il, 2, text_len, units, units_len, 1, 2);
    const int32_t src12[] = {0, 2, 7, 8, 3, 9, 10, 4, 1, 5, 11, 12, 6, 13, 14, 15};
    const int32_t lab12[] = {I, I, 50, 51, I, 52, 99, I, I, I, 60, 61, I, 62, 63, 99};
    const int32_t cu12[] = {0, 8, 16};
    EXPECT(il.T == 16 && il.n_text == 5 && il.n_units == 9, "T %lld", (long long)il.T);
    EXPECT(same(il.src, src12, 16), "1:2 rows");
    EXPECT(same(il.labels, lab12, 16), "1:2 labels");
    EXPECT(same(il.cu_seqlens, cu12, 3), "1:2 cu_seqlens");
    EXPECT(il.pos[0] == 0 && il.pos[7] == 7 && il.pos[8] == 0 && il.pos[15] == 7, "positions restart per sequence");
    s2s_interleave_free(&il);

    // 4:8 (the paper's): every text row first, then every unit: s t t t u u u u | s t t u u u u u
    s2s_interleave_build(&il, 2, text_len, units, units_len, 4, 8);
    const int32_t src48[] = {0, 2, 3, 4, 7, 8, 9, 10, 1, 5, 6, 11, 12, 13, 14, 15};
    EXPECT(same(il.src, src48, 16), "4:8 rows");
    s2s_interleave_free(&il);

    // 2:1: s t t u t u u u — the text is used up in round 2, then the units continue alone.
    s2s_interleave_build(&il, 2, text_len, units, units_len, 2, 1);
    const int32_t src21[] = {0, 2, 3, 7, 4, 8, 9, 10, 1, 5, 6, 11, 12, 13, 14, 15};
    EXPECT(same(il.src, src21, 16), "2:1 rows");
    s2s_interleave_free(&il);

    // Text longer than units (OpenS2S: the text continues alone): 5 text rows, 1 unit, 1:2 -> s t u t t t t.
    const int64_t tl[1] = {5}, ul[1] = {1};
    const int32_t u1[1] = {99};
    s2s_interleave_build(&il, 1, tl, u1, ul, 1, 2);
    const int32_t src_t[] = {0, 1, 6, 2, 3, 4, 5};
    const int32_t lab_t[] = {I, I, 99, I, I, I, I};
    EXPECT(il.T == 7 && same(il.src, src_t, 7) && same(il.labels, lab_t, 7), "text continuing alone");
    s2s_interleave_free(&il);
}

static void spans(void) {
    // Two samples: [0 1 1 0 1 | 1 1 0 0]  -> spans (1,3), (4,5) in sample 0 (the second reaches its end), and (5,7):
    // a run never continues across the sample boundary.
    const int32_t tt[9] = {0, 1, 1, 0, 1, 1, 1, 0, 0};
    const int32_t cu[3] = {0, 5, 9};
    int64_t s[4], e[4];
    EXPECT(s2s_interleave_find_spans(tt, cu, 2, NULL, NULL, 0) == 3, "count");
    int64_t n = s2s_interleave_find_spans(tt, cu, 2, s, e, 4);
    EXPECT(n == 3 && s[0] == 1 && e[0] == 3 && s[1] == 4 && e[1] == 5 && s[2] == 5 && e[2] == 7, "spans %lld", (long long)n);
    const int32_t none[3] = {0, 0, 0}, cu1[2] = {0, 3};
    EXPECT(s2s_interleave_find_spans(none, cu1, 1, s, e, 4) == 0, "no span");
}

static void runs(void) {
    const int32_t u[7] = {5, 6, 9, 7, 9, 8, 9};
    int64_t len[4];
    EXPECT(s2s_interleave_split_runs(u, 7, 9, len, 4) == 3 && len[0] == 3 && len[1] == 2 && len[2] == 2, "3 runs");
    EXPECT(s2s_interleave_split_runs(u, 6, 9, len, 4) == -1, "a row not ending with EOS");
    EXPECT(s2s_interleave_split_runs(u, 3, 9, len, 4) == 1 && len[0] == 3, "one run");
}

int main(void) {
    layouts();
    spans();
    runs();
    if (failures) {
        fprintf(stderr, "test_interleave: %d failures\n", failures);
        return 1;
    }
    printf("test_interleave: OK\n");
    return 0;
}

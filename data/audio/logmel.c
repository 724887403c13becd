// logmel.c — Whisper log-mel (see logmel.h for the definition) with FFTW.
//
// The transform is double precision; after it, power, mel sums and log are float32, as in the reference. Double
// is what keeps the result at the reference's own rounding: in float32 the FFT's error is relative to the frame's
// energy, and the mel values that survive the floor sit up to 80 dB below their frame (resampled audio has next
// to nothing near 8 kHz), where float32 rounding reaches 1e-4 (measured: 1.5e-4 from a float64 rendering on a
// resampled speech file, while transformers' own float32 path was 3.6e-5 from it on the same file). A float32
// transform was 1.6x faster overall; a fallback to double for the weak values fired on most frames of speech.
//
// The FFT takes frames in pairs, frame a as the real part and frame b as the imaginary part of one 400-point
// complex transform Z, split afterwards as X_a[k] = (Z[k] + conj Z[400-k]) / 2, X_b[k] = (Z[k] - conj Z[400-k]) /
// 2i: ~0.23 us a frame here, the cheapest of FFTW's ways to a real 400-point transform (a 200-point complex one per
// frame needs a twiddle pass after it; FFTW's r2c codelets have no SIMD).
//
// Work is done in blocks of BLOCK frames so that the inner loops run across frames: the power spectrum of a
// block is stored bin-major [NBIN_PAD][BLOCK], the sparse filter bank (each FFT bin feeds at most two filters)
// accumulates whole BLOCK-wide vectors, and each mel row of the block lands contiguously in the [128, F] output.
// The clamp and floor need the global max, so the log is a second pass, row by row. Blocks lying wholly in the
// zero padding are not transformed: their power is exactly 0, as in the reference.
#include "logmel.h"
#include <fftw3.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

// One native vector: generic vectors wider than the target's registers are kept in memory by GCC and run several
// times slower (a 64-byte vector on an AVX2-only build made the whole extractor 5x slower), so the block follows
// the ISA: 16 frames with AVX-512, 8 with AVX, 4 with SSE2.
#if defined(__AVX512F__)
#define VB 64
#elif defined(__AVX__)
#define VB 32
#else
#define VB 16
#endif
#define NBIN (S2S_MEL_NFFT / 2 + 1)  // 201 rfft bins
#define BLOCK (VB / 4)               // frames per block: one vector of floats
#define PAIRS (BLOCK / 2)            // complex transforms per block; also doubles per vector
#define NBIN_PAD 208                 // NBIN rounded up to whole tiles of PAIRS bins
#define PAD (S2S_MEL_NFFT / 2)       // centred STFT: reflect-pad 200 each side
_Static_assert(NBIN_PAD % PAIRS == 0 && NBIN_PAD >= NBIN + PAIRS - 1 - (NBIN - 1) % PAIRS && S2S_MEL_NFFT % PAIRS == 0,
               "power_split works in tiles of PAIRS bins, block_gather in vectors of PAIRS samples");

typedef float f32xB __attribute__((vector_size(VB)));       // one value per frame of a block
typedef int32_t i32xB __attribute__((vector_size(VB)));     // the same lanes as bits
typedef double f64xV __attribute__((vector_size(VB)));      // PAIRS doubles, or PAIRS float pairs to move
typedef float f32xH __attribute__((vector_size(VB / 2)));   // half a block: PAIRS floats

struct s2s_logmel {
    fftw_plan plan;  // PAIRS complex 400-point transforms, [PAIRS][400] -> [PAIRS][400]
    int from_wisdom;  // the plan is mel_wisdom's, not FFTW_ESTIMATE's
    _Alignas(64) double window[S2S_MEL_NFFT];  // aligned: block_gather reads it in whole cache lines
    // Filter m covers bins [lo[m], lo[m] + len[m]) with weights w[off[m] ...]: the nonzeros of the bank.
    int lo[S2S_MEL_BINS], len[S2S_MEL_BINS], off[S2S_MEL_BINS];
    float *w;  // [nnz], times 1/4
};

// ---- Slaney mel scale and filters, as transformers.audio_utils computes them (float64, then float32) ----

static double hz_to_mel(double f) {
    if (f < 1000.0) return 3.0 * f / 200.0;
    return 15.0 + log(f / 1000.0) * (27.0 / log(6.4));
}

static double mel_to_hz(double m) {
    if (m < 15.0) return 200.0 * m / 3.0;
    return 1000.0 * exp(log(6.4) / 27.0 * (m - 15.0));
}

// dense [128][201]: triangles and Slaney area normalisation in float64 (mel_filter_bank's default dtype),
// rounded to float32 at the end as the extractor's torch path does before its matmul.
static void build_filters(float dense[S2S_MEL_BINS][NBIN]) {
    enum { NF = S2S_MEL_BINS + 2 };
    double ff[NF];
    double mmin = hz_to_mel(0.0), mmax = hz_to_mel(8000.0);
    double step = (mmax - mmin) / (NF - 1);  // np.linspace: i * step + start, last point = stop exactly
    for (int i = 0; i < NF; i++) ff[i] = mel_to_hz(i == NF - 1 ? mmax : i * step + mmin);
    for (int m = 0; m < S2S_MEL_BINS; m++) {
        double enorm = 2.0 / (ff[m + 2] - ff[m]);
        for (int k = 0; k < NBIN; k++) {
            double fk = k * (8000.0 / (NBIN - 1));  // np.linspace(0, 8000, 201)
            double down = -(ff[m] - fk) / (ff[m + 1] - ff[m]);
            double up = (ff[m + 2] - fk) / (ff[m + 2] - ff[m + 1]);
            double t = down < up ? down : up;
            dense[m][k] = (float)((t > 0.0 ? t : 0.0) * enorm);
        }
    }
}

// ---- log10 and the final scaling -----------------------------------------------------------------------
// (log10(a) + 4) / 4 for a > 0, a block of values at a time (libm's log10f is scalar): a = 2^e * m with m in
// [sqrt(.5), sqrt(2)) by offsetting the bits by those of sqrt(.5); ln m = 2 atanh(s), s = (m-1)/(m+1),
// |s| < 0.172, series to s^9 (truncation < 1e-9), the constants folded: y = e log10(2)/4 + s (K + K/3 s^2 + ...
// + K/9 s^8) + 1, K = 1 / (2 ln 10). Absolute error ~2.5e-8 over [1e-10, 1e10] (normal floats only: callers clamp
// at >= 1e-10 first).
static inline f32xB log_scale(f32xB a) {
    const float K = 0.21714724095162590f;
    i32xB u;
    memcpy(&u, &a, sizeof u);
    u -= 0x3f3504f3;  // bits of sqrt(0.5)
    i32xB e = u >> 23;
    u = (u & 0x007fffff) + 0x3f3504f3;
    f32xB m;
    memcpy(&m, &u, sizeof m);
    f32xB s = (m - 1.0f) / (m + 1.0f), s2 = s * s;
    f32xB p = (f32xB){0} + K / 9.0f;
    p = p * s2 + K / 7.0f;
    p = p * s2 + K / 5.0f;
    p = p * s2 + K / 3.0f;
    p = p * s2 + K;
    return __builtin_convertvector(e, f32xB) * 0.0752574989159953f + (s * p + 1.0f);
}

// ---- object ---------------------------------------------------------------------------------------------

// FFTW's planner and plan destruction share global state and are not thread-safe (executing a plan is), so
// objects made and freed on several loader threads must take turns.
static pthread_mutex_t fftw_planner_lock = PTHREAD_MUTEX_INITIALIZER;

// The plan is fixed, not measured: a plan FFTW_MEASURE picks can differ from run to run and so change the low
// bits of the mel, and training must be reproducible (a resumed run recomputes the same features bit for bit).
// It is the one FFTW_PATIENT found for PAIRS 400-point transforms with Debian's FFTW 3.3.10 (AVX codelets) on
// Zen 4, 20 x 20 Cooley-Tukey with the t2fv_20 codelet (precomputed twiddles) for 8 and 4 transforms a block,
// ~10% faster than FFTW_ESTIMATE's choice (t3fv_20, twiddles computed on the fly). Imported as wisdom, it is used wherever it applies (the same
// FFTW build and SIMD); elsewhere FFTW_ESTIMATE plans. `s2s mel --find-wisdom` prints what FFTW_PATIENT finds on
// the machine at hand.
#define PLAN_FLAGS (FFTW_PATIENT | FFTW_DESTROY_INPUT)
static const char mel_wisdom[] =  // entries for PAIRS = 8 (AVX-512 builds), 4 (AVX) and 2 (SSE2) transforms a block
    "(fftw-3.3.10 fftw_wisdom #x458a31c8 #x92381c4c #x4f974889 #xcd46f97e\n"
    "  (fftw_codelet_t2fv_20_avx 0 #x10048 #x10048 #x0 #x125c84be #xcf6c142a #xa37133c9 #xb1093473)\n"
    "  (fftw_codelet_n2fv_20_avx 0 #x10048 #x10048 #x0 #xae29540d #x4893058f #xc5287f97 #xfeb51d45)\n"
    "  (fftw_dft_vrank_geq1_register 0 #x10048 #x10048 #x0 #xbccec945 #x23eb625c #x0544993e #xb9bbbaca)\n"
    "  (fftw_dft_vrank_geq1_register 0 #x10048 #x10048 #x0 #x8a4cfd1d #xb6e14541 #x732d5432 #x53d33e27)\n"
    "  (fftw_dft_vrank_geq1_register 0 #x10048 #x10048 #x0 #xb8163a09 #xe6548d99 #xeada2453 #x4430f798)\n"
    "  (fftw_codelet_t3fv_20_avx 0 #x10048 #x10048 #x0 #x61e4d79d #xad2887dc #x7572a4dc #x27a4e59f)\n"
    ")\n";

int s2s_logmel_new(s2s_logmel **out, s2s_derr *err) {
    s2s_logmel *m = aligned_alloc(64, (sizeof *m + 63) / 64 * 64);
    if (m) memset(m, 0, sizeof *m);
    float(*dense)[NBIN] = malloc(sizeof(float) * S2S_MEL_BINS * NBIN);
    fftw_complex *z = fftw_malloc(sizeof(fftw_complex) * PAIRS * S2S_MEL_NFFT);
    fftw_complex *spec = fftw_malloc(sizeof(fftw_complex) * PAIRS * S2S_MEL_NFFT);
    if (!m || !dense || !z || !spec) goto oom;
    for (int i = 0; i < S2S_MEL_NFFT; i++)  // periodic Hann: np.hanning(401)[:-1]
        m->window[i] = 0.5 - 0.5 * cos(2.0 * M_PI * i / S2S_MEL_NFFT);
    build_filters(dense);
    int nnz = 0;
    for (int b = 0; b < S2S_MEL_BINS; b++) {
        int lo = 0, hi = -1;
        for (int k = 0; k < NBIN; k++)
            if (dense[b][k] != 0.0f) {
                if (hi < 0) lo = k;
                hi = k;
            }
        m->lo[b] = lo;
        m->len[b] = hi < 0 ? 0 : hi - lo + 1;
        m->off[b] = nnz;
        nnz += m->len[b];
    }
    m->w = malloc(sizeof(float) * (nnz ? nnz : 1));
    if (!m->w) goto oom;
    for (int b = 0; b < S2S_MEL_BINS; b++)
        for (int k = 0; k < m->len[b]; k++)  // x 1/4: power_split leaves 4 |X|^2 (exact: a power of two)
            m->w[m->off[b] + k] = 0.25f * dense[b][m->lo[b] + k];
    int n = S2S_MEL_NFFT;
    pthread_mutex_lock(&fftw_planner_lock);
    fftw_import_wisdom_from_string(mel_wisdom);
    m->plan =
        fftw_plan_many_dft(1, &n, PAIRS, z, NULL, 1, n, spec, NULL, 1, n, FFTW_FORWARD, PLAN_FLAGS | FFTW_WISDOM_ONLY);
    m->from_wisdom = m->plan != NULL;
    if (!m->plan)
        m->plan = fftw_plan_many_dft(1, &n, PAIRS, z, NULL, 1, n, spec, NULL, 1, n, FFTW_FORWARD,
                                      FFTW_ESTIMATE | FFTW_DESTROY_INPUT);
    pthread_mutex_unlock(&fftw_planner_lock);
    if (!m->plan) {
        s2s_derr_set(err, "logmel: FFTW could not plan a %d-point complex transform", n);
        goto fail;
    }
    free(dense);
    fftw_free(z);
    fftw_free(spec);
    *out = m;
    return 0;
oom:
    s2s_derr_set(err, "logmel: out of memory");
fail:
    if (m) free(m->w);
    free(m);
    free(dense);
    fftw_free(z);
    fftw_free(spec);
    return -1;
}

void s2s_logmel_free(s2s_logmel *m) {
    if (!m) return;
    pthread_mutex_lock(&fftw_planner_lock);
    fftw_destroy_plan(m->plan);
    pthread_mutex_unlock(&fftw_planner_lock);
    free(m->w);
    free(m);
}

const char *s2s_logmel_plan(const s2s_logmel *m) { return m->from_wisdom ? "wisdom" : "estimate"; }

char *s2s_logmel_find_wisdom(void) {
    int n = S2S_MEL_NFFT;
    fftw_complex *z = fftw_malloc(sizeof(fftw_complex) * PAIRS * n);
    fftw_complex *spec = fftw_malloc(sizeof(fftw_complex) * PAIRS * n);
    char *text = NULL;
    pthread_mutex_lock(&fftw_planner_lock);
    fftw_forget_wisdom();  // else the planner would return mel_wisdom's plan
    fftw_plan p =
        z && spec ? fftw_plan_many_dft(1, &n, PAIRS, z, NULL, 1, n, spec, NULL, 1, n, FFTW_FORWARD, PLAN_FLAGS) : NULL;
    if (p) {
        char *w = fftw_export_wisdom_to_string();
        text = w ? strdup(w) : NULL;
        free(w);  // fftw_export_wisdom_to_string's result is malloc'd
        fftw_destroy_plan(p);
    }
    pthread_mutex_unlock(&fftw_planner_lock);
    fftw_free(z);
    fftw_free(spec);
    return text;
}

int64_t s2s_logmel_padded_frames(int64_t n) {
    return (n + S2S_MEL_CHUNK_SAMPLES - 1) / S2S_MEL_CHUNK_SAMPLES * S2S_MEL_CHUNK_FRAMES;
}

int64_t s2s_logmel_valid_frames(int64_t n) { return (n + S2S_MEL_HOP - 1) / S2S_MEL_HOP; }

// ---- one block of frames --------------------------------------------------------------------------------

// Shuffle patterns (GCC >= 12 and clang take __builtin_shufflevector; indices past the first operand's lanes
// pick from the second), for vectors of PAIRS doubles. ZIP: interleave two vectors; REV: their complex numbers
// last first; SWAP_RI: re <-> im of each; CAT: two halves -> one vector. A transpose of PAIRS x PAIRS swaps the
// off-diagonal d x d blocks of every 2d x 2d block, d = PAIRS / 2 ... 1 (T<d>A, T<d>B).
#if PAIRS == 8
#define ZIP_LO 0, 8, 1, 9, 2, 10, 3, 11
#define ZIP_HI 4, 12, 5, 13, 6, 14, 7, 15
#define REV 6, 7, 4, 5, 2, 3, 0, 1
#define SWAP_RI 1, 0, 3, 2, 5, 4, 7, 6
#define CAT 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15
#define T4A 0, 1, 2, 3, 8, 9, 10, 11
#define T4B 4, 5, 6, 7, 12, 13, 14, 15
#define T2A 0, 1, 8, 9, 4, 5, 12, 13
#define T2B 2, 3, 10, 11, 6, 7, 14, 15
#define T1A 0, 8, 2, 10, 4, 12, 6, 14
#define T1B 1, 9, 3, 11, 5, 13, 7, 15
#elif PAIRS == 4
#define ZIP_LO 0, 4, 1, 5
#define ZIP_HI 2, 6, 3, 7
#define REV 2, 3, 0, 1
#define SWAP_RI 1, 0, 3, 2
#define CAT 0, 1, 2, 3, 4, 5, 6, 7
#define T2A 0, 1, 4, 5
#define T2B 2, 3, 6, 7
#define T1A 0, 4, 2, 6
#define T1B 1, 5, 3, 7
#else
#define ZIP_LO 0, 2
#define ZIP_HI 1, 3
#define REV 0, 1
#define SWAP_RI 1, 0
#define CAT 0, 1, 2, 3
#define T1A 0, 2
#define T1B 1, 3
#endif
#define TSTAGE(d, A, B)                                      \
    for (int i = 0; i < PAIRS; i++)                          \
        if (!(i & (d))) {                                    \
            f64xV a_ = r[i], b_ = r[i + (d)];                \
            r[i] = __builtin_shufflevector(a_, b_, A);       \
            r[i + (d)] = __builtin_shufflevector(a_, b_, B); \
        }

static void transpose(f64xV r[PAIRS]) {
#if PAIRS == 8
    TSTAGE(4, T4A, T4B)
#endif
#if PAIRS >= 4
    TSTAGE(2, T2A, T2B)
#endif
    TSTAGE(1, T1A, T1B)
}

// pw [NBIN_PAD][BLOCK] = 4 x power, bin-major, from spec [PAIRS][400] (+ PAIRS spare entries: the first tile
// reads one past a pair). With a = Z[k], b = Z[400-k] (Z[400] = Z[0]) interleaved as (re, im), S = a + b,
// D = a - b: 4 |X_a[k]|^2 = S.re^2 + D.im^2 and 4 |X_b[k]|^2 = S.im^2 + D.re^2, i.e. the pair (4|X_a|^2,
// 4|X_b|^2) is S^2 + (D^2 with re and im swapped), already in frame order; rounded to float once formed. PAIRS
// bins of the block's PAIRS pairs at a time: a PAIRS x PAIRS transpose of those float pairs turns pair-major into
// bin-major.
static inline f32xH pair_power(f64xV a, f64xV b) {  // PAIRS / 2 bins: a = Z[k..], b = Z[400-k..] descending
    f64xV sm = a + b, df = a - b;
    df *= df;
    return __builtin_convertvector(sm * sm + __builtin_shufflevector(df, df, SWAP_RI), f32xH);
}

static void power_split(const fftw_complex *spec, float *pw) {
    enum { H = PAIRS / 2 };  // complex numbers per vector
    for (int k0 = 0; k0 < NBIN; k0 += PAIRS) {
        f64xV r[PAIRS];
        for (int p = 0; p < PAIRS; p++) {
            const double *z = (const double *)(spec + p * S2S_MEL_NFFT);
            f64xV a0, a1, b0, b1;
            memcpy(&a0, z + 2 * k0, sizeof a0);                                  // Z[k0 .. k0+H-1]
            memcpy(&a1, z + 2 * (k0 + H), sizeof a1);                            // Z[k0+H .. k0+2H-1]
            memcpy(&b0, z + 2 * (S2S_MEL_NFFT - (H - 1) - k0), sizeof b0);       // Z[400-k0-H+1 .. 400-k0]
            memcpy(&b1, z + 2 * (S2S_MEL_NFFT - (2 * H - 1) - k0), sizeof b1);   // Z[400-k0-2H+1 .. 400-k0-H]
            b0 = __builtin_shufflevector(b0, b0, REV);                            // Z[400-k0] first
            b1 = __builtin_shufflevector(b1, b1, REV);                            // Z[400-k0-H] first
            if (k0 == 0) {  // lane 0 read Z[400], past the pair: its partner is Z[0]
                b0[0] = a0[0];
                b0[1] = a0[1];
            }
            f32xB q = __builtin_shufflevector(pair_power(a0, b0), pair_power(a1, b1), CAT);
            memcpy(&r[p], &q, sizeof q);
        }
        transpose(r);
        for (int i = 0; i < PAIRS; i++) memcpy(pw + (k0 + i) * BLOCK, &r[i], sizeof r[i]);
    }
}

// The 400 samples of frame t of the reflect-padded, zero-padded signal (P samples): a pointer into the audio
// when the frame lies wholly inside it (the common case), else gathered into tmp.
static const float *frame_samples(const float *x, int64_t n, int64_t P, int64_t t, float *tmp) {
    int64_t j0 = t * S2S_MEL_HOP - PAD;
    if (j0 >= 0 && j0 + S2S_MEL_NFFT <= n) return x + j0;
    for (int i = 0; i < S2S_MEL_NFFT; i++) {
        int64_t j = j0 + i;
        if (j < 0) j = -j;  // reflect (numpy 'reflect': the edge sample is not repeated)
        if (j >= P) j = 2 * (P - 1) - j;
        tmp[i] = j < n ? x[j] : 0.0f;
    }
    return tmp;
}

// Per-thread buffers.
typedef struct {
    fftw_complex *z, *spec;  // [PAIRS][400] packed pairs, and their transforms (+ PAIRS entries power_split reads)
    float *pw;                // [NBIN_PAD][BLOCK] 4 x power, bin-major
    float *acc;               // [128][BLOCK] mel power
} mel_work;

static int work_alloc(mel_work *w) {
    w->z = fftw_malloc(sizeof(fftw_complex) * PAIRS * S2S_MEL_NFFT);
    w->spec = fftw_malloc(sizeof(fftw_complex) * (PAIRS * S2S_MEL_NFFT + PAIRS));
    w->pw = fftw_malloc(sizeof(float) * NBIN_PAD * BLOCK);
    w->acc = fftw_malloc(sizeof(float) * S2S_MEL_BINS * BLOCK);
    return w->z && w->spec && w->pw && w->acc ? 0 : -1;
}

static void work_free(mel_work *w) {
    fftw_free(w->z);
    fftw_free(w->spec);
    fftw_free(w->pw);
    fftw_free(w->acc);
}

// z [PAIRS][400]: frames t0 + 2p (real parts) and t0 + 2p + 1 (imaginary parts), windowed in double; frames past
// nt are zero.
static void block_gather(const s2s_logmel *m, const float *x, int64_t n, int64_t F, int64_t t0, int nt,
                         fftw_complex *zc) {
    static const float zeros[S2S_MEL_NFFT];
    const int64_t P = F * S2S_MEL_HOP;
    float ta[S2S_MEL_NFFT], tb[S2S_MEL_NFFT];
    for (int p = 0; p < PAIRS; p++) {
        int f = 2 * p;
        const float *sa = f < nt ? frame_samples(x, n, P, t0 + f, ta) : zeros;
        const float *sb = f + 1 < nt ? frame_samples(x, n, P, t0 + f + 1, tb) : zeros;
        double *z = (double *)(zc + p * S2S_MEL_NFFT);  // [400][2]
        for (int i = 0; i < S2S_MEL_NFFT; i += PAIRS) {
            f32xH fa, fb;
            f64xV wv;
            memcpy(&fa, sa + i, sizeof fa);
            memcpy(&fb, sb + i, sizeof fb);
            memcpy(&wv, m->window + i, sizeof wv);
            f64xV va = __builtin_convertvector(fa, f64xV) * wv, vb = __builtin_convertvector(fb, f64xV) * wv;
            f64xV lo = __builtin_shufflevector(va, vb, ZIP_LO), hi = __builtin_shufflevector(va, vb, ZIP_HI);
            memcpy(z + 2 * i, &lo, sizeof lo);
            memcpy(z + 2 * i + PAIRS, &hi, sizeof hi);
        }
    }
}

// acc [128][BLOCK] = filters (sparse) x pw.
static void block_filter(const s2s_logmel *m, const float *pw, float *acc) {
    for (int b = 0; b < S2S_MEL_BINS; b++) {
        f32xB a = {0};
        const float *wt = m->w + m->off[b];
        const float *p = pw + m->lo[b] * BLOCK;
        for (int k = 0; k < m->len[b]; k++) {
            f32xB v;
            memcpy(&v, p + k * BLOCK, sizeof v);
            a += wt[k] * v;
        }
        memcpy(acc + b * BLOCK, &a, sizeof a);
    }
}

// Frames [t0, t0 + nt) of the signal -> their mel power in mel[b * F + t0 + f]; returns the bits of the largest
// (non-negative floats order like their bits, and integer compares select without branches).
static int32_t block_compute(const s2s_logmel *m, const float *x, int64_t n, int64_t F, int64_t t0, int nt,
                             mel_work *w, float *restrict mel) {
    block_gather(m, x, n, F, t0, nt, w->z);     // z [PAIRS][400]
    fftw_execute_dft(m->plan, w->z, w->spec);  // spec [PAIRS][400]
    power_split(w->spec, w->pw);                // pw [NBIN_PAD][BLOCK]
    block_filter(m, w->pw, w->acc);             // acc [128][BLOCK]
    i32xB mx = {0};  // lanes past nt hold zero frames
    for (int b = 0; b < S2S_MEL_BINS; b++) {
        f32xB a;
        i32xB u;
        memcpy(&a, w->acc + b * BLOCK, sizeof a);
        memcpy(&u, &a, sizeof u);
        i32xB gt = u > mx;
        mx = (u & gt) | (mx & ~gt);
        if (nt == BLOCK) memcpy(mel + b * F + t0, &a, sizeof a);  // a constant-size copy is one vector store
        else memcpy(mel + b * F + t0, &a, sizeof(float) * nt);
    }
    int32_t hi = 0;
    for (int l = 0; l < BLOCK; l++) hi = mx[l] > hi ? mx[l] : hi;
    return hi;
}

// ---- the whole signal -----------------------------------------------------------------------------------

int s2s_logmel_compute(const s2s_logmel *m, const float *x, int64_t n, int64_t F, float *mel, s2s_derr *err) {
    if (n < 1) return s2s_derr_set(err, "logmel: empty audio");
    if (F < 1 || F * S2S_MEL_HOP < n)
        return s2s_derr_set(err, "logmel: %lld frames cannot hold %lld samples", (long long)F, (long long)n);
    // torch's reflect pad needs the pad (200) shorter than the signal: P >= 201 holds for any F >= 2.
    if (F * S2S_MEL_HOP <= PAD)
        return s2s_derr_set(err, "logmel: %lld frames are too few to reflect-pad", (long long)F);
    const int64_t nblocks = (F + BLOCK - 1) / BLOCK;
    char *pad = malloc((size_t)nblocks);  // [nblocks] 1: wholly in the zero padding, not computed
    if (!pad) return s2s_derr_set(err, "logmel: out of memory");
    int32_t pmax = 0;  // bits of the largest mel power
    int oom = 0;
    // Pass 1: mel power [128, F].
#pragma omp parallel reduction(| : oom) reduction(max : pmax)
    {
        mel_work w;
        if (work_alloc(&w)) oom = 1;
        // Round-robin blocks: the audio sits at the front and the cheap padding at the back, so contiguous
        // ranges would leave one thread all the work.
#pragma omp for schedule(static, 1)
        for (int64_t blk = 0; blk < nblocks; blk++) {
            int64_t t0 = blk * BLOCK;
            int nt = (int)(F - t0 < BLOCK ? F - t0 : BLOCK);
            int64_t first = t0 * S2S_MEL_HOP - PAD, last_end = (t0 + nt - 1) * S2S_MEL_HOP + PAD;
            pad[blk] = first >= n && last_end <= F * S2S_MEL_HOP;
            if (oom || pad[blk]) continue;
            int32_t mx = block_compute(m, x, n, F, t0, nt, &w, mel);
            pmax = mx > pmax ? mx : pmax;
        }
        work_free(&w);
    }
    if (oom) {
        free(pad);
        return s2s_derr_set(err, "logmel: out of memory");
    }
    // Pass 2, row by row so that memory is walked in order: the reference clamps at 1e-10 before its log10 and
    // floors at (max log - 8) after; log_scale being monotone, both are one clamp of the power at
    // max(1e-10, max power * 1e-8) before it. The zero padding is that floor's log.
    float pm;
    memcpy(&pm, &pmax, 4);
    float lo = fmaxf((float)((double)pm * 1e-8), 1e-10f);
    const f32xB yf = log_scale((f32xB){0} + lo);
    int32_t lo_bits;
    memcpy(&lo_bits, &lo, 4);
    const i32xB lov = (i32xB){0} + lo_bits;
#pragma omp parallel for schedule(static)
    for (int b = 0; b < S2S_MEL_BINS; b++) {
        float *row = mel + b * F;
        for (int64_t t0 = 0; t0 + BLOCK <= F; t0 += BLOCK) {  // whole blocks
            if (pad[t0 / BLOCK]) {
                memcpy(row + t0, &yf, sizeof yf);
                continue;
            }
            i32xB u;
            memcpy(&u, row + t0, sizeof u);
            i32xB gt = u > lov;
            u = (u & gt) | (lov & ~gt);
            f32xB a;
            memcpy(&a, &u, sizeof a);
            a = log_scale(a);
            memcpy(row + t0, &a, sizeof a);
        }
        for (int64_t t = F / BLOCK * BLOCK; t < F; t++) {  // the last, partial block
            f32xB a = (f32xB){0} + (pad[t / BLOCK] || row[t] < lo ? lo : row[t]);
            row[t] = log_scale(a)[0];
        }
    }
    free(pad);
    return 0;
}

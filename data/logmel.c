// logmel.c — Whisper log-mel (see logmel.h for the definition) with FFTW.
//
// Work is done in blocks of BLOCK frames so that the inner loops run across frames: the power spectrum of a
// block is stored bin-major [201][BLOCK], the sparse filter bank (each FFT bin feeds at most two filters) then
// accumulates whole BLOCK-wide vectors, and each mel row of the block lands contiguously in the [128, F]
// output. Blocks lying wholly in the zero padding are not transformed: their power is exactly 0, so their
// value is exactly log10(1e-10), as in the reference.
#include "logmel.h"
#include <fftw3.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NBIN (S2S_MEL_NFFT / 2 + 1)  // 201 rfft bins
#define BLOCK 16                     // frames per block: one AVX-512 vector of floats
#define PAD (S2S_MEL_NFFT / 2)       // centred STFT: reflect-pad 200 each side

struct s2s_logmel {
    fftwf_plan plan;          // BLOCK r2c transforms of 400: in [BLOCK][400] -> out [BLOCK][201] complex
    float window[S2S_MEL_NFFT];
    // Filter m covers bins [lo[m], lo[m] + len[m]) with weights w[off[m] ...]: the nonzeros of the bank.
    int lo[S2S_MEL_BINS], len[S2S_MEL_BINS], off[S2S_MEL_BINS];
    float *w;                 // [nnz]
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
// a[i] = (log10(max(a[i], lo)) + 4) / 4 for a[i] >= 0, lo given by its bits, written so that the compiler
// vectorises it (libm's log10f is not): the clamp is an integer max on the bits (non-negative floats order
// like their bits; a float compare would block if-conversion); x = 2^e * m with m in [sqrt(.5), sqrt(2))
// by offsetting the bits by those of sqrt(.5); ln m = 2 atanh(s), s = (m-1)/(m+1), |s| < 0.172, series to
// s^9 (truncation < 1e-9). Absolute error of the log ~1e-7 over [1e-10, 1e10].
static void log10_scale(float *restrict a, int64_t n, int32_t lo_bits) {
    for (int64_t i = 0; i < n; i++) {
        int32_t u;
        memcpy(&u, &a[i], 4);
        u = u > lo_bits ? u : lo_bits;
        u -= 0x3f3504f3;  // bits of sqrt(0.5)
        int32_t e = u >> 23;
        u = (u & 0x007fffff) + 0x3f3504f3;
        float m;
        memcpy(&m, &u, 4);
        float s = (m - 1.0f) / (m + 1.0f), s2 = s * s;
        float p = 2.0f / 9.0f;
        p = p * s2 + 2.0f / 7.0f;
        p = p * s2 + 2.0f / 5.0f;
        p = p * s2 + 2.0f / 3.0f;
        float ln = (float)e * 0.693147180559945f + (2.0f * s + s * s2 * p);
        a[i] = (ln * 0.434294481903252f + 4.0f) / 4.0f;
    }
}

static int32_t float_bits(float x) {
    int32_t u;
    memcpy(&u, &x, 4);
    return u;
}

// ---- object ---------------------------------------------------------------------------------------------

int s2s_logmel_new(s2s_logmel **out, s2s_derr *err) {
    s2s_logmel *m = calloc(1, sizeof *m);
    float(*dense)[NBIN] = malloc(sizeof(float) * S2S_MEL_BINS * NBIN);
    float *in = fftwf_malloc(sizeof(float) * BLOCK * S2S_MEL_NFFT);
    fftwf_complex *spec = fftwf_malloc(sizeof(fftwf_complex) * BLOCK * NBIN);
    if (!m || !dense || !in || !spec) goto oom;
    for (int i = 0; i < S2S_MEL_NFFT; i++)  // periodic Hann: np.hanning(401)[:-1]
        m->window[i] = (float)(0.5 - 0.5 * cos(2.0 * M_PI * i / S2S_MEL_NFFT));
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
        memcpy(m->w + m->off[b], &dense[b][m->lo[b]], sizeof(float) * m->len[b]);
    // FFTW_ESTIMATE, not MEASURE: a measured plan can differ between runs and so change the low bits of the
    // mel, and training must be reproducible (a resumed run recomputes the same features bit for bit).
    int n = S2S_MEL_NFFT;
    m->plan = fftwf_plan_many_dft_r2c(1, &n, BLOCK, in, NULL, 1, S2S_MEL_NFFT, spec, NULL, 1, NBIN,
                                      FFTW_ESTIMATE | FFTW_DESTROY_INPUT);
    if (!m->plan) {
        s2s_derr_set(err, "logmel: FFTW could not plan a %d-point real transform", S2S_MEL_NFFT);
        goto fail;
    }
    free(dense);
    fftwf_free(in);
    fftwf_free(spec);
    *out = m;
    return 0;
oom:
    s2s_derr_set(err, "logmel: out of memory");
fail:
    if (m) free(m->w);
    free(m);
    free(dense);
    fftwf_free(in);
    fftwf_free(spec);
    return -1;
}

void s2s_logmel_free(s2s_logmel *m) {
    if (!m) return;
    fftwf_destroy_plan(m->plan);
    free(m->w);
    free(m);
}

void s2s_logmel_filters(const s2s_logmel *m, float *filters) {
    memset(filters, 0, sizeof(float) * S2S_MEL_BINS * NBIN);
    for (int b = 0; b < S2S_MEL_BINS; b++)
        memcpy(filters + (size_t)b * NBIN + m->lo[b], m->w + m->off[b], sizeof(float) * m->len[b]);
}

int64_t s2s_logmel_padded_frames(int64_t n) {
    return (n + S2S_MEL_CHUNK_SAMPLES - 1) / S2S_MEL_CHUNK_SAMPLES * S2S_MEL_CHUNK_FRAMES;
}

int64_t s2s_logmel_valid_frames(int64_t n) { return (n + S2S_MEL_HOP - 1) / S2S_MEL_HOP; }

// ---- compute --------------------------------------------------------------------------------------------

// Windowed frame t of the reflect-padded, zero-padded signal (P samples) into dst[400].
static void frame_gather(const float *x, int64_t n, int64_t P, int64_t t, const float *win, float *dst) {
    int64_t j0 = t * S2S_MEL_HOP - PAD;
    if (j0 >= 0 && j0 + S2S_MEL_NFFT <= n) {  // the common case: wholly inside the audio
        for (int i = 0; i < S2S_MEL_NFFT; i++) dst[i] = x[j0 + i] * win[i];
        return;
    }
    for (int i = 0; i < S2S_MEL_NFFT; i++) {
        int64_t j = j0 + i;
        if (j < 0) j = -j;                       // reflect (numpy 'reflect': the edge sample is not repeated)
        if (j >= P) j = 2 * (P - 1) - j;
        dst[i] = (j < n ? x[j] : 0.0f) * win[i];
    }
}

// One block of frames [t0, t0 + nt): writes the mel power into mel[b * F + t]; returns the bits of the
// block's largest value.
static int32_t block_compute(const s2s_logmel *m, const float *x, int64_t n, int64_t F, int64_t t0, int nt,
                           float *restrict in, fftwf_complex *restrict spec, float *restrict pw,
                           float *restrict acc, float *restrict mel) {
    const int64_t P = F * S2S_MEL_HOP;
    for (int f = 0; f < BLOCK; f++) {
        if (f < nt) frame_gather(x, n, P, t0 + f, m->window, in + f * S2S_MEL_NFFT);
        else memset(in + f * S2S_MEL_NFFT, 0, sizeof(float) * S2S_MEL_NFFT);
    }
    fftwf_execute_dft_r2c(m->plan, in, spec);  // spec [BLOCK][201]
    for (int f = 0; f < BLOCK; f++)            // pw [201][BLOCK]
        for (int k = 0; k < NBIN; k++) {
            float re = spec[f * NBIN + k][0], im = spec[f * NBIN + k][1];
            pw[k * BLOCK + f] = re * re + im * im;
        }
    for (int b = 0; b < S2S_MEL_BINS; b++) {  // acc [128][BLOCK] = filters (sparse) x pw
        float a[BLOCK] = {0};
        const float *w = m->w + m->off[b];
        const float *p = pw + m->lo[b] * BLOCK;
        for (int k = 0; k < m->len[b]; k++)
            for (int f = 0; f < BLOCK; f++) a[f] += w[k] * p[k * BLOCK + f];
        memcpy(acc + b * BLOCK, a, sizeof a);
    }
    // The block's max power, compared as bits: non-negative floats order like their bit patterns, and an
    // integer max vectorises where a float one does not. Lanes past nt hold zero frames and never win.
    int32_t mx = 0;
    for (int i = 0; i < S2S_MEL_BINS * BLOCK; i++) {
        int32_t u;
        memcpy(&u, &acc[i], 4);
        mx = u > mx ? u : mx;
    }
    if (nt == BLOCK)  // a constant-size copy is a single vector store
        for (int b = 0; b < S2S_MEL_BINS; b++) memcpy(mel + b * F + t0, acc + b * BLOCK, sizeof(float) * BLOCK);
    else
        for (int b = 0; b < S2S_MEL_BINS; b++) memcpy(mel + b * F + t0, acc + b * BLOCK, sizeof(float) * nt);
    return mx;
}

int s2s_logmel_compute(const s2s_logmel *m, const float *x, int64_t n, int64_t F, float *mel, s2s_derr *err) {
    if (n < 1) return s2s_derr_set(err, "logmel: empty audio");
    if (F < 1 || F * S2S_MEL_HOP < n)
        return s2s_derr_set(err, "logmel: %lld frames cannot hold %lld samples", (long long)F, (long long)n);
    // torch's reflect pad needs the pad (200) shorter than the signal: P >= 201 holds for any F >= 2.
    if (F * S2S_MEL_HOP <= PAD)
        return s2s_derr_set(err, "logmel: %lld frames are too few to reflect-pad", (long long)F);
    const int64_t nblocks = (F + BLOCK - 1) / BLOCK;
    int32_t pmax = 0;  // bits of the largest mel power
    int oom = 0;
    // Pass 1: mel power [128, F].
#pragma omp parallel reduction(max : pmax) reduction(| : oom)
    {
        float *in = fftwf_malloc(sizeof(float) * BLOCK * S2S_MEL_NFFT);           // [BLOCK][400]
        fftwf_complex *spec = fftwf_malloc(sizeof(fftwf_complex) * BLOCK * NBIN);  // [BLOCK][201]
        float *pw = fftwf_malloc(sizeof(float) * NBIN * BLOCK);                    // [201][BLOCK]
        float *acc = fftwf_malloc(sizeof(float) * S2S_MEL_BINS * BLOCK);           // [128][BLOCK]
        if (!in || !spec || !pw || !acc) oom = 1;
        // Round-robin blocks: the audio sits at the front and the cheap padding at the back, so contiguous
        // ranges would leave one thread all the work.
#pragma omp for schedule(static, 1)
        for (int64_t blk = 0; blk < nblocks; blk++) {
            if (oom) continue;
            int64_t t0 = blk * BLOCK;
            int nt = (int)(F - t0 < BLOCK ? F - t0 : BLOCK);
            int64_t first = t0 * S2S_MEL_HOP - PAD, last_end = (t0 + nt - 1) * S2S_MEL_HOP + PAD;
            if (first >= n && last_end <= F * S2S_MEL_HOP) {  // wholly in the zero padding: power 0
                for (int b = 0; b < S2S_MEL_BINS; b++) memset(mel + b * F + t0, 0, sizeof(float) * nt);
                continue;
            }
            int32_t mx = block_compute(m, x, n, F, t0, nt, in, spec, pw, acc, mel);
            pmax = mx > pmax ? mx : pmax;
        }
        fftwf_free(in);
        fftwf_free(spec);
        fftwf_free(pw);
        fftwf_free(acc);
    }
    if (oom) return s2s_derr_set(err, "logmel: out of memory");
    // Pass 2: log10(max(x, 1e-10)), floored at max - 8, is log10 of x clamped at max(1e-10, pmax * 1e-8)
    // (log10 is monotone), so the floor costs one integer max inside the vectorised log.
    float pm;
    memcpy(&pm, &pmax, 4);
    float lo = (float)((double)pm * 1e-8);
    int32_t lo_bits = float_bits(lo > 1e-10f ? lo : 1e-10f);
    const int64_t total = (int64_t)S2S_MEL_BINS * F, chunk = 4096;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < total; i += chunk) log10_scale(mel + i, total - i < chunk ? total - i : chunk, lo_bits);
    return 0;
}

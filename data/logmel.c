// logmel.c — Whisper log-mel (see logmel.h for the definition) with FFTW.
//
// The transform is double precision. The reference (torch, float32) is itself ~3e-5 away from a float64
// computation on speech; an FFTW float transform here was another ~4e-5 away, together 7e-5 of the 1e-4
// budget, while in double the gap to the reference is the reference's own rounding (2.8e-5). It costs 1.4x
// on fully voiced 30 s chunks. The 400-point real transform is done as a 200-point complex one (even
// samples as the real part, odd as the imaginary) and split afterwards, the textbook route: FFTW's own r2c
// plan for n = 400 was the slower of the two here.
//
// Work is done in blocks of BLOCK frames so that the inner loops run across frames: the power spectrum of a
// block is stored bin-major [201][BLOCK], the sparse filter bank (each FFT bin feeds at most two filters)
// then accumulates whole BLOCK-wide vectors, and each mel row of the block lands contiguously in the
// [128, F] output. Blocks lying wholly in the zero padding are not transformed: their power is exactly 0,
// as in the reference.
#include "logmel.h"
#include <fftw3.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define HALF (S2S_MEL_NFFT / 2)  // 200: the complex transform length
#define NBIN (HALF + 1)          // 201 rfft bins
#define BLOCK 16                 // frames per block: one AVX-512 vector of floats (8 and 32 measured slower)
#define PAD (S2S_MEL_NFFT / 2)   // centred STFT: reflect-pad 200 each side

typedef float f32xB __attribute__((vector_size(BLOCK * sizeof(float))));  // one value per frame of a block

struct s2s_logmel {
    fftw_plan plan;  // BLOCK complex transforms of 200: in [BLOCK][200] -> out [200][BLOCK]
    double window[S2S_MEL_NFFT];
    double tw_re[NBIN], tw_im[NBIN];  // exp(-2 pi i k / 400), k = 0..200
    // Filter m covers bins [lo[m], lo[m] + len[m]) with weights w[off[m] ...]: the nonzeros of the bank.
    int lo[S2S_MEL_BINS], len[S2S_MEL_BINS], off[S2S_MEL_BINS];
    float *w;  // [nnz]
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

// FFTW's planner and plan destruction share global state and are not thread-safe (executing a plan is), so
// objects made and freed on several loader threads must take turns.
static pthread_mutex_t fftw_planner_lock = PTHREAD_MUTEX_INITIALIZER;

int s2s_logmel_new(s2s_logmel **out, s2s_derr *err) {
    s2s_logmel *m = calloc(1, sizeof *m);
    float(*dense)[NBIN] = malloc(sizeof(float) * S2S_MEL_BINS * NBIN);
    double *in = fftw_malloc(sizeof(double) * BLOCK * S2S_MEL_NFFT);
    fftw_complex *spec = fftw_malloc(sizeof(fftw_complex) * BLOCK * HALF);
    if (!m || !dense || !in || !spec) goto oom;
    for (int k = 0; k < NBIN; k++) {
        m->tw_re[k] = cos(-2.0 * M_PI * k / S2S_MEL_NFFT);
        m->tw_im[k] = sin(-2.0 * M_PI * k / S2S_MEL_NFFT);
    }
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
        memcpy(m->w + m->off[b], &dense[b][m->lo[b]], sizeof(float) * m->len[b]);
    // FFTW_ESTIMATE, not MEASURE: a measured plan can differ between runs and so change the low bits of the
    // mel, and training must be reproducible (a resumed run recomputes the same features bit for bit).
    int n = HALF;
    pthread_mutex_lock(&fftw_planner_lock);
    m->plan = fftw_plan_many_dft(1, &n, BLOCK, (fftw_complex *)in, NULL, 1, HALF, spec, NULL, BLOCK, 1,
                                  FFTW_FORWARD, FFTW_ESTIMATE | FFTW_DESTROY_INPUT);
    pthread_mutex_unlock(&fftw_planner_lock);
    if (!m->plan) {
        s2s_derr_set(err, "logmel: FFTW could not plan a %d-point complex transform", HALF);
        goto fail;
    }
    free(dense);
    fftw_free(in);
    fftw_free(spec);
    *out = m;
    return 0;
oom:
    s2s_derr_set(err, "logmel: out of memory");
fail:
    if (m) free(m->w);
    free(m);
    free(dense);
    fftw_free(in);
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

int64_t s2s_logmel_padded_frames(int64_t n) {
    return (n + S2S_MEL_CHUNK_SAMPLES - 1) / S2S_MEL_CHUNK_SAMPLES * S2S_MEL_CHUNK_FRAMES;
}

int64_t s2s_logmel_valid_frames(int64_t n) { return (n + S2S_MEL_HOP - 1) / S2S_MEL_HOP; }

// ---- compute --------------------------------------------------------------------------------------------

// Windowed frame t of the reflect-padded, zero-padded signal (P samples) into dst[400].
static void frame_gather(const float *x, int64_t n, int64_t P, int64_t t, const double *win, double *dst) {
    int64_t j0 = t * S2S_MEL_HOP - PAD;
    if (j0 >= 0 && j0 + S2S_MEL_NFFT <= n) {  // the common case: wholly inside the audio
        for (int i = 0; i < S2S_MEL_NFFT; i++) dst[i] = (double)x[j0 + i] * win[i];
        return;
    }
    for (int i = 0; i < S2S_MEL_NFFT; i++) {
        int64_t j = j0 + i;
        if (j < 0) j = -j;                       // reflect (numpy 'reflect': the edge sample is not repeated)
        if (j >= P) j = 2 * (P - 1) - j;
        dst[i] = (double)(j < n ? x[j] : 0.0f) * win[i];
    }
}

// One block of frames [t0, t0 + nt): writes the mel power into mel[b * F + t]; returns the bits of the
// block's largest value.
static int32_t block_compute(const s2s_logmel *m, const float *x, int64_t n, int64_t F, int64_t t0, int nt,
                             double *restrict in, fftw_complex *restrict spec, float *restrict pw,
                             float *restrict acc, float *restrict mel) {
    const int64_t P = F * S2S_MEL_HOP;
    for (int f = 0; f < BLOCK; f++) {
        if (f < nt) frame_gather(x, n, P, t0 + f, m->window, in + f * S2S_MEL_NFFT);
        else memset(in + f * S2S_MEL_NFFT, 0, sizeof(double) * S2S_MEL_NFFT);
    }
    // z[n] = x[2n] + i x[2n+1]: each frame's floats read as 200 complex values; Z = FFT200(z), written
    // bin-major so that the split below runs across frames.
    fftw_execute_dft(m->plan, (fftw_complex *)in, spec);  // spec [200][BLOCK]
    // X[k] = E[k] + W^k O[k] with E = (Z[k] + conj Z[200-k]) / 2 and O = -i (Z[k] - conj Z[200-k]) / 2 the
    // spectra of the even and odd samples (Z[200] = Z[0]); pw [201][BLOCK] = |X|^2, computed from 2X.
    for (int k = 0; k < NBIN; k++) {
        const double *za = (const double *)(spec + (k == HALF ? 0 : k) * BLOCK);      // [BLOCK][2]
        const double *zb = (const double *)(spec + (k == 0 ? 0 : HALF - k) * BLOCK);  // [BLOCK][2]
        const double wr = m->tw_re[k], wi = m->tw_im[k];
        float *p = pw + k * BLOCK;
        for (int f = 0; f < BLOCK; f++) {
            double ar = za[2 * f], ai = za[2 * f + 1], br = zb[2 * f], bi = zb[2 * f + 1];
            double er = ar + br, ei = ai - bi, or_ = ai + bi, oi = br - ar;
            double xr = er + wr * or_ - wi * oi;
            double xi = ei + wr * oi + wi * or_;
            p[f] = (float)(0.25 * (xr * xr + xi * xi));
        }
    }
    for (int b = 0; b < S2S_MEL_BINS; b++) {  // acc [128][BLOCK] = filters (sparse) x pw
        f32xB a = {0};  // a vector type, so the accumulator stays in registers
        const float *w = m->w + m->off[b];
        const float *p = pw + m->lo[b] * BLOCK;
        for (int k = 0; k < m->len[b]; k++) {
            f32xB v;
            memcpy(&v, p + k * BLOCK, sizeof v);
            a += w[k] * v;
        }
        memcpy(acc + b * BLOCK, &a, sizeof a);
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
        double *in = fftw_malloc(sizeof(double) * BLOCK * S2S_MEL_NFFT);           // [BLOCK][400]
        fftw_complex *spec = fftw_malloc(sizeof(fftw_complex) * HALF * BLOCK);  // [200][BLOCK]
        float *pw = fftw_malloc(sizeof(float) * NBIN * BLOCK);                    // [201][BLOCK]
        float *acc = fftw_malloc(sizeof(float) * S2S_MEL_BINS * BLOCK);           // [128][BLOCK]
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
        fftw_free(in);
        fftw_free(spec);
        fftw_free(pw);
        fftw_free(acc);
    }
    if (oom) return s2s_derr_set(err, "logmel: out of memory");
    // Pass 2: log10(max(x, 1e-10)) floored at (its max - 8) is log10 of x clamped at max(1e-10, pmax * 1e-8),
    // log10 being monotone, so the floor costs one integer max inside the vectorised log. (The reference
    // floors after the log; the two differ by rounding, ~1e-7.)
    float pm;
    memcpy(&pm, &pmax, 4);
    float lo = (float)((double)pm * 1e-8);
    int32_t lo_bits = float_bits(lo > 1e-10f ? lo : 1e-10f);
    const int64_t total = (int64_t)S2S_MEL_BINS * F, chunk = 4096;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < total; i += chunk) log10_scale(mel + i, total - i < chunk ? total - i : chunk, lo_bits);
    return 0;
}

// units.h — discrete speech units: k-means over pooled log-mel frames (docs/units.md).
//
// A unit is the index of the nearest centroid of one 80 ms feature frame: the 128-bin Whisper log-mel of
// data/logmel.h (100 frames/s, the valid frames of exactly what the audio encoder sees), mean-pooled over 8
// frames to 12.5 Hz (the rate of OpenS2S's GLM-4-Voice units), optionally with the utterance's mean frame
// subtracted. `s2s units fit` learns the centroids (k-means++ then Lloyd), `s2s units encode` maps audio to unit
// sequences in the forms `s2s prep` reads (`<|audio_N|>` strings or index lists).
//
// Everything here is deterministic: for a given seed and input order the codebook, the units and every
// intermediate value are the same bit for bit whatever the thread count (per-frame work is independent,
// every sum over frames runs in a fixed order in double precision).
#pragma once
#include <stdint.h>
#include <stdio.h>
#include "data/errors.h"
#include "data/audio/logmel.h"

#define S2S_UNITS_POOL 8            // mel frames per unit frame: 100 Hz / 8 = 12.5 Hz
#define S2S_UNITS_DIM S2S_MEL_BINS  // a unit frame is one pooled log-mel column
#define S2S_UNITS_MAX_K 16384       // the TTS vocabulary's <|audio_0|> .. <|audio_16383|>

typedef enum { S2S_UNITS_NORM_NONE = 0, S2S_UNITS_NORM_UTTERANCE_MEAN = 1 } s2s_units_norm;

// ---- features (units_features.c) ------------------------------------------------------------------------------

// Unit frames of n samples at 16 kHz: ceil(ceil(n / 160) / 8). The last frame pools the 1..8 mel frames left.
int64_t s2s_units_frames(int64_t n);

// Pooled features of one 16 kHz mono signal: feat [T, 128] (row-major, T = s2s_units_frames(n)), malloc'd.
// The mel is s2s_logmel_compute over the 30 s-padded length (as the encoder sees it); frame t is the mean of
// mel columns [8t, min(8t + 8, V)), V = ceil(n / 160); with NORM_UTTERANCE_MEAN the mean of the T rows (in
// double) is subtracted from each. `what` names the audio in errors.
int s2s_units_features(const s2s_logmel *lm, const float *pcm, int64_t n, s2s_units_norm norm, float **feat,
                       int64_t *T, const char *what, s2s_derr *e);

// Loads an audio spec (data/audio.h) and computes its features.
int s2s_units_features_file(const s2s_logmel *lm, const char *spec, s2s_units_norm norm, float **feat, int64_t *T,
                            s2s_derr *e);
// The same for count specs, one audio per OpenMP thread (an utterance's log-mel is too small to share out well):
// feat[i], T[i] as above, or errs[i] set and feat[i] = NULL. Returns the number of failures.
int64_t s2s_units_features_batch(const s2s_logmel *lm, const char *const *specs, int64_t count, s2s_units_norm norm,
                                 float **feat, int64_t *T, s2s_derr *errs);

// ---- k-means (units_kmeans.c) -----------------------------------------------------------------------------------
// x is [n, dim] float32 row-major throughout. Squared distances are summed in double over float32 differences.

// splitmix64: the generator behind every random choice (k-means++, frame sampling); reproducible from Python.
static inline uint64_t s2s_units_rng_next(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
// A double in [0, 1): the top 53 bits.
static inline double s2s_units_rng_uniform(uint64_t *state) { return (double)(s2s_units_rng_next(state) >> 11) * 0x1.0p-53; }

// Greedy k-means++ (Arthur & Vassilvitskii 2007; scikit-learn's variant): picks[0] = floor(u * n); for each next
// pick, L = 2 + floor(ln k) candidates are drawn, each the first i with cumsum(D2)[i] > u * sum(D2) (D2 = squared
// distance to the nearest pick so far, u from splitmix64(seed)), and the candidate giving the lowest
// sum(min(D2, d(x, candidate)^2)) is kept (the first on a tie). Fails when fewer than k frames are distinct (sum(D2)
// reaches 0) or k > n.
int s2s_kmeans_pp(const float *x, int64_t n, int dim, int k, uint64_t seed, int64_t *picks, s2s_derr *e);

// Nearest centroid of each frame (lowest index on a tie) into assign [n]; dist [n] (may be NULL) gets the squared
// distance. c is [k, dim].
void s2s_kmeans_assign(const float *x, int64_t n, int dim, const float *c, int k, int32_t *assign, double *dist);

typedef struct s2s_kmeans_stats {
    int iterations;  // Lloyd updates run
    int converged;   // 1 when the last assignment equalled the previous one
    int relocated;   // empty clusters re-seeded
    double inertia;  // mean squared distance of a frame to its centroid, final assignment
} s2s_kmeans_stats;

// Lloyd's algorithm from the centroids in c [k, dim] (updated in place): repeat { assign; stop if unchanged;
// re-seed empty clusters; c = means of the assignment } at most max_iters times. assign [n] and counts [k]
// (may be NULL) end as the assignment to the final c. An empty cluster j (in increasing j) takes the frame
// farthest from its centroid (lowest index on a tie) among frames whose cluster keeps at least one other frame.
int s2s_kmeans_lloyd(const float *x, int64_t n, int dim, int k, int max_iters, float *c, int32_t *assign,
                     int64_t *counts, s2s_kmeans_stats *st, s2s_derr *e);

// ---- codebooks (units_io.c) -------------------------------------------------------------------------------------

typedef struct s2s_units_codebook {
    int k, dim;            // centroids [k, dim]; dim = S2S_UNITS_DIM
    int pool, mel_bins, sample_rate, hop;
    s2s_units_norm norm;
    uint64_t seed;
    int max_iters;
    int from_init;        // Lloyd started from given centroids (metadata init "codebook"), not k-means++
    s2s_kmeans_stats stats;
    int64_t frames;       // frames clustered (after --max-frames sampling)
    int64_t frames_seen;  // frames of all inputs
    int64_t utterances;   // audios read
    float *centroids;     // [k, dim]
    int64_t *counts;      // [k] frames per cluster in the final assignment
} s2s_units_codebook;

// Writes the codebook as safetensors (tensors `centroids` F32 [k, dim], `counts` I64 [k]; metadata in
// docs/units.md) through NAME.tmp + rename, so a file under its final name is whole.
int s2s_units_codebook_save(const s2s_units_codebook *cb, const char *path, s2s_derr *e);
// Reads and validates one (header, tensors, metadata this build can encode with); errors name the file.
int s2s_units_codebook_load(s2s_units_codebook *cb, const char *path, s2s_derr *e);
void s2s_units_codebook_free(s2s_units_codebook *cb);
const char *s2s_units_norm_name(s2s_units_norm n);

// ---- fitting (units_fit.c) --------------------------------------------------------------------------------------

typedef struct s2s_units_fit_opts {
    const char *const *inputs;  // audio specs, or .jsonl manifests (every audio they name)
    int n_inputs;
    const char *audio_root;  // relative manifest audio paths are taken from here (NULL: as given)
    int k;
    uint64_t seed;
    int max_iters;
    int64_t max_frames;  // > 0: cluster a uniform sample of this many frames (reservoir, seeded)
    s2s_units_norm norm;
    const float *init;  // [k, dim] centroids to start Lloyd from instead of k-means++ (refining a codebook); NULL
    FILE *log;          // progress (NULL: none)
} s2s_units_fit_opts;

// What fitting saw, for tests and `--save-frames`: the clustered frames and the k-means++ picks.
typedef struct s2s_units_fit_trace {
    float *frames;   // [n, dim], the frames clustered, in reservoir order
    int64_t n;
    int64_t *picks;  // [k] k-means++ picks (rows of frames); -1 with opts.init
    int32_t *assign; // [n] final assignment
} s2s_units_fit_trace;

// Gathers the frames of every input, samples --max-frames of them, runs k-means++ and Lloyd. trace may be NULL.
int s2s_units_fit(const s2s_units_fit_opts *o, s2s_units_codebook *cb, s2s_units_fit_trace *trace, s2s_derr *e);
void s2s_units_fit_trace_free(s2s_units_fit_trace *t);

// ---- encoding (units_encode.c) ----------------------------------------------------------------------------------

typedef enum { S2S_UNITS_FMT_STRING = 0, S2S_UNITS_FMT_LIST = 1 } s2s_units_format;

// Units of one audio: *units [*n] (malloc'd). dedup collapses runs of the same unit into one.
int s2s_units_encode_audio(const s2s_units_codebook *cb, const s2s_logmel *lm, const char *spec, int dedup,
                           int32_t **units, int64_t *n, s2s_derr *e);
// The units of count audios, one per OpenMP thread: units[i], n[i], or errs[i] set and units[i] = NULL. Returns
// the number of failures.
int64_t s2s_units_encode_batch(const s2s_units_codebook *cb, const s2s_logmel *lm, const char *const *specs,
                               int64_t count, int dedup, int32_t **units, int64_t *n, s2s_derr *errs);
// Appends units in a form docs/prep.md reads: "<|audio_3|><|audio_7|>" or "[3, 7]". Returns a malloc'd string.
char *s2s_units_format_str(const int32_t *units, int64_t n, s2s_units_format fmt);

typedef struct s2s_units_manifest_opts {
    const char *in, *out;    // JSONL in; JSONL out (written via OUT.tmp + rename)
    const char *audio_root;  // relative audio paths are taken from here (NULL: as given)
    int dedup;
    s2s_units_format format;
    FILE *log;  // bad lines (file:line: reason) and the summary; NULL = stderr
} s2s_units_manifest_opts;

typedef struct s2s_units_manifest_stats {
    int64_t records, encoded_items, errors, units;
} s2s_units_manifest_stats;

// Rewrites a manifest so it gains units where `s2s prep` wants them: in {"messages"} dialogues every assistant
// content item with an `audio` gets `speech_units` (and its `audio` emptied: OpenS2S has no assistant audio); a
// {"text", "audio"} record without "continuation" becomes {"text", "units"} (stage 2a). Other records pass through.
// A line that fails is reported as file:line: reason and left out. Returns -1 on an I/O failure (or when any
// line failed: the output is still written, with the good lines).
int s2s_units_encode_manifest(const s2s_units_codebook *cb, const s2s_units_manifest_opts *o,
                              s2s_units_manifest_stats *st, s2s_derr *e);

// audio.h — load speech as float32 mono 16 kHz, the input of the log-mel front end.
//
// Files are decoded by libsndfile (wav, flac, ogg/vorbis, ogg/opus, mp3 where the library has it; the
// format is taken from the content, not the extension). Integer PCM is scaled as libsndfile and Python's
// soundfile do (16-bit: x / 32768). Channels are averaged to mono, then the signal is resampled to
// 16 kHz with soxr at high quality (SOXR_HQ), as librosa.load(sr=16000) does with its default
// res_type 'soxr_hq'; the length is ceil(n * 16000 / rate), librosa's fix_length.
//
// A spec names the audio the way OpenS2S's get_waveform does (src/utils.py):
//   path                   the whole file
//   path:start:frames      `frames` frames from frame `start`, counted at the file's own rate;
//                          frames = -1 reads to the end
//   archive.zip:start:len  a file stored uncompressed inside a zip: `len` bytes from byte `start`
// The last two ':'-separated fields must be integers for a spec to be a segment, so a path may itself
// contain ':'. Unlike soundfile (which silently returns less), a segment that runs past the end of the
// file is an error: the manifest and the audio disagree.
#pragma once
#include <stdint.h>
#include "data/errors.h"

#define S2S_AUDIO_RATE 16000
// Shorter audio (after resampling) is rejected: below one 25 ms analysis window the encoder gets fewer
// than 3 mel frames, i.e. no output frame at all ((L-1)//2+1 = 1, then (1-2)//2+1 = 0).
#define S2S_AUDIO_MIN_SAMPLES 400

typedef struct s2s_audio_spec {
    char path[4096];
    int64_t start;   // first frame (or byte, for .zip); 0 for a whole file
    int64_t frames;  // frame (or byte) count; -1 = to the end
    int is_segment;  // the spec had :start:frames
} s2s_audio_spec;

// Splits "path[:start:frames]". Fails (naming the spec) on an empty path or a negative start.
int s2s_audio_spec_parse(const char *spec, s2s_audio_spec *out, s2s_derr *err);

// Loads the audio a spec names as float32 mono at S2S_AUDIO_RATE. *pcm ([*n] samples) is malloc'd and
// owned by the caller. Unreadable, empty, non-finite, out-of-range segments and audio shorter than
// S2S_AUDIO_MIN_SAMPLES are errors whose message names the path.
int s2s_audio_load(const char *spec, float **pcm, int64_t *n, s2s_derr *err);

// Averages interleaved channels: in [n, channels] -> out [n]. out may alias in.
void s2s_audio_downmix(const float *in, int64_t n, int channels, float *out);

// Resamples mono float32 from rate_in to rate_out with soxr HQ. *out ([*n_out], n_out = ceil(n * rate_out /
// rate_in), zero-filled where soxr delivers less) is malloc'd. `what` names the source in errors.
int s2s_audio_resample(const float *in, int64_t n, double rate_in, double rate_out, float **out, int64_t *n_out,
                       const char *what, s2s_derr *err);

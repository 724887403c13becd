// audio.c — decode (libsndfile), downmix, resample (soxr HQ) to float32 mono 16 kHz. See audio.h.
#include "audio.h"
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sndfile.h>
#include <soxr.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// ---- spec parsing -----------------------------------------------------------------------------------

// Parses a whole decimal integer (optionally negative); 0 on success.
static int parse_i64(const char *s, size_t len, int64_t *v) {
    if (len == 0 || len > 20) return -1;
    char buf[24];
    memcpy(buf, s, len);
    buf[len] = 0;
    char *end;
    errno = 0;
    long long x = strtoll(buf, &end, 10);
    if (errno || *end || end == buf) return -1;
    *v = x;
    return 0;
}

int s2s_audio_spec_parse(const char *spec, s2s_audio_spec *out, s2s_derr *err) {
    memset(out, 0, sizeof *out);
    out->frames = -1;
    size_t len = strlen(spec);
    // A segment only when the last two fields are integers, so "C:/x.wav" or "a:b.wav" stay paths.
    const char *c2 = memrchr(spec, ':', len);
    const char *c1 = c2 && c2 > spec ? memrchr(spec, ':', (size_t)(c2 - spec)) : NULL;
    int64_t start, frames;
    size_t path_len = len;
    if (c1 && !parse_i64(c1 + 1, (size_t)(c2 - c1 - 1), &start) &&
        !parse_i64(c2 + 1, len - (size_t)(c2 + 1 - spec), &frames)) {
        path_len = (size_t)(c1 - spec);
        if (start < 0) return s2s_derr_set(err, "%s: segment start %lld is negative", spec, (long long)start);
        if (frames < -1)
            return s2s_derr_set(err, "%s: segment length %lld is negative (only -1, to the end, is allowed)", spec,
                                (long long)frames);
        out->start = start;
        out->frames = frames;
        out->is_segment = 1;
    }
    if (path_len == 0) return s2s_derr_set(err, "'%s': empty audio path", spec);
    if (path_len >= sizeof out->path) return s2s_derr_set(err, "%.64s...: audio path too long", spec);
    memcpy(out->path, spec, path_len);
    out->path[path_len] = 0;
    return 0;
}

// ---- decoding from memory (a member stored in a zip) --------------------------------------------------

typedef struct membuf {
    const unsigned char *data;
    sf_count_t len, pos;
} membuf;

static sf_count_t mem_len(void *u) { return ((membuf *)u)->len; }
static sf_count_t mem_tell(void *u) { return ((membuf *)u)->pos; }
static sf_count_t mem_seek(sf_count_t off, int whence, void *u) {
    membuf *m = u;
    sf_count_t p = whence == SEEK_SET ? off : whence == SEEK_CUR ? m->pos + off : m->len + off;
    if (p < 0 || p > m->len) return -1;
    return m->pos = p;
}
static sf_count_t mem_read(void *dst, sf_count_t n, void *u) {
    membuf *m = u;
    if (n > m->len - m->pos) n = m->len - m->pos;
    memcpy(dst, m->data + m->pos, (size_t)n);
    m->pos += n;
    return n;
}
static sf_count_t mem_write(const void *src, sf_count_t n, void *u) { return 0; }

// Reads `len` bytes from `start` of a stored zip (OpenS2S's .zip:offset:length).
static int read_bytes(const char *path, int64_t start, int64_t len, unsigned char **out, int64_t *out_len,
                      s2s_derr *err) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return s2s_derr_set(err, "%s: cannot open: %s", path, strerror(errno));
    off_t size = lseek(fd, 0, SEEK_END);
    if (len < 0) len = size - start;
    if (start > size || len > size - start) {
        close(fd);
        return s2s_derr_set(err, "%s: byte range %lld+%lld is outside the file (%lld bytes)", path,
                            (long long)start, (long long)len, (long long)size);
    }
    unsigned char *buf = malloc(len ? (size_t)len : 1);
    int64_t got = 0;
    while (buf && got < len) {
        ssize_t r = pread(fd, buf + got, (size_t)(len - got), start + got);
        if (r <= 0) break;
        got += r;
    }
    close(fd);
    if (!buf || got < len) {
        free(buf);
        return s2s_derr_set(err, "%s: read of %lld bytes at %lld failed", path, (long long)len, (long long)start);
    }
    *out = buf;
    *out_len = len;
    return 0;
}

// ---- load --------------------------------------------------------------------------------------------

static int ends_with_zip(const char *p) {
    size_t n = strlen(p);
    return n >= 4 && !strcasecmp(p + n - 4, ".zip");
}

// Decodes frames [start, start+frames) (frames -1: to the end) to interleaved float [*n, *channels].
static int decode(const s2s_audio_spec *sp, float **pcm, int64_t *n, int *channels, int *rate, s2s_derr *err) {
    SF_INFO info;
    memset(&info, 0, sizeof info);
    unsigned char *bytes = NULL;
    membuf mb = {0};
    SF_VIRTUAL_IO vio = {mem_len, mem_seek, mem_read, mem_write, mem_tell};
    int64_t start = sp->start, frames = sp->frames;
    SNDFILE *f;
    if (sp->is_segment && ends_with_zip(sp->path)) {
        // The segment is a byte range holding a whole audio file.
        int64_t len = 0;
        if (read_bytes(sp->path, start, frames, &bytes, &len, err)) return -1;
        mb.data = bytes;
        mb.len = len;
        f = sf_open_virtual(&vio, SFM_READ, &info, &mb);
        start = 0;
        frames = -1;
    } else {
        f = sf_open(sp->path, SFM_READ, &info);
    }
    if (!f) {
        free(bytes);
        return s2s_derr_set(err, "%s: cannot read audio: %s", sp->path, sf_strerror(NULL));
    }
    int rc = -1;
    float *buf = NULL;
    if (info.channels < 1 || info.samplerate < 1) {
        s2s_derr_set(err, "%s: bad header (%d channels, %d Hz)", sp->path, info.channels, info.samplerate);
        goto done;
    }
    if (start > info.frames) {
        s2s_derr_set(err, "%s: segment start %lld is past the end (%lld frames)", sp->path, (long long)start,
                     (long long)info.frames);
        goto done;
    }
    if (frames < 0) frames = info.frames - start;
    if (frames > info.frames - start) {
        s2s_derr_set(err, "%s: segment %lld+%lld runs past the end (%lld frames)", sp->path, (long long)start,
                     (long long)frames, (long long)info.frames);
        goto done;
    }
    if (frames == 0) {
        s2s_derr_set(err, "%s: no audio samples%s", sp->path, sp->is_segment ? " in the segment" : "");
        goto done;
    }
    if (start > 0 && sf_seek(f, start, SEEK_SET) != start) {
        s2s_derr_set(err, "%s: cannot seek to frame %lld: %s", sp->path, (long long)start, sf_strerror(f));
        goto done;
    }
    buf = malloc((size_t)frames * info.channels * sizeof(float));  // [frames, channels]
    if (!buf) {
        s2s_derr_set(err, "%s: out of memory for %lld frames", sp->path, (long long)frames);
        goto done;
    }
    sf_count_t got = sf_readf_float(f, buf, frames);
    if (got != frames) {
        s2s_derr_set(err, "%s: truncated or corrupt: decoded %lld of %lld frames (%s)", sp->path, (long long)got,
                     (long long)frames, sf_strerror(f));
        goto done;
    }
    *pcm = buf;
    buf = NULL;
    *n = frames;
    *channels = info.channels;
    *rate = info.samplerate;
    rc = 0;
done:
    free(buf);
    sf_close(f);
    free(bytes);
    return rc;
}

void s2s_audio_downmix(const float *in, int64_t n, int channels, float *out) {
    if (channels == 1) {
        if (out != in) memmove(out, in, (size_t)n * sizeof(float));
        return;
    }
    // Sum in channel order then divide, as numpy's mean over the channel axis does (librosa.to_mono).
    for (int64_t i = 0; i < n; i++) {
        float s = in[i * channels];
        for (int c = 1; c < channels; c++) s += in[i * channels + c];
        out[i] = s / (float)channels;
    }
}

int s2s_audio_resample(const float *in, int64_t n, double rate_in, double rate_out, float **out, int64_t *n_out,
                       const char *what, s2s_derr *err) {
    // librosa: n_samples = int(np.ceil(n * (float(target_sr) / orig_sr))), then fix_length to it.
    int64_t want = (int64_t)ceil((double)n * (rate_out / rate_in));
    size_t cap = (size_t)want + 64;  // soxr may deliver a sample more than `want` before trimming
    float *y = calloc(cap, sizeof(float));
    if (!y) return s2s_derr_set(err, "%s: out of memory resampling %lld samples", what, (long long)n);
    soxr_error_t e = NULL;
    soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
    soxr_quality_spec_t q = soxr_quality_spec(SOXR_HQ, 0);
    soxr_t s = soxr_create(rate_in, rate_out, 1, &e, &io, &q, NULL);
    size_t pos = 0, idone = 0, odone = 0;
    if (!e) e = soxr_process(s, in, (size_t)n, &idone, y, cap, &odone);
    pos = odone;
    if (!e && idone != (size_t)n) e = "input not consumed";
    while (!e && pos < cap) {  // flush the filter's delay line
        e = soxr_process(s, NULL, 0, NULL, y + pos, cap - pos, &odone);
        if (!odone) break;
        pos += odone;
    }
    soxr_delete(s);
    if (e) {
        free(y);
        return s2s_derr_set(err, "%s: resampling %g -> %g Hz failed: %s", what, rate_in, rate_out, e);
    }
    // Samples soxr did not deliver stay zero (calloc), as fix_length pads them.
    *out = y;
    *n_out = want;
    return 0;
}

int s2s_audio_load(const char *spec, float **pcm, int64_t *n, s2s_derr *err) {
    s2s_audio_spec sp;
    if (s2s_audio_spec_parse(spec, &sp, err)) return -1;
    float *x = NULL;
    int64_t frames = 0;
    int channels = 0, rate = 0;
    if (decode(&sp, &x, &frames, &channels, &rate, err)) return -1;
    s2s_audio_downmix(x, frames, channels, x);  // x: [frames, channels] -> [frames]
    for (int64_t i = 0; i < frames; i++)
        if (!isfinite(x[i])) {
            free(x);
            return s2s_derr_set(err, "%s: non-finite sample at frame %lld", spec, (long long)(sp.start + i));
        }
    if (rate != S2S_AUDIO_RATE) {
        float *y;
        int64_t ny;
        int rc = s2s_audio_resample(x, frames, rate, S2S_AUDIO_RATE, &y, &ny, spec, err);
        free(x);
        if (rc) return -1;
        x = y;
        frames = ny;
    }
    if (frames < S2S_AUDIO_MIN_SAMPLES) {
        free(x);
        return s2s_derr_set(err, "%s: audio too short: %lld samples at 16 kHz (%.1f ms); at least %d (25 ms) needed",
                            spec, (long long)frames, frames / 16.0, S2S_AUDIO_MIN_SAMPLES);
    }
    *pcm = x;
    *n = frames;
    return 0;
}

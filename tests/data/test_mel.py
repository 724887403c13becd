"""`s2s mel` against Hugging Face: audio loading (libsndfile, OpenS2S path:start:frames and .zip segments, downmix,
soxr HQ resampling as librosa does) and the 128-bin Whisper log-mel (WhisperFeatureExtractor as OpenS2S calls it,
padded to a multiple of 30 s) within 1e-4 absolute; planted errors (symmetric Hann, HTK mel scale, zero padding,
low-quality resampling) are told apart; broken inputs fail naming the path. The speed against transformers is
bench/bench_data.py's, not a test's.

usage: python3 tests/data/test_mel.py S2S_BINARY BUILD_DIR   (from the repository root; ctest does this)
"""
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
import zipfile

import numpy as np
import soundfile as sf
import soxr
from safetensors import safe_open
from transformers import WhisperFeatureExtractor
from transformers.audio_utils import mel_filter_bank
from transformers.utils import logging as hf_logging

S2S = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/s2s")
TOL = 1e-4
CHUNK = 480000  # 30 s at 16 kHz
failures = []
hf_logging.set_verbosity_error()
warnings.filterwarnings("ignore", message="At least one mel filter has all zero values")  # the HTK mutant
FE = WhisperFeatureExtractor(feature_size=128)


def check(cond, what):
    print(("ok:   " if cond else "FAIL: ") + what, flush=True)
    if not cond:
        failures.append(what)


def run_mel(spec, out, *flags, env=None):
    r = subprocess.run([S2S, "mel", "--audio", spec, "--out", out, *flags], capture_output=True, text=True, env=env)
    return r


def load_out(path):
    with safe_open(path, framework="np") as f:
        t = {k: f.get_tensor(k) for k in f.keys()}
        return t, f.metadata()


def reference_pcm(path, start=0, frames=-1):
    """librosa.load(path, sr=16000) restricted to a segment: soundfile float32, channel mean, soxr HQ,
    fix_length to ceil(n * 16000 / sr)."""
    y, sr = sf.read(path, dtype="float32", always_2d=True, start=start, frames=frames)
    y = y.mean(axis=1, dtype=np.float32) if y.shape[1] > 1 else y[:, 0]
    if sr == 16000:
        return y
    n = int(np.ceil(y.shape[-1] * (16000 / sr)))
    z = soxr.resample(y, sr, 16000, quality="soxr_hq")
    return np.pad(z, (0, max(0, n - len(z))))[:n]


def reference_mel(x):
    """OpenS2S: pad to a whole number of 30 s chunks (max_length) instead of the default truncation to 30 s."""
    length = (len(x) - 1) // CHUNK * CHUNK + CHUNK
    return FE(x, sampling_rate=16000, max_length=length, return_tensors="np").input_features[0]


def numpy_mel(x, window, filters, pad_mode="reflect"):
    """The definition in float64, with the pieces exposed so that a planted error can be put in."""
    length = (len(x) - 1) // CHUNK * CHUNK + CHUNK
    p = np.pad(np.pad(x.astype(np.float64), (0, length - len(x))), 200, mode=pad_mode)
    idx = np.arange(400)[None, :] + 160 * np.arange(length // 160 + 1)[:, None]
    power = np.abs(np.fft.rfft(p[idx] * window, axis=1)) ** 2
    lg = np.log10(np.maximum(filters.T @ power.T, 1e-10))[:, :-1]
    return (np.maximum(lg, lg.max() - 8.0) + 4.0) / 4.0


HANN = np.hanning(401)[:-1]
SLANEY = mel_filter_bank(201, 128, 0.0, 8000.0, 16000, norm="slaney", mel_scale="slaney")


def compare(name, spec, x_ref, tmp, pcm_tol=None):
    """Runs s2s on spec, checks shape / metadata / pcm / mel against the reference built from x_ref."""
    out = os.path.join(tmp, "".join(c if c.isalnum() else "_" for c in name) + ".safetensors")
    r = run_mel(spec, out, "--pad30", "--with-audio")
    check(r.returncode == 0, f"{name}: s2s mel exits 0 ({r.stderr.strip()})")
    if r.returncode:
        return None, None
    t, meta = load_out(out)
    mel, pcm = t["mel"], t["audio"]
    frames = (len(x_ref) - 1) // CHUNK * 3000 + 3000
    check(pcm.shape == x_ref.shape, f"{name}: {pcm.shape[0]} samples at 16 kHz, reference {x_ref.shape[0]}")
    if pcm_tol is not None and pcm.shape == x_ref.shape:
        d = float(np.abs(pcm - x_ref).max())
        check(d <= pcm_tol, f"{name}: 16 kHz signal equals librosa/soxr HQ (max diff {d:.2e} <= {pcm_tol:g})")
    check(mel.shape == (128, frames) and mel.dtype == np.float32, f"{name}: mel f32 [128, {frames}] ({mel.shape})")
    check(meta.get("valid_frames") == str((len(pcm) + 159) // 160), f"{name}: valid_frames = ceil(samples/160)")
    ref = reference_mel(x_ref)
    if mel.shape == ref.shape:
        # Both are float32 pipelines; the float64 rendering shows what each one's rounding contributes.
        exact = numpy_mel(x_ref, HANN, SLANEY)
        d, ds, dr = (float(np.abs(a - b).max()) for a, b in ((mel, ref), (mel, exact), (ref, exact)))
        check(d <= TOL, f"{name}: mel equals WhisperFeatureExtractor(128) (max diff {d:.2e}; to float64: "
                        f"s2s {ds:.2e}, transformers {dr:.2e})")
        check(ds <= TOL, f"{name}: mel equals the float64 definition ({ds:.2e})")
    return mel, pcm


def espeak(path, text):
    subprocess.run(["espeak-ng", "-w", path, text], check=True, capture_output=True)


def main():
    for tool in ("espeak-ng", "sox"):
        if not shutil.which(tool):
            print(f"FAIL: {tool} not found (launch/deps.sh installs it)")
            sys.exit(1)
    rng = np.random.default_rng(7)
    with tempfile.TemporaryDirectory() as tmp:
        P = lambda n: os.path.join(tmp, n)
        # ---- speech: espeak-ng writes 22.05 kHz, so this goes through the resampler ---------------------
        espeak(P("speech.wav"), "The quick brown fox jumps over the lazy dog. Speech features, please, "
               "exactly as the reference computes them.")
        info = sf.info(P("speech.wav"))
        check(info.samplerate == 22050, f"espeak-ng speech is {info.samplerate} Hz (exercises resampling)")
        x_speech = reference_pcm(P("speech.wav"))
        mel_speech, _ = compare("speech 22.05k", P("speech.wav"), x_speech, tmp, pcm_tol=1e-6)

        # ---- silence, clicks, noise: 16 kHz 16-bit PCM written by soundfile ----------------------------
        x = np.zeros(16000 * 3, np.float32)
        sf.write(P("silence.wav"), x, 16000, subtype="PCM_16")
        compare("silence", P("silence.wav"), reference_pcm(P("silence.wav")), tmp, pcm_tol=0)
        x = np.zeros(16000 * 4, np.float32)
        x[rng.integers(0, len(x), 30)] = rng.uniform(-0.9, 0.9, 30).astype(np.float32)
        x[[0, 1, len(x) - 1]] = [0.8, -0.5, 0.7]  # at the reflect-padded edges too
        sf.write(P("clicks.wav"), x, 16000, subtype="PCM_16")
        x_clicks = reference_pcm(P("clicks.wav"))
        mel_clicks, _ = compare("clicks", P("clicks.wav"), x_clicks, tmp, pcm_tol=0)
        x = (rng.standard_normal(16000 * 5) * 0.1).astype(np.float32)
        sf.write(P("noise.wav"), x, 16000, subtype="FLOAT")
        compare("white noise", P("noise.wav"), x, tmp, pcm_tol=0)

        # ---- longer than 30 s: 47 s of speech and noise -> two 30 s chunks -----------------------------
        reps = int(np.ceil(47 * 16000 / len(x_speech)))
        x_long = np.tile(x_speech, reps)[:47 * 16000] + (rng.standard_normal(47 * 16000) * 1e-3).astype(np.float32)
        sf.write(P("long47.wav"), x_long.astype(np.float32), 16000, subtype="FLOAT")
        mel_long, _ = compare("47 s", P("long47.wav"), x_long.astype(np.float32), tmp, pcm_tol=0)
        # The output must not depend on the thread count.
        env = dict(os.environ, OMP_NUM_THREADS="1")
        r = run_mel(P("long47.wav"), P("long47_1t.safetensors"), "--pad30", env=env)
        if r.returncode == 0 and mel_long is not None:
            m1 = load_out(P("long47_1t.safetensors"))[0]["mel"]
            check(np.array_equal(m1, mel_long), "47 s: 1 thread and OMP_NUM_THREADS threads give identical bits")
        # Without --pad30 the valid frames only.
        r = run_mel(P("long47.wav"), P("long47_valid.safetensors"))
        if r.returncode == 0 and mel_long is not None:
            mv = load_out(P("long47_valid.safetensors"))[0]["mel"]
            check(mv.shape == (128, 4700) and np.array_equal(mv, mel_long[:, :4700]),
                  f"47 s: default output is the first ceil(n/160) = 4700 frames ({mv.shape})")

        # ---- stereo 44.1 kHz flac and a 24 kHz ogg/vorbis, made with sox ----------------------------------
        subprocess.run(["sox", P("speech.wav"), "-r", "44100", "-c", "2", P("stereo.flac"), "remix", "1", "1v0.5"],
                       check=True)
        check(sf.info(P("stereo.flac")).channels == 2, "sox made a 2-channel 44.1 kHz flac")
        compare("stereo 44.1k flac", P("stereo.flac"), reference_pcm(P("stereo.flac")), tmp, pcm_tol=1e-6)
        subprocess.run(["sox", P("speech.wav"), "-r", "24000", P("speech.ogg")], check=True)
        # Vorbis decoders may differ in the last bits between libsndfile builds (Python's soundfile ships its own).
        compare("ogg/vorbis 24k", P("speech.ogg"), reference_pcm(P("speech.ogg")), tmp, pcm_tol=1e-5)

        # ---- OpenS2S segments ---------------------------------------------------------------------------
        compare("flac segment path:start:frames", P("stereo.flac") + ":11025:66150",
                reference_pcm(P("stereo.flac"), start=11025, frames=66150), tmp, pcm_tol=1e-6)
        compare("segment to the end (frames -1)", P("speech.wav") + ":5000:-1",
                reference_pcm(P("speech.wav"), start=5000), tmp, pcm_tol=1e-6)
        with zipfile.ZipFile(P("bundle.zip"), "w", zipfile.ZIP_STORED) as z:
            z.write(P("speech.wav"), "a/speech.wav")
            z.write(P("noise.wav"), "b/noise.wav")
        with zipfile.ZipFile(P("bundle.zip")) as z:
            zi = z.getinfo("b/noise.wav")
        with open(P("bundle.zip"), "rb") as f:  # data starts after the local header (30 bytes + name + extra)
            f.seek(zi.header_offset + 26)
            ln, le = np.frombuffer(f.read(4), "<u2")
        off = zi.header_offset + 30 + int(ln) + int(le)
        compare("zip member zip:offset:bytes", f"{P('bundle.zip')}:{off}:{zi.file_size}",
                sf.read(P("noise.wav"), dtype="float32")[0], tmp, pcm_tol=0)

        # ---- planted errors: the comparison must tell these apart from the real thing --------------------
        if mel_speech is not None and mel_clicks is not None:
            hann, slaney = HANN, SLANEY
            right = numpy_mel(x_speech, hann, slaney)
            check(np.abs(mel_speech - right).max() <= TOL,
                  f"float64 numpy rendering of the definition agrees ({np.abs(mel_speech - right).max():.2e})")
            mutants = {
                "symmetric Hann window": (mel_speech, numpy_mel(x_speech, np.hanning(400), slaney)),
                "HTK mel scale": (mel_speech, numpy_mel(x_speech, hann, mel_filter_bank(
                    201, 128, 0.0, 8000.0, 16000, norm="slaney", mel_scale="htk"))),
                # espeak's speech starts and ends in silence, so the edges are probed with the clicks
                "zero (not reflect) padding": (mel_clicks, numpy_mel(x_clicks, hann, slaney, pad_mode="constant")),
            }
            for what, (ours, bad) in mutants.items():
                d = float(np.abs(ours - bad).max())
                check(d > 10 * TOL, f"mutant '{what}' is caught (max diff {d:.2e} > {10 * TOL:g})")
            lq = soxr.resample(sf.read(P("speech.wav"), dtype="float32")[0], 22050, 16000, quality="LQ")
            pcm = load_out(P("speech_22_05k.safetensors"))[0]["audio"]
            n = min(len(lq), len(pcm))
            d = float(np.abs(pcm[:n] - lq[:n]).max())
            check(d > 1e-3, f"mutant 'soxr LQ resampling' is caught (max diff {d:.2e})")
            x_short = reference_mel(x_long[:CHUNK])  # HF's default: truncate to 30 s
            check(mel_long is not None and mel_long.shape[1] == 6000 and x_short.shape[1] == 3000,
                  "a 47 s input is two chunks (6000 frames), not truncated to 30 s")

        # ---- broken inputs: non-zero exit and the path in the message -------------------------------------
        open(P("empty.wav"), "wb").close()
        with open(P("garbage.flac"), "wb") as f:
            f.write(rng.integers(0, 256, 4096).astype(np.uint8).tobytes())
        sf.write(P("short.wav"), np.zeros(100, np.float32), 16000)
        sf.write(P("short8k.wav"), np.zeros(180, np.float32), 8000)  # 360 samples once at 16 kHz
        sf.write(P("nan.wav"), np.array([0.0, np.nan] * 1000, np.float32), 16000, subtype="FLOAT")
        bad = {"missing file": P("missing.wav"), "empty file": P("empty.wav"), "garbage bytes": P("garbage.flac"),
               "too short": P("short.wav"), "too short after resampling": P("short8k.wav"),
               "non-finite samples": P("nan.wav"), "segment past the end": P("speech.wav") + ":1000:99999999",
               "segment start past the end": P("speech.wav") + ":99999999:10"}
        for what, spec in bad.items():
            r = run_mel(spec, P("bad.safetensors"))
            path = spec.split(":")[0]
            check(r.returncode != 0 and path in r.stderr, f"{what}: exit {r.returncode}, message names the path "
                  f"({r.stderr.strip()})")
        check(not os.path.exists(P("bad.safetensors")), "no output file is written for a broken input")

        # ---- --bench: it names the FFT plan in use, the built-in wisdom where this FFTW build can run it, else
        # FFTW_ESTIMATE's; either way fixed. The speed against transformers is bench/bench_data.py's (bench/run.sh
        # --data): a test asserts results only, as a timing depends on what else the machine runs.
        r = subprocess.run([S2S, "mel", "--audio", P("speech.wav"), "--out", P("plan.safetensors"), "--bench", "1"],
                           capture_output=True, text=True)
        plan = r.stdout.split("plan ")[-1].strip() if "plan " in r.stdout else ""
        check(plan in ("wisdom", "estimate"), f"--bench names the FFT plan in use ({plan!r})")
        r = subprocess.run([S2S, "mel", "--find-wisdom"], capture_output=True, text=True)
        check(r.returncode == 0 and r.stdout.startswith("(fftw-3") and "fftw_wisdom" in r.stdout,
              f"--find-wisdom prints FFTW wisdom ({r.stdout.splitlines()[0] if r.stdout else r.stderr.strip()})")

    if failures:
        print(f"\n{len(failures)} failure(s)")
        sys.exit(1)
    print("\nall mel checks passed")


if __name__ == "__main__":
    main()

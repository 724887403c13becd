"""`s2s units` (data/units/): pooled log-mel features, k-means++ and Lloyd against a NumPy rendering, encoding,
manifest rewriting, errors, determinism across thread counts.

- features: `s2s mel`'s log-mel (checked against WhisperFeatureExtractor by test_mel.py), mean-pooled by 8 in NumPy,
  minus the utterance mean, equal to the frames `s2s units fit --save-frames` clustered;
- greedy k-means++: the picks equal NumPy's with the same splitmix64 stream; Lloyd (float64 NumPy, the same empty-cluster
  rule) from those picks: the same assignments, iteration count and cluster sizes, centroids within 1e-5;
- --max-frames: the reservoir sample equals NumPy's Algorithm R on the same stream;
- encode: units = the nearest centroid of each frame; --dedup, --format list; a manifest gains speech_units /
  units where s2s prep reads them, and s2s prep accepts the result;
- synthetic clustered audio (band noise): k-means finds the clusters and encoding a new utterance recovers them;
- errors name the file: a missing audio or manifest, k > frames, corrupt / truncated / foreign codebooks, a bad line;
- OMP_NUM_THREADS=1 and 2 give the same codebook bytes and the same units.

usage: python3 tests/data/test_units.py S2S_BINARY BUILD_DIR   (from the repository root; ctest does this)
"""
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import soundfile as sf
from safetensors import safe_open
from safetensors.numpy import load_file

S2S = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/s2s")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TMP = tempfile.mkdtemp(prefix="s2s_units_")
SEED = int(os.environ.get("S2S_TEST_SEED", random.randrange(1 << 30)))
print(f"test_units: seed {SEED} (S2S_TEST_SEED={SEED} reproduces)")
rng = np.random.default_rng(SEED)
failures = []
M64 = (1 << 64) - 1


def check(cond, what):
    print(("ok:   " if cond else "FAIL: ") + what, flush=True)
    if not cond:
        failures.append(what)


def s2s(*args, env=None, ok=True):
    e = dict(os.environ, **(env or {}))
    p = subprocess.run([S2S, *args], capture_output=True, text=True, env=e, timeout=300)
    if ok and p.returncode != 0:
        print(p.stdout[-2000:], p.stderr[-2000:])
    return p


def path(*p):
    return os.path.join(TMP, *p)


# ---- the NumPy rendering ---------------------------------------------------------------------------------------
class SplitMix:
    def __init__(self, seed):
        self.x = seed & M64

    def next(self):
        self.x = (self.x + 0x9E3779B97F4A7C15) & M64
        z = self.x
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        return z ^ (z >> 31)

    def uniform(self):
        return (self.next() >> 11) * 2.0 ** -53


def mel(wav):
    out = path("mel.safetensors")
    p = s2s("mel", "--audio", wav, "--out", out)
    assert p.returncode == 0, p.stderr
    return load_file(out)["mel"]  # [128, V] valid frames of the 30 s-padded mel


def features(wav, norm=True):
    m = mel(wav).astype(np.float64)
    V = m.shape[1]
    T = -(-V // 8)
    f = np.stack([m[:, 8 * t:min(8 * t + 8, V)].mean(axis=1) for t in range(T)]).astype(np.float32)  # [T, 128]
    if norm:
        f = f - f.astype(np.float64).mean(axis=0).astype(np.float32)
    return f


def sqdist(x, c):
    """[n, k] squared distances in float64."""
    x64, c64 = x.astype(np.float64), c.astype(np.float64)
    return np.stack([((x64 - c64[j]) ** 2).sum(axis=1) for j in range(len(c64))], axis=1)


def kmeans_pp(x, k, seed):
    """Greedy k-means++: 2 + floor(ln k) D2-sampled candidates a pick, the one lowering sum(D2) most kept."""
    r = SplitMix(seed)
    n = len(x)
    trials = 2 + int(math.log(k))
    picks = [min(int(r.uniform() * n), n - 1)]
    d2 = sqdist(x, x[picks[:1]])[:, 0]
    for _ in range(1, k):
        cum = np.cumsum(d2)  # sequential, as the C sums
        best, best_pot = None, None
        for _ in range(trials):
            target = r.uniform() * cum[-1]
            hit = np.nonzero((cum > target) & (d2 > 0))[0]
            cand = int(hit[0]) if len(hit) else int(np.nonzero(d2 > 0)[0][-1])
            pot = np.cumsum(np.minimum(d2, sqdist(x, x[[cand]])[:, 0]))[-1]
            if best is None or pot < best_pot:
                best, best_pot = cand, pot
        picks.append(best)
        d2 = np.minimum(d2, sqdist(x, x[[best]])[:, 0])
    return picks


def lloyd(x, c, iters):
    c = c.astype(np.float32).copy()
    k = len(c)
    prev, its, converged, relocated = None, 0, False, 0
    for it in range(iters + 1):
        d = sqdist(x, c)
        a = d.argmin(axis=1)
        dist = d[np.arange(len(x)), a]
        if it > 0 and np.array_equal(a, prev):
            converged = True
            break
        if it == iters:
            break
        count = np.bincount(a, minlength=k)
        for j in range(k):
            if count[j]:
                continue
            far = int(np.argmax(np.where(count[a] > 1, dist, -np.inf)))
            count[a[far]] -= 1
            a[far], count[j], dist[far] = j, 1, 0.0
            relocated += 1
        x64 = x.astype(np.float64)
        for j in range(k):
            c[j] = x64[a == j].mean(axis=0).astype(np.float32)
        prev, its = a.copy(), its + 1
    return c, a, its, converged, relocated


def reservoir(x, m, seed):
    r = SplitMix(seed ^ 0x5265736572766F69)
    out = list(x[:m])
    for t in range(m, len(x)):
        j = int(r.uniform() * (t + 1))
        if j < m:
            out[j] = x[t]
    return np.array(out)


def meta(cb):
    with safe_open(cb, framework="np") as f:
        return f.metadata()


# ---- inputs -----------------------------------------------------------------------------------------------------
SENTENCES = ["I am so sorry to hear that you lost your keys.", "That sounds wonderful, congratulations!",
             "Please take a deep breath, everything will be fine.", "Why did nobody tell me about the meeting?",
             "The weather was grey and cold all morning.", "Thank you for listening to me today."]
os.makedirs(path("speech"))
SPEECH = []
for i, s in enumerate(SENTENCES):
    w = path("speech", f"s{i}.wav")
    subprocess.run(["espeak-ng", "-v", ["en-us", "en-gb"][i % 2], "-p", str(30 + 10 * i), "-s", "170", "-w", w, s],
                   check=True)
    SPEECH.append(w)


# ---- fit against NumPy -------------------------------------------------------------------------------------------
def fit_matches_numpy():
    K, seed = 12, SEED % 100000
    cb, fr = path("cb.safetensors"), path("frames.safetensors")
    p = s2s("units", "fit", "--out", cb, "--k", str(K), "--seed", str(seed), "--max-frames", "0", "--save-frames", fr,
            "--quiet", *SPEECH)
    check(p.returncode == 0, "units fit exits 0")
    if p.returncode:
        return None
    t = load_file(fr)
    ref = np.concatenate([features(w) for w in SPEECH])
    check(t["frames"].shape == ref.shape, f"frames clustered {t['frames'].shape} = NumPy's {ref.shape}")
    if t["frames"].shape != ref.shape:
        return None
    err = float(np.abs(t["frames"] - ref).max())
    check(err < 1e-5, f"features = s2s mel pooled by 8 minus the utterance mean (max |diff| {err:.2e})")
    x = t["frames"]  # the same float32 input from here on, so k-means is compared on its own
    picks = kmeans_pp(x, K, seed)
    check(list(t["picks"]) == picks, f"k-means++ picks equal NumPy's splitmix64 rendering {picks}")
    c, a, its, conv, rel = lloyd(x, x[picks], 100)
    got = load_file(cb)
    m = meta(cb)
    check(np.array_equal(t["assign"], a), "Lloyd assignments equal NumPy's")
    cerr = float(np.abs(got["centroids"] - c).max())
    check(cerr < 1e-5, f"centroids equal NumPy's within 1e-5 (max |diff| {cerr:.2e})")
    check(np.array_equal(got["counts"], np.bincount(a, minlength=K)), "counts = cluster sizes")
    check(int(m["iterations"]) == its and (m["converged"] == "true") == conv and int(m["relocated"]) == rel,
          f"iterations {m['iterations']} / converged {m['converged']} / relocated {m['relocated']} = "
          f"NumPy's {its} / {conv} / {rel}")
    check(m["k"] == str(K) and m["pool"] == "8" and m["mel_bins"] == "128" and m["sample_rate"] == "16000" and
          m["seed"] == str(seed) and m["norm"] == "utterance_mean" and m["frames"] == str(len(x)) and
          m["format"] == "s2s-units", f"metadata {m}")
    inertia = float(np.mean(sqdist(x, c)[np.arange(len(x)), a]))
    check(abs(float(m["inertia"]) - inertia) < 1e-5 * inertia, f"inertia {m['inertia']} = NumPy's {inertia:.6g}")
    # An iteration limit stops early: the centroids after 2 updates, assignments to them.
    cb2, fr2 = path("cb_it2.safetensors"), path("frames_it2.safetensors")
    s2s("units", "fit", "--out", cb2, "--k", str(K), "--seed", str(seed), "--iters", "2", "--max-frames", "0",
        "--save-frames", fr2, "--quiet", *SPEECH)
    c2, a2, its2, _, _ = lloyd(x, x[picks], 2)
    check(np.array_equal(load_file(fr2)["assign"], a2) and meta(cb2)["iterations"] == str(its2) and
          float(np.abs(load_file(cb2)["centroids"] - c2).max()) < 1e-5, "--iters 2 stops after 2 updates, as NumPy")
    info = json.loads(s2s("units", "info", "--json", cb).stdout)
    check(info["k"] == K and info["frames"] == len(x) and info["utterances"] == len(SPEECH) and
          info["clusters_used"] == K, f"units info --json {info}")
    return cb, x


def from_init(x):
    """Lloyd from a given codebook (--init), written by safetensors.numpy: two centroids far from every frame must
    empty and be re-seeded by the farthest-frame rule, in C as in NumPy."""
    from safetensors.numpy import save_file
    K = 6
    init = np.concatenate([x[[3, 17, 40, 41]], np.full((2, 128), 50.0, np.float32)]).astype(np.float32)
    start = path("init.safetensors")
    save_file({"centroids": init, "counts": np.zeros(K, np.int64)}, start,
              metadata={"format": "s2s-units", "version": "1", "k": str(K), "dim": "128", "mel_bins": "128",
                        "sample_rate": "16000", "hop": "160", "pool": "8", "norm": "utterance_mean"})
    cb, fr = path("cb_init.safetensors"), path("frames_init.safetensors")
    p = s2s("units", "fit", "--out", cb, "--init", start, "--max-frames", "0", "--save-frames", fr, "--quiet", *SPEECH)
    check(p.returncode == 0, "fit --init CODEBOOK (written by safetensors.numpy) exits 0")
    if p.returncode:
        return
    c, a, its, conv, rel = lloyd(x, init, 100)
    m = meta(cb)
    check(rel >= 2 and int(m["relocated"]) == rel, f"empty clusters re-seeded: {m['relocated']} = NumPy's {rel}")
    check(np.array_equal(load_file(fr)["assign"], a) and float(np.abs(load_file(cb)["centroids"] - c).max()) < 1e-5
          and m["iterations"] == str(its) and m["init"] == "codebook",
          f"Lloyd from a fixed init with relocation = NumPy's ({its} iterations)")
    p = s2s("units", "fit", "--out", cb, "--init", start, "--k", "7", SPEECH[0], ok=False)
    check(p.returncode == 2, "--init with a different --k is refused")


def reservoir_matches(all_frames):
    cb, fr = path("cb_res.safetensors"), path("frames_res.safetensors")
    m = len(all_frames) // 3
    seed = SEED % 1000 + 1
    p = s2s("units", "fit", "--out", cb, "--k", "8", "--seed", str(seed), "--max-frames", str(m), "--save-frames", fr,
            "--quiet", *SPEECH)
    if p.returncode:
        check(False, "units fit --max-frames exits 0")
        return
    got = load_file(fr)["frames"]
    ref = reservoir(all_frames, m, seed)
    check(np.array_equal(got, ref), f"--max-frames {m}: the frames are NumPy's Algorithm R sample")
    mm = meta(cb)
    check(mm["frames"] == str(m) and mm["frames_seen"] == str(len(all_frames)), "frames / frames_seen recorded")


def norm_none():
    cb, fr = path("cb_none.safetensors"), path("frames_none.safetensors")
    s2s("units", "fit", "--out", cb, "--k", "4", "--norm", "none", "--max-frames", "0", "--save-frames", fr, "--quiet",
        SPEECH[0], SPEECH[1])
    ref = np.concatenate([features(SPEECH[0], False), features(SPEECH[1], False)])
    got = load_file(fr)["frames"]
    check(got.shape == ref.shape and float(np.abs(got - ref).max()) < 1e-5 and meta(cb)["norm"] == "none",
          "--norm none: plain pooled log-mel")
    # encode applies the codebook's normalisation
    c = load_file(cb)["centroids"]
    line = s2s("units", "encode", "--codebook", cb, "--format", "list", SPEECH[0]).stdout
    units = json.loads(line.split("\t")[1])
    check(units == list(sqdist(features(SPEECH[0], False), c).argmin(axis=1)), "encode follows the codebook's norm")


# ---- encode ----------------------------------------------------------------------------------------------------------
def encode(cb):
    c = load_file(cb)["centroids"]
    p = s2s("units", "encode", "--codebook", cb, *SPEECH[:3])
    lines = p.stdout.splitlines()
    check(p.returncode == 0 and len(lines) == 3, "encode: one line per audio")
    ok = True
    for w, line in zip(SPEECH, lines):
        name, s = line.split("\t")
        ref = sqdist(features(w), c).argmin(axis=1)
        ok &= name == w and s == "".join(f"<|audio_{u}|>" for u in ref)
    check(ok, "encode: <|audio_N|> of the nearest centroid of every 12.5 Hz frame (NumPy)")
    ref = sqdist(features(SPEECH[0]), c).argmin(axis=1)
    dd = [int(u) for i, u in enumerate(ref) if i == 0 or u != ref[i - 1]]
    p = s2s("units", "encode", "--codebook", cb, "--dedup", "--format", "list", SPEECH[0])
    check(json.loads(p.stdout.split("\t")[1]) == dd, "--dedup --format list: runs collapsed, an index list")
    n_frames = -(-(-(-len(sf.read(SPEECH[0])[0]) * 16000 // 22050) // 160) // 8)
    check(len(ref) == n_frames, f"{len(ref)} units = ceil(ceil(samples / 160) / 8) = {n_frames}")
    return c


def manifest(cb, c):
    man, out = path("in.jsonl"), path("out.jsonl")
    rel = os.path.relpath(SPEECH[1], TMP)
    recs = [
        {"messages": [{"role": "user", "content": [{"text": "", "audio": SPEECH[0]}]},
                      {"role": "assistant", "content": [{"text": "That sounds wonderful.", "audio": rel,
                                                         "speech_units": "", "spk_emb": ""}]}]},
        {"text": "Please take a deep breath.", "audio": SPEECH[2]},
        {"audio": SPEECH[3], "continuation": "and so on.", "transcript": "x"},
        {"text": "no audio", "units": [1, 2]},
    ]
    with open(man, "w") as f:
        for r in recs:
            f.write(json.dumps(r) + "\n")
        f.write("\n")
    p = s2s("units", "encode", "--codebook", cb, "--audio-root", TMP, man, "--out", out)
    check(p.returncode == 0, "encode IN.jsonl --out OUT.jsonl exits 0")
    if p.returncode:
        return
    got = [json.loads(l) for l in open(out)]
    u1 = "".join(f"<|audio_{u}|>" for u in sqdist(features(SPEECH[1]), c).argmin(axis=1))
    u2 = "".join(f"<|audio_{u}|>" for u in sqdist(features(SPEECH[2]), c).argmin(axis=1))
    item = got[0]["messages"][1]["content"][0]
    check(item["speech_units"] == u1 and item["audio"] == "" and item["text"] == "That sounds wonderful.",
          "a dialogue's assistant audio becomes its speech_units (audio emptied, text kept)")
    check(got[0]["messages"][0] == recs[0]["messages"][0], "user audio is left alone")
    check(got[1] == {"text": "Please take a deep breath.", "units": u2}, "{text, audio} becomes {text, units}")
    check(got[2] == recs[2] and got[3] == recs[3] and len(got) == 4, "other records are copied; blank lines dropped")
    # s2s prep accepts what encode wrote
    p = s2s("prep", "--manifest", out, "--tokenizer", os.path.join(ROOT, "configs/tiny/tokenizer"), "--tts-tokenizer",
            os.path.join(ROOT, "configs/tiny/tts-tokenizer"), "--out", path("shards"), "--quiet")
    check(p.returncode == 0 and "4 kept" in p.stdout and "0 skipped" in p.stdout, f"s2s prep keeps all 4: {p.stdout.strip()}")
    # list form
    out2 = path("out_list.jsonl")
    s2s("units", "encode", "--codebook", cb, "--format", "list", "--dedup", "--audio-root", TMP, man, "--out", out2)
    got2 = [json.loads(l) for l in open(out2)]
    ref = sqdist(features(SPEECH[2]), c).argmin(axis=1)
    check(got2[1]["units"] == [int(u) for i, u in enumerate(ref) if i == 0 or u != ref[i - 1]],
          "manifest --format list --dedup")
    # a bad line: reported as file:line, left out, exit 1, the rest still written
    bad = path("bad.jsonl")
    with open(bad, "w") as f:
        f.write(json.dumps(recs[1]) + "\n")
        f.write(json.dumps({"text": "gone", "audio": path("missing.wav")}) + "\n")
        f.write("{not json\n")
    out3 = path("out_bad.jsonl")
    p = s2s("units", "encode", "--codebook", cb, bad, "--out", out3, ok=False)
    check(p.returncode == 1 and f"{bad}:2: audio:" in p.stderr and "missing.wav" in p.stderr and f"{bad}:3:" in p.stderr
          and len(open(out3).read().splitlines()) == 1, f"bad lines named file:line and left out: {p.stderr.strip()}")
    # across the encoder's 256-line batches: order kept, the failing line named by its number
    big, out4 = path("big.jsonl"), path("out_big.jsonl")
    with open(big, "w") as f:
        for i in range(600):
            w = path("missing.wav") if i == 400 else SPEECH[i % 3]
            f.write(json.dumps({"text": f"line {i + 1}", "audio": w}) + "\n")
    p = s2s("units", "encode", "--codebook", cb, big, "--out", out4, ok=False)
    got = [json.loads(l) for l in open(out4)]
    want = {i % 3: "".join(f"<|audio_{u}|>" for u in sqdist(features(SPEECH[i % 3]), c).argmin(axis=1)) for i in range(3)}
    check(p.returncode == 1 and f"{big}:401: audio:" in p.stderr and len(re.findall(re.escape(big) + r":\d+:", p.stderr)) == 1 and
          [g["text"] for g in got] == [f"line {i + 1}" for i in range(600) if i != 400] and
          all(g["units"] == want[(int(g["text"].split()[1]) - 1) % 3] for g in got),
          "600 lines: units in order across batches, line 401's failure named")


# ---- clustered synthetic audio ----------------------------------------------------------------------------------------
# Five "sounds": noise in disjoint bands over a faint white-noise floor (25 dB down). Noise rather than tones: a tone
# switching phase or stopping makes a click, whose broadband log-mel frames form a cluster of their own; the floor
# masks what leaks out of a band where a segment starts or ends.
BANDS = [(100, 300), (450, 850), (1100, 1900), (2300, 3600), (4600, 7200)]
SEG = 4 * 1280  # 4 unit frames per segment


def band_audio(seq, file):
    f = np.fft.rfftfreq(SEG, 1 / 16000)
    parts = []
    for s in seq:
        spec = np.fft.rfft(rng.normal(0, 1, SEG))
        lo, hi = BANDS[s]
        parts.append(np.fft.irfft(spec * ((f >= lo) & (f < hi)), SEG))
    x = np.concatenate(parts)
    x = 0.2 * x / np.sqrt(np.mean(x ** 2)) + rng.normal(0, 0.2 * 10 ** (-25 / 20), len(x))
    sf.write(file, x.astype(np.float32), 16000, subtype="FLOAT")


def clusters():
    files = []
    for i in range(10):
        f = path(f"bands{i}.wav")
        band_audio(list(rng.permutation(5)) + list(rng.integers(0, 5, 3)), f)
        files.append(f)
    cb, fr = path("cb_bands.safetensors"), path("frames_bands.safetensors")
    p = s2s("units", "fit", "--out", cb, "--k", "5", "--norm", "none", "--seed", str(SEED % 977), "--save-frames", fr,
            "--quiet", *files)
    if p.returncode:
        check(False, "fit on band noise exits 0")
        return
    seq = [int(s) for s in rng.integers(0, 5, 12)]
    probe = path("bands_probe.wav")
    band_audio(seq, probe)
    units = json.loads(s2s("units", "encode", "--codebook", cb, "--format", "list", probe).stdout.split("\t")[1])
    mapping = {}
    consistent = all(mapping.setdefault(seq[i // 4], u) == u for i, u in enumerate(units))
    check(len(units) == 4 * len(seq) and consistent and len(set(mapping.values())) == len(mapping),
          f"encode recovers the clusters: every frame's unit is its sound's, one to one {mapping}")
    p = s2s("units", "encode", "--codebook", cb, "--dedup", "--format", "list", probe)
    dd = json.loads(p.stdout.split("\t")[1])
    want = [mapping.get(s) for i, s in enumerate(seq) if i == 0 or s != seq[i - 1]]
    check(dd == want, f"--dedup: one unit per segment {dd} = {want}")


# ---- errors -------------------------------------------------------------------------------------------------------------
def errors(cb):
    missing = path("nope.wav")
    p = s2s("units", "fit", "--out", path("x.safetensors"), "--k", "2", SPEECH[0], missing, ok=False)
    check(p.returncode == 1 and missing in p.stderr, f"fit: a missing audio is named: {p.stderr.strip()[-200:]}")
    p = s2s("units", "fit", "--out", path("x.safetensors"), "--k", "2", path("nope.jsonl"), ok=False)
    check(p.returncode == 1 and "nope.jsonl" in p.stderr, "fit: a missing manifest is named")
    man = path("fit_bad.jsonl")
    with open(man, "w") as f:
        f.write(json.dumps({"text": "a", "audio": SPEECH[0]}) + "\n")
        f.write(json.dumps({"messages": [{"role": "assistant", "content": [{"text": "t", "audio": missing}]}]}) + "\n")
    p = s2s("units", "fit", "--out", path("x.safetensors"), "--k", "2", man, ok=False)
    check(p.returncode == 1 and f"{man}:2: messages[0].content[0].audio" in p.stderr and missing in p.stderr,
          f"fit: a manifest's missing audio is named with file:line and field: {p.stderr.strip()[-300:]}")
    p = s2s("units", "fit", "--out", path("x.safetensors"), "--k", "500", "--quiet", SPEECH[0], ok=False)
    check(p.returncode == 1 and "k = 500" in p.stderr and SPEECH[0] in p.stderr, f"k > frames names the input: "
          f"{p.stderr.strip()}")
    check(not os.path.exists(path("x.safetensors")), "a failed fit writes no codebook")
    p = s2s("units", "fit", "--out", path("x.safetensors"), "--k", "0", SPEECH[0], ok=False)
    check(p.returncode == 2, "--k 0 is a usage error")
    p = s2s("units", "encode", "--codebook", cb, missing, ok=False)
    check(p.returncode == 1 and missing in p.stderr, "encode: a missing audio is named")
    blob = open(cb, "rb").read()
    hl = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + hl])

    def write(name, data):
        f = path(name)
        with open(f, "wb") as fh:
            fh.write(data)
        return f

    def with_header(h, tail=None):
        js = json.dumps(h).encode()
        js += b" " * (-(8 + len(js)) % 8)
        return len(js).to_bytes(8, "little") + js + (blob[8 + hl:] if tail is None else tail)

    h_k = json.loads(json.dumps(header))
    h_k["__metadata__"]["k"] = "13"
    h_pool = json.loads(json.dumps(header))
    h_pool["__metadata__"]["pool"] = "4"
    h_fmt = json.loads(json.dumps(header))
    h_fmt["__metadata__"]["format"] = "other"
    h_ver = json.loads(json.dumps(header))
    h_ver["__metadata__"]["version"] = "2"
    nan = bytearray(blob)
    nan[-4:] = np.array([np.nan], dtype=np.float32).tobytes()
    cases = {
        "truncated": (write("trunc.safetensors", blob[:len(blob) - 100]), "truncated"),
        "garbage": (write("garbage.safetensors", b"\xff" * 64), "header length"),
        "empty": (write("empty.safetensors", b""), "too short"),
        "not JSON": (write("notjson.safetensors", (12).to_bytes(8, "little") + b"{not json!!}"), "JSON"),
        "k disagrees with the tensors": (write("k.safetensors", with_header(h_k)), "dimension 0 must be 13"),
        "another pooling": (write("pool.safetensors", with_header(h_pool)), "pool = 4"),
        "not a units codebook": (write("fmt.safetensors", with_header(h_fmt)), "not an s2s units codebook"),
        "a future version": (write("ver.safetensors", with_header(h_ver)), "version 2"),
        "a NaN centroid": (write("nan.safetensors", bytes(nan)), "non-finite"),
        "missing": (path("absent.safetensors"), "cannot open"),
    }
    for what, (f, needle) in cases.items():
        p = s2s("units", "encode", "--codebook", f, SPEECH[0], ok=False)
        q = s2s("units", "info", f, ok=False)
        check(p.returncode == 1 and q.returncode == 1 and f in p.stderr and needle in p.stderr and f in q.stderr,
              f"corrupt codebook ({what}) is refused naming the file: {p.stderr.strip()}")


def determinism():
    outs = []
    for t in ("1", "2"):
        cb = path(f"det{t}.safetensors")
        s2s("units", "fit", "--out", cb, "--k", "16", "--seed", "5", "--max-frames", "150", "--quiet", *SPEECH,
            env={"OMP_NUM_THREADS": t})
        enc = s2s("units", "encode", "--codebook", cb, *SPEECH, env={"OMP_NUM_THREADS": t}).stdout
        outs.append((open(cb, "rb").read(), enc))
    check(outs[0][0] == outs[1][0], "OMP_NUM_THREADS=1 and 2: the same codebook, byte for byte")
    check(outs[0][1] == outs[1][1] and outs[0][1], "OMP_NUM_THREADS=1 and 2: the same units")
    cb = path("det_seed.safetensors")
    s2s("units", "fit", "--out", cb, "--k", "16", "--seed", "6", "--max-frames", "150", "--quiet", *SPEECH)
    check(open(cb, "rb").read() != outs[0][0], "another seed gives another codebook")


try:
    r = fit_matches_numpy()
    if r:
        cb, frames = r
        from_init(frames)
        reservoir_matches(frames)
        c = encode(cb)
        manifest(cb, c)
        errors(cb)
    norm_none()
    clusters()
    determinism()
finally:
    shutil.rmtree(TMP, ignore_errors=True)

if failures:
    print(f"{len(failures)} FAILED (seed {SEED})")
    sys.exit(1)
print("all passed")

"""s2s train vs PyTorch: one training step of a small OmniSpeech, same weights, same shard, same machine, same
thread count, one run.

usage: python3 bench/bench_train.py BUILD_DIR [--threads N] [--steps N] [--warmup N] [--samples N]
                                    [--vocab-frac F] [--torch-attn sdpa|eager] [--quick] [--keep DIR]

The model (its config.json is written at run time): a 4-layer audio encoder (d_model 256), an LLM of hidden 512 /
4 layers with Qwen3's 151,936 vocabulary rows (untied head), a TTS-LM of hidden 256 / 4 layers with 168,320 rows
(151,936 + 16,384 units; tied), adapter inner 1024. --vocab-frac F scales both vocabularies (the tiny tokenizers'
ids stay below them); --quick is a smoke-test size (F 0.05, 2 timed steps).
`s2s init --seed` draws the weights; the PyTorch side loads the same model.safetensors. The data: --samples
synthetic instruct dialogues (speech in: a 2-4 s voiced audio; out: a text reply + its speech units + a speaker
embedding), made into one shard by `s2s prep`; every step is one micro-batch holding all of them.

Stage 3 (encoder frozen; adapter, LLM, bridges, TTS-LM trained: forward, backward, clipping at 1.0, AdamW) runs
in `s2s train` and in the PyTorch reference of tests/train/torch_train_ref.py (transformers' Qwen3 / Qwen2-Audio
modules, HF Trainer semantics, f32, torch.optim.AdamW), each in its own process, --warmup steps then --steps
timed steps. Stage 2b (LLM and adapter frozen and forward-only, TTS-LM + bridges trained) runs the same way;
on the PyTorch side the frozen LLM records no graph (nothing upstream of it requires grad: what torch.no_grad
would give).

Step time: s2s from metrics.jsonl's per-row clock (the loader's log-mel of the next batch runs in its prefetch
thread, inside the step time); PyTorch from the reference's per-step callback, with the collated batch (the
log-mel) cached: PyTorch's time is model + optimizer only. Median of the timed steps.
Peak memory: the resident high-water (VmHWM) of each process over the timed steps: reset through
/proc/PID/clear_refs once the warm-up steps are done, then read while steps remain (s2s: sampled from outside
every 20 ms, before its final checkpoint; PyTorch: in-process after the last step). The whole-process peak
(ru_maxrss, model loading included) is shown too. s2s's arena_peak_mb is its activation arena. Ratios are
s2s / PyTorch (lower is better). Nothing is asserted: it prints and exits 0.
"""
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "train"))

LLM_VOCAB, TTS_VOCAB = 151936, 151936 + 16384
TARGET_TIME, TARGET_MEM = 0.5, 1.0


def arg(name, default, conv=str):
    return conv(sys.argv[sys.argv.index(name) + 1]) if name in sys.argv else default


def model_config(frac):
    base = json.load(open(os.path.join(ROOT, "configs", "tiny", "model.json")))
    lv = max(int(LLM_VOCAB * frac) // 64 * 64, 2752)  # above the tiny tokenizers' ids
    tv = max(int(TTS_VOCAB * frac) // 64 * 64, 19072)
    base["audio_encoder_config"].update(d_model=256, encoder_layers=4, encoder_attention_heads=4, encoder_ffn_dim=1024)
    base["llm_config"].update(vocab_size=lv, hidden_size=512, intermediate_size=1536, num_hidden_layers=4,
                              num_attention_heads=8, num_key_value_heads=4, head_dim=64, tie_word_embeddings=False)
    base["tts_lm_config"].update(vocab_size=tv, hidden_size=256, intermediate_size=768, num_hidden_layers=4,
                                 num_attention_heads=4, num_key_value_heads=2, head_dim=64, tie_word_embeddings=True)
    base["adapter_inner_dim"] = 1024
    return base


def make_shard(out_dir, n, s2s, seed=5):
    """n speech-in, text + units-out dialogues -> one instruct shard (s2s prep, the tiny tokenizers)."""
    import torch_train_ref as R
    rng = np.random.default_rng(seed)
    fdir = os.path.join(out_dir, "files")
    os.makedirs(fdir, exist_ok=True)
    with open(os.path.join(out_dir, "manifest.jsonl"), "w") as f:
        for i in range(n):
            wav, spk = os.path.join(fdir, f"a{i}.wav"), os.path.join(fdir, f"spk{i}.npy")
            R._write_wav(wav, R._speechlike(rng, rng.uniform(2.0, 4.0)))
            np.save(spk, rng.standard_normal((1, 1, R.SPK)).astype(np.float32))
            item = lambda **k: dict(dict(text="", audio="", speech_units="", spk_emb=""), **k)  # noqa: E731
            msgs = [{"role": "user", "content": [item(audio=wav)]},
                    {"role": "assistant", "content": [item(text=R._text(rng, 10, 16),
                                                           speech_units=R._units(rng, 40, 70), spk_emb=spk)]}]
            f.write(json.dumps({"messages": msgs}) + "\n")
    sd = os.path.join(out_dir, "shards")
    subprocess.run([s2s, "prep", "--manifest", os.path.join(out_dir, "manifest.jsonl"),
                    "--tokenizer", os.path.join(ROOT, "configs/tiny/tokenizer"),
                    "--tts-tokenizer", os.path.join(ROOT, "configs/tiny/tts-tokenizer"), "--out", sd, "--overwrite",
                    "--quiet"], check=True, capture_output=True, timeout=600)
    return os.path.join(sd, "instruct-00000.h5")


def hwm_kb(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def clear_hwm(pid="self"):
    """Reset the process's VmHWM to its current RSS (Linux >= 4.0, /proc/PID/clear_refs "5")."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def run_s2s(s2s, tmp, name, stage, model, shard_dir, n, warm, steps, threads):
    run = os.path.join(tmp, "run_" + name)
    recipe = {"stage": stage, "seed": 7,
              "model": {"init": model, "tokenizer": os.path.join(ROOT, "configs/tiny/tokenizer"),
                        "tts_tokenizer": os.path.join(ROOT, "configs/tiny/tts-tokenizer")},
              "data": {"train": [shard_dir], "prefetch": 1},
              "train": {"batch_size": n, "grad_accum": 1, "max_steps": steps, "threads": threads},
              "optim": {"lr": 1e-4, "warmup_steps": 0, "clip": 1.0},
              "run": {"dir": run}, "checkpoint": {"every": 1000000, "keep": 1}}
    path = os.path.join(tmp, name + ".yaml")
    with open(path, "w") as f:
        json.dump(recipe, f)
    metrics = os.path.join(run, "metrics.jsonl")
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
    err = open(os.path.join(tmp, name + ".stderr"), "w+")
    p = subprocess.Popen([s2s, "train", "--config", path, "--quiet"], stdout=subprocess.DEVNULL, stderr=err, env=env)
    hwm = {"step": 0, "before": 0, "reset": False}

    def poll():  # once the warm-up rows are out, reset VmHWM; then VmHWM (read before the row count) while
        while p.poll() is None:  # timed steps remain
            try:
                rows = sum(1 for _ in open(metrics))
            except OSError:
                rows = 0
            if not hwm["reset"] and rows >= warm:
                hwm["before"] = hwm_kb(p.pid)  # the reset clears ru_maxrss too
                hwm["reset"] = clear_hwm(p.pid)
                if not hwm["reset"]:
                    break
            elif hwm["reset"]:
                h = hwm_kb(p.pid)
                try:
                    rows = sum(1 for _ in open(metrics))
                except OSError:
                    rows = 0
                if rows < steps:
                    hwm["step"] = max(hwm["step"], h)
            time.sleep(0.02)

    th = threading.Thread(target=poll, daemon=True)
    th.start()
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    th.join()
    if p.returncode:
        err.seek(0)
        raise SystemExit(f"s2s train ({name}) failed:\n{err.read()[-3000:]}")
    rows = [json.loads(l) for l in open(metrics)]
    t = [r["time"] for r in rows]
    proc = max(ru.ru_maxrss, hwm["before"]) / 1024
    return dict(step_s=[b - a for a, b in zip(t, t[1:])], first_s=t[0], rss_mb=hwm["step"] / 1024 or proc,
                rss_all_mb=proc, arena_mb=max(r["arena_peak_mb"] for r in rows),
                loss=[r["loss"] for r in rows])


def torch_child(model, shard, stage, warm, steps, threads, attn):
    """Runs in a subprocess: the reference's training loop, timed per step; prints one JSON line."""
    import torch

    import torch_train_ref as R
    torch.set_num_threads(threads)
    m = R.load_model(model, torch.float32)
    if attn != "eager":  # transformers' default attention (the rendering pins eager for its fixtures)
        for mod in m.modules():
            c = getattr(mod, "config", None)
            if c is not None and hasattr(c, "_attn_implementation"):
                c._attn_implementation = attn
    samples, kind = R.read_shard(shard)
    collate, cache = R.collate, {}

    def cached(ss, k, cfg):  # the batch (its log-mel) once: the step time is model + optimizer only
        key = tuple(id(s) for s in ss)
        if key not in cache:
            cache[key] = collate(ss, k, cfg)
        return cache[key]

    R.collate = cached
    rss_loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    stamps, losses = [], []

    reset, before = [False], [0]

    def log(_):
        stamps.append(time.perf_counter())
        if len(stamps) == warm:
            before[0] = hwm_kb("self")  # the reset clears ru_maxrss too
            reset[0] = clear_hwm()

    kw = {}
    if stage == "stage2b":
        kw = dict(frozen="audio_encoder_model.,audio_adapter.,llm_model.", w_llm=0.0)
    t0 = time.perf_counter()
    res = R.train(m, samples, kind, [[list(range(len(samples)))]] * steps, lr=1e-4, warmup_steps=0, clip=1.0,
                  log=log, **kw)
    t = [t0] + stamps
    proc = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, before[0]) / 1024
    print(json.dumps(dict(step_s=[b - a for a, b in zip(t[1:], t[2:])], first_s=t[1] - t[0],
                          rss_mb=hwm_kb("self") / 1024 if reset[0] else proc, rss_all_mb=proc,
                          rss_loaded_mb=rss_loaded / 1024, loss=[s["loss"] for s in res["steps"]])))


def run_torch(model, shard, stage, warm, steps, threads, attn):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    r = subprocess.run([sys.executable, __file__, "--child", model, shard, stage, str(warm), str(steps), str(threads),
                        attn],
                       capture_output=True, text=True, env=env)
    if r.returncode:
        raise SystemExit(f"PyTorch ({stage}) failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def med(x):
    return statistics.median(x) if x else float("nan")


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        a = sys.argv[2:]
        torch_child(a[0], a[1], a[2], int(a[3]), int(a[4]), int(a[5]), a[6])
        return
    build = sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("--") else "build"
    s2s = os.path.join(build, "s2s")
    quick = "--quick" in sys.argv
    threads = arg("--threads", os.cpu_count(), int)
    timed = arg("--steps", 2 if quick else 3, int)
    warm = arg("--warmup", 1, int)
    n = arg("--samples", 4, int)
    frac = arg("--vocab-frac", 0.05 if quick else 1.0, float)
    attn = arg("--torch-attn", "sdpa")
    keep = arg("--keep", None)
    tmp = keep or tempfile.mkdtemp(prefix="s2s_bench_train_")
    os.makedirs(tmp, exist_ok=True)
    steps = warm + timed
    load0 = os.getloadavg()[0]
    try:
        cfg = model_config(frac)
        cfg_path = os.path.join(tmp, "config.json")
        with open(cfg_path, "w") as f:
            json.dump(cfg, f, indent=1)
        model = os.path.join(tmp, "model")
        subprocess.run([s2s, "init", "--config", cfg_path, "--out", model, "--seed", "1", "--shard-mb", "100000"],
                       check=True, capture_output=True, timeout=600)
        shard = make_shard(os.path.join(tmp, "data"), n, s2s)
        from safetensors import safe_open
        with safe_open(os.path.join(model, "model.safetensors"), "np") as f:
            n_params = sum(int(np.prod(f.get_slice(k).get_shape())) for k in f.keys())
        lc, tc = cfg["llm_config"], cfg["tts_lm_config"]
        print(f"training step, threads {threads}, {n} samples / step (speech in, text + units out), "
              f"{warm} warm-up + {timed} timed steps (median); ratio = s2s / PyTorch (lower is better)")
        print(f"model: encoder {cfg['audio_encoder_config']['encoder_layers']}x{cfg['audio_encoder_config']['d_model']}, "
              f"LLM {lc['num_hidden_layers']}x{lc['hidden_size']} vocab {lc['vocab_size']}, TTS-LM "
              f"{tc['num_hidden_layers']}x{tc['hidden_size']} vocab {tc['vocab_size']}"
              f"{'' if frac == 1 else f' (vocab fraction {frac})'}, {n_params / 1e6:.1f}M parameters; "
              f"PyTorch {attn} attention, f32")
        res = {}
        for stage in ("stage3", "stage2b"):
            res[stage, "s2s"] = run_s2s(s2s, tmp, stage, stage, model, os.path.dirname(shard), n, warm, steps,
                                         threads)
            res[stage, "torch"] = run_torch(model, shard, stage, warm, steps, threads, attn)
        print(f"{'stage':8} {'s2s s/step':>10} {'torch s/step':>12} {'ratio':>6} {'target':>7}   "
              f"{'s2s MB':>7} {'torch MB':>8} {'ratio':>6} {'target':>7}   {'s2s arena MB':>12}   "
              f"{'process peak: s2s MB':>20} {'torch MB':>8} {'ratio':>6}")
        for stage in ("stage3", "stage2b"):
            s, t = res[stage, "s2s"], res[stage, "torch"]
            ss, ts = med(s["step_s"][warm - 1:]), med(t["step_s"][warm - 1:])
            tr, mr = ss / ts, s["rss_mb"] / t["rss_mb"]
            print(f"{stage:8} {ss:10.3f} {ts:12.3f} {tr:6.2f} {'<=' + str(TARGET_TIME):>7}   {s['rss_mb']:7.0f} "
                  f"{t['rss_mb']:8.0f} {mr:6.2f} {'<' + str(TARGET_MEM):>7}   {s['arena_mb']:12.0f}   "
                  f"{s['rss_all_mb']:20.0f} {t['rss_all_mb']:8.0f} {s['rss_all_mb'] / t['rss_all_mb']:6.2f}"
                  + ("" if stage == "stage2b" or (tr <= TARGET_TIME and mr < TARGET_MEM) else "  MISSED"))
        print("MB: resident high-water over the timed steps (VmHWM reset after the warm-up); process peak: over the "
              "whole process (model loading included)")
        s3, s2 = res["stage3", "s2s"], res["stage2b", "s2s"]
        t3, t2 = res["stage3", "torch"], res["stage2b", "torch"]
        print(f"stage2b / stage3 memory: s2s arena {s2['arena_mb']:.0f} / {s3['arena_mb']:.0f} MB "
              f"({s2['arena_mb'] / s3['arena_mb']:.2f}), s2s step RSS {s2['rss_mb']:.0f} / {s3['rss_mb']:.0f} MB "
              f"({s2['rss_mb'] / s3['rss_mb']:.2f}); PyTorch step RSS {t2['rss_mb']:.0f} / {t3['rss_mb']:.0f} MB "
              f"({t2['rss_mb'] / t3['rss_mb']:.2f}) (RSS also drops by the frozen LLM's gradients and AdamW moments)")
        print(f"first step (warm-up): s2s {s3['first_s']:.2f} s, PyTorch {t3['first_s']:.2f} s; PyTorch RSS once "
              f"the model is loaded {t3['rss_loaded_mb']:.0f} MB")
        for stage in ("stage3", "stage2b"):
            print(f"losses {stage}: s2s {' '.join(f'{v:.5f}' for v in res[stage, 's2s']['loss'])} | PyTorch "
                  f"{' '.join(f'{v:.5f}' for v in res[stage, 'torch']['loss'])}")
        load1 = os.getloadavg()[0]
        print(f"load average (1 min) at start {load0:.2f}, at end {load1:.2f} (the benchmark's own threads "
              f"included) on {os.cpu_count()} CPUs")
        if load0 > 0.5 * os.cpu_count():
            print("the machine was busy: other processes preempt the benchmark's threads (an OpenMP thread of s2s then "
                  "spin-waits on its preempted partner at every parallel region's barrier), so these times are not "
                  "representative; rerun when the load is low")
        print(f"step times (s): " + "; ".join(
            f"{k[1]} {k[0]} {' '.join(f'{v:.3f}' for v in r['step_s'])}" for k, r in res.items()))
    finally:
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

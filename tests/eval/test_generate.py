"""Generation and sampling (eval/) against transformers.

1. Greedy generation of the tiny Qwen3 fixtures (tied, untied) equals `model.generate(do_sample=False)` token for
   token, on random prompts (seeded), with and without an EOS set (stopping on it, EOS included), and the
   final-norm hidden state of every fed row equals HF's `hidden_states[-1]` of each step (tolerance 1e-5 relative).
2. The do_sample warpers: on random logits, s2s's warped scores equal a LogitsProcessorList of HF's
   TemperatureLogitsWarper / TopKLogitsWarper / TopPLogitsWarper built by GenerationMixin's rules (kept set exact,
   kept scores and their softmax within 1e-6), including ties at the top-k threshold and at the top-p boundary
   (there torch.sort is unstable: s2s keeps the same number, and exactly the set of a stable sort), and HF's
   defaults (top_k 50) when only do_sample is set.
3. generation_config.json (written by GenerationConfig.save_pretrained) reads to HF's values, HF's defaults where
   the file is silent; a malformed field is refused naming it.
4. Draws: the same seed gives the same ids, another seed others; every id drawn is in the kept set, and the
   frequencies over many draws match the warped softmax.

Run by ctest as: python3 test_generate.py S2S_BINARY BUILD_DIR (from the repository root); drives
BUILD_DIR/tests/gen_tool (tests/eval/gen_tool.c). S2S_TEST_SEED=N reproduces a run.
"""
import os
import subprocess
import sys
import tempfile
import warnings

warnings.filterwarnings("ignore")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
import transformers  # noqa: E402
from transformers import GenerationConfig, Qwen3ForCausalLM  # noqa: E402
from transformers.generation.logits_process import (  # noqa: E402
    LogitsProcessorList,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

transformers.logging.set_verbosity_error()
torch.set_num_threads(2)

BUILD = sys.argv[2]
TOOL = os.path.join(BUILD, "tests", "gen_tool")
FIX = os.path.join("tests", "fixtures")
SEED = int(os.environ.get("S2S_TEST_SEED", int.from_bytes(os.urandom(4), "little")))
GEN = torch.Generator().manual_seed(SEED)
TOL = 1e-5
failures = []


def check(cond, msg):
    print(f"{'ok  ' if cond else 'FAIL'} {msg}")
    if not cond:
        failures.append(msg)


def rel_err(a, b):
    a, b = a.double(), b.double()
    return ((a - b).abs().max() / (b.abs().max() + 1e-30)).item() if b.numel() else 0.0


def tool(args, tensors, meta):
    with tempfile.TemporaryDirectory() as td:
        cin, cout = os.path.join(td, "in.safetensors"), os.path.join(td, "out.safetensors")
        save_file(tensors, cin, metadata={k: str(v) for k, v in meta.items()})
        r = subprocess.run([TOOL, *args, cin, cout], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"gen_tool {' '.join(args)} failed: {r.stderr.strip()}")
        with safe_open(cout, "pt") as f:
            m = f.metadata()
        return load_file(cout), m


# ---- 1. greedy generation ------------------------------------------------------------------------------

def hf_generate(model, prompt, max_new, eos):
    ids = torch.tensor([prompt], dtype=torch.long)
    out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=max_new,
                         eos_token_id=eos if eos else None, pad_token_id=model.config.pad_token_id,
                         output_hidden_states=True, return_dict_in_generate=True)
    new = out.sequences[0, len(prompt):].tolist()
    hidden = torch.cat([step[-1][0] for step in out.hidden_states], 0)  # [T + n - 1, H]: every fed row, final norm
    return new, hidden


def test_greedy():
    for name in ("tied", "untied"):
        d = os.path.join(FIX, f"qwen3_{name}")
        model = Qwen3ForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
        V = model.config.vocab_size
        worst = 0.0
        n_eos_stops = 0
        for i, T in enumerate((1, 4, 9, 17)):
            prompt = torch.randint(0, V, (T,), generator=GEN).tolist()
            max_new = 12
            with torch.no_grad():
                ref, _ = hf_generate(model, prompt, max_new, None)
            # Second run with an EOS set holding a token HF first produces as late as possible (and one it never
            # does): it must stop there, the EOS included.
            late = max(range(len(ref)), key=lambda j: (ref.index(ref[j]), -j))
            eos_runs = [[], [V + 7, ref[late]]]
            for eos in eos_runs:
                with torch.no_grad():
                    want, want_h = hf_generate(model, prompt, max_new, eos)
                got, meta = tool(["generate", d], {"prompt": torch.tensor(prompt, dtype=torch.int32)},
                                 {"max_new_tokens": max_new, "eos": ",".join(map(str, eos)), "do_sample": 0})
                ids = got["ids"].tolist()
                label = f"{name} prompt {T} eos {eos or '-'}"
                check(ids == want, f"greedy {label}: s2s {ids} == HF {want}")
                stopped = bool(eos) and want[-1] in eos
                n_eos_stops += stopped
                check(meta["hit_eos"] == ("1" if stopped else "0"), f"greedy {label}: hit_eos {meta['hit_eos']}")
                if got["hidden"].shape == want_h.shape:
                    e = rel_err(got["hidden"], want_h)
                    worst = max(worst, e)
                    check(e <= TOL, f"greedy {label}: hidden of every fed row vs HF hidden_states[-1] {e:.2e}")
                else:
                    check(False, f"greedy {label}: hidden {list(got['hidden'].shape)} vs HF {list(want_h.shape)}")
        check(n_eos_stops > 0, f"{name}: some run stopped on its EOS ({n_eos_stops})")
        print(f"     {name}: worst hidden error {worst:.2e}")


# ---- 2. warpers ---------------------------------------------------------------------------------------------

def hf_processors(temperature, top_k, top_p, top_p_cls=TopPLogitsWarper):
    """GenerationMixin._get_logits_processor's do_sample rules (min_tokens_to_keep 1, one beam)."""
    ps = LogitsProcessorList()
    if temperature is not None and temperature != 1.0:
        ps.append(TemperatureLogitsWarper(temperature))
    if top_k is not None and top_k != 0:
        ps.append(TopKLogitsWarper(top_k=top_k, min_tokens_to_keep=1))
    if top_p is not None and top_p < 1.0:
        ps.append(top_p_cls(top_p=top_p, min_tokens_to_keep=1))
    return ps


class StableTopP(TopPLogitsWarper):
    """HF's TopPLogitsWarper with a stable sort: the tie order s2s documents."""

    def __call__(self, input_ids, scores):
        sorted_logits, sorted_indices = torch.sort(scores, descending=False, stable=True)
        cumulative_probs = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        sorted_indices_to_remove = cumulative_probs <= (1 - self.top_p)
        sorted_indices_to_remove[..., -self.min_tokens_to_keep:] = 0
        indices_to_remove = sorted_indices_to_remove.scatter(1, sorted_indices, sorted_indices_to_remove)
        return scores.masked_fill(indices_to_remove, self.filter_value)


def run_warp(logits, temperature, top_k, top_p, draws=0, seed=0):
    meta = {"temperature": repr(float(temperature)), "top_k": top_k, "top_p": repr(float(top_p)), "draws": draws,
            "seed": seed}
    got, _ = tool(["warp"], {"logits": logits.contiguous()}, meta)
    return got


def compare_warp(label, logits, temperature, top_k, top_p, ties=False):
    got = run_warp(logits, temperature, top_k, top_p)
    ids = torch.zeros(logits.shape[0], 1, dtype=torch.long)
    want = hf_processors(temperature, top_k, top_p)(ids, logits.clone())
    stable = hf_processors(temperature, top_k, top_p, StableTopP)(ids, logits.clone())
    w, kept_w, kept_s = got["warped"], ~torch.isinf(want), ~torch.isinf(got["warped"])
    n_s, n_hf = kept_s.sum(1), kept_w.sum(1)
    check(torch.equal(got["kept"].long(), n_s), f"warp {label}: the returned kept counts match the scores")
    check(torch.equal(n_s, n_hf), f"warp {label}: kept per row s2s {n_s.tolist()[:6]} == HF {n_hf.tolist()[:6]}")
    same = torch.equal(kept_s, ~torch.isinf(stable))
    check(same, f"warp {label}: kept set == HF's" + (" with a stable sort (ties)" if ties else ""))
    if not ties:
        check(torch.equal(kept_s, kept_w), f"warp {label}: kept set == HF's exactly")
    if same:
        e = rel_err(w[kept_s], stable[kept_s])
        p_s, p_hf = w.softmax(-1), stable.softmax(-1)
        ep = rel_err(p_s, p_hf)
        check(e <= 1e-6 and ep <= 1e-6, f"warp {label}: kept scores {e:.1e}, probabilities {ep:.1e} (<= 1e-6)")


def test_warpers():
    R, V = 6, 1000
    logits = torch.randn(R, V, generator=GEN) * 3
    for t, k, p in ((1.0, 50, 1.0), (0.7, 50, 0.9), (1.0, 0, 0.5), (1.3, 20, 1.0), (0.6, 20, 0.95), (1.0, 0, 0.0),
                    (2.0, 0, 0.99), (0.5, 1, 0.3), (1.0, 5000, 0.8)):
        compare_warp(f"T={t} k={k} p={p}", logits, t, k, p)
    # HF's defaults when only do_sample is set: temperature 1, top_k 50, top_p 1.
    d = GenerationConfig._get_default_generation_params()
    check((d["do_sample"], d["temperature"], d["top_k"], d["top_p"]) == (False, 1.0, 50, 1.0),
          f"GenerationConfig defaults are those s2s_sample_defaults documents: {d['top_k']} {d['top_p']}")
    compare_warp("HF defaults", logits, d["temperature"], d["top_k"], d["top_p"])
    # Ties at the top-k threshold: quantised logits, every copy of the k-th value stays.
    q = torch.randint(0, 12, (R, V), generator=GEN).float()
    compare_warp("ties at top-k", q, 1.0, 50, 1.0)
    # Ties at the top-p boundary: equal scores straddle it (exactly representable probabilities).
    flat = torch.zeros(2, 64)
    compare_warp("64 equal scores, p=0.5", flat, 1.0, 0, 0.5, ties=True)
    compare_warp("64 equal scores, p=0.75", flat, 1.0, 0, 0.75, ties=True)
    compare_warp("quantised scores, p=0.9", q, 1.0, 0, 0.9, ties=True)
    compare_warp("quantised scores, k=30 p=0.6", q, 0.8, 30, 0.6, ties=True)


# ---- 3. generation_config.json --------------------------------------------------------------------------

def test_gen_config():
    with tempfile.TemporaryDirectory() as td:
        cases = [
            ({"do_sample": True, "temperature": 0.6, "top_k": 20, "top_p": 0.95, "eos_token_id": [151645, 151643]},
             "1 0.59999999999999998 20 0.94999999999999996 0 151645,151643"),
            ({"eos_token_id": 7, "max_new_tokens": 33}, "0 1 50 1 33 7"),  # the rest: HF's defaults
            ({}, "0 1 50 1 0 "),
        ]
        for i, (kw, want) in enumerate(cases):
            d = os.path.join(td, str(i))
            GenerationConfig(**kw).save_pretrained(d)
            r = subprocess.run([TOOL, "config", d], capture_output=True, text=True)
            check(r.returncode == 0 and r.stdout.rstrip("\n") == want,
                  f"generation_config {kw}: read {r.stdout.strip()!r} (want {want!r}) {r.stderr.strip()}")
        bad = os.path.join(td, "bad.json")
        with open(bad, "w") as f:
            f.write('{"top_k": "many"}')
        r = subprocess.run([TOOL, "config", bad], capture_output=True, text=True)
        check(r.returncode != 0 and "top_k" in r.stderr, f"generation_config: a bad top_k is refused ({r.stderr.strip()})")


# ---- 4. draws ---------------------------------------------------------------------------------------------

def test_draws():
    logits = torch.randn(3, 200, generator=GEN) * 2
    a = run_warp(logits, 0.8, 20, 0.9, draws=64, seed=1234)
    b = run_warp(logits, 0.8, 20, 0.9, draws=64, seed=1234)
    c = run_warp(logits, 0.8, 20, 0.9, draws=64, seed=4321)
    check(torch.equal(a["ids"], b["ids"]), "draws: the same seed gives the same ids")
    check(not torch.equal(a["ids"], c["ids"]), "draws: another seed gives other ids")
    kept = ~torch.isinf(a["warped"])
    check(bool(kept.gather(1, a["ids"].long()).all()), "draws: every id drawn is in the kept set")
    # Frequencies: one row, many draws, against the warped softmax.
    row = torch.randn(1, 12, generator=GEN)
    n = 20000
    g = run_warp(row, 1.0, 0, 0.95, draws=n, seed=7)
    freq = torch.bincount(g["ids"][0].long(), minlength=12).double() / n
    p = g["warped"][0].double().softmax(-1)
    e = (freq - p).abs().max().item()
    check(e < 0.015, f"draws: frequencies over {n} draws match the warped softmax (max |f - p| {e:.4f} < 0.015)")
    check(bool((freq[p == 0] == 0).all()), "draws: removed tokens are never drawn")


def test_sampled_generation():
    d = os.path.join(FIX, "qwen3_untied")
    prompt = {"prompt": torch.tensor([5, 17, 99, 3, 42], dtype=torch.int32)}
    meta = {"max_new_tokens": 24, "eos": "", "do_sample": 1, "temperature": "1.5", "top_k": 0, "top_p": "1.0"}
    a, _ = tool(["generate", d], prompt, {**meta, "seed": 11})
    b, _ = tool(["generate", d], prompt, {**meta, "seed": 11})
    c, _ = tool(["generate", d], prompt, {**meta, "seed": 12})
    check(torch.equal(a["ids"], b["ids"]) and a["ids"].numel() == 24, "sampled generation: same seed, same ids")
    check(not torch.equal(a["ids"], c["ids"]), "sampled generation: another seed, other ids")


if __name__ == "__main__":
    print(f"seed {SEED} (set S2S_TEST_SEED={SEED} to reproduce)")
    test_greedy()
    test_warpers()
    test_gen_config()
    test_draws()
    test_sampled_generation()
    if failures:
        print(f"{len(failures)} failure(s)")
        sys.exit(1)
    print("all generation checks passed")

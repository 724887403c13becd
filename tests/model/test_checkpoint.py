"""Checkpoint and config I/O against the Python reference: files written by safetensors and transformers
load in s2s with exact values, files s2s writes load in safetensors and transformers, configs saved by
transformers parse to the right values, and malformed checkpoints fail with a message naming the file.

Run by ctest as: python3 test_checkpoint.py S2S_BINARY BUILD_DIR (from the repository root). It drives the
helper BUILD_DIR/tests/ckpt_tool (tests/model/ckpt_tool.c).
"""
import json
import os
import shutil
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
from transformers import (  # noqa: E402
    AutoConfig,
    Qwen2AudioConfig,
    Qwen2AudioEncoderConfig,
    Qwen2AudioForConditionalGeneration,
    Qwen3Config,
    Qwen3ForCausalLM,
)

transformers.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()
torch.set_num_threads(2)

BUILD = sys.argv[2]
TOOL = os.path.join(BUILD, "tests", "ckpt_tool")
TMP = tempfile.mkdtemp(prefix="s2s_test_ckpt_")
failures = []


def tool(*args, ok=True):
    r = subprocess.run([TOOL, *map(str, args)], capture_output=True, text=True, timeout=60)
    if ok and r.returncode != 0:
        raise AssertionError(f"ckpt_tool {' '.join(map(str, args))} failed: {r.stderr}")
    return r


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAILED:", what, file=sys.stderr)


def path(*parts):
    return os.path.join(TMP, *parts)


def same_tensors(got, want, what):
    check(sorted(got) == sorted(want), f"{what}: names differ: {sorted(set(got) ^ set(want))[:5]}")
    for k in want:
        if k in got:
            a, b = got[k], want[k]
            check(a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b), f"{what}: {k} differs")


def tiny_qwen3(tie, vocab=96, seed=0):
    torch.manual_seed(seed)
    cfg = Qwen3Config(vocab_size=vocab, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=8, tie_word_embeddings=tie,
                      rope_theta=1000000.0, max_position_embeddings=256, bos_token_id=1, eos_token_id=2)
    return Qwen3ForCausalLM(cfg).eval()


# ---- files written by the safetensors package -------------------------------------------------------------
def test_safetensors_package():
    torch.manual_seed(1)
    t = {
        "f32": torch.randn(3, 5),
        "bf16": torch.randn(4, 2, 3).to(torch.bfloat16),
        "f16": torch.randn(7).to(torch.float16),
        "i32": torch.arange(-3, 3, dtype=torch.int32),
        "i64": torch.arange(4, dtype=torch.int64),  # opens and lists; s2s never loads it
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 3),
    }
    src = path("package.safetensors")
    save_file(t, src, metadata={"format": "pt", "who": "python"})
    r = tool("open", src)
    check(r.stdout.split() == ["ok", "7", "1"], f"open package file: {r.stdout}")
    tool("dump", src, path("package_dump.safetensors"))
    got = load_file(path("package_dump.safetensors"))
    want = {k: (v.float() if v.is_floating_point() else v) for k, v in t.items() if k != "i64"}
    same_tensors(got, want, "safetensors package f32/bf16/f16/i32")
    listing = tool("list", f"opens2s={src}").stdout
    check("i64\tI64\t[4]\t" in listing and "bf16\tBF16\t[4, 2, 3]\t" in listing, f"list: {listing}")


# ---- transformers save_pretrained, sharded -----------------------------------------------------------------
def test_transformers_sharded():
    for dtype, tag in ((torch.float32, "f32"), (torch.bfloat16, "bf16"), (torch.float16, "f16")):
        m = tiny_qwen3(tie=False).to(dtype)
        d = path(f"hf_qwen3_{tag}")
        m.save_pretrained(d, max_shard_size="20KB")
        check(os.path.exists(os.path.join(d, "model.safetensors.index.json")), f"{tag}: transformers sharded")
        n_shards = len([f for f in os.listdir(d) if f.startswith("model-")])
        r = tool("open", d)
        check(r.stdout.split()[2] == str(n_shards), f"{tag}: shard count {r.stdout} vs {n_shards}")
        tool("dump", d, path(f"hf_dump_{tag}.safetensors"))
        got = load_file(path(f"hf_dump_{tag}.safetensors"))
        want = {k: v.detach().float() for k, v in m.state_dict().items()}
        same_tensors(got, want, f"transformers sharded {tag}")


# ---- s2s writes, Python and transformers read -----------------------------------------------------------
def test_writer_to_transformers():
    m = tiny_qwen3(tie=False, seed=3)
    src = path("q3_src")
    m.save_pretrained(src)  # one model.safetensors
    ids = torch.tensor([[1, 5, 9, 33, 2, 70]])
    with torch.no_grad():
        ref = m(ids).logits
    for dtype, shard in (("F32", 25000), ("BF16", 12000), ("F32", 0)):
        out = path(f"q3_s2s_{dtype}_{shard}")
        tool("resave", "llm", src, out, dtype, shard, "llm_model.")
        tool("config-write", "qwen3", src, os.path.join(out, "config.json"))
        files = sorted(os.listdir(out))
        if shard:
            index = json.load(open(os.path.join(out, "model.safetensors.index.json")))
            shards = sorted({v for v in index["weight_map"].values()})
            check(len(shards) > 1 and files.count("model.safetensors") == 0, f"{dtype}: sharded output {files}")
            check(shards == [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))],
                  f"shard names {shards}")
            total = 0
            got = {}
            for s in shards:
                with safe_open(os.path.join(out, s), "pt") as f:
                    check(f.metadata().get("format") == "pt", "format metadata")
                    for k in f.keys():
                        got[k] = f.get_tensor(k)
                        total += got[k].numel() * got[k].element_size()
                        check(index["weight_map"][k] == s, f"index maps {k} to {s}")
            check(index["metadata"]["total_size"] == total, "index total_size")
        else:
            check("model.safetensors" in files and "model.safetensors.index.json" not in files, f"single: {files}")
            got = load_file(os.path.join(out, "model.safetensors"))
        tdt = torch.float32 if dtype == "F32" else torch.bfloat16
        want = {k: v.detach().to(tdt) for k, v in m.state_dict().items()}
        same_tensors(got, want, f"s2s writer {dtype} shard {shard}")
        m2 = Qwen3ForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
        with torch.no_grad():
            logits = m2(ids).logits
        if dtype == "F32":
            check(torch.equal(logits, ref), f"from_pretrained of s2s output ({dtype}) gives identical logits")
        else:
            check(torch.allclose(logits, ref, atol=0.05, rtol=0.05), "bf16 output close")
        for k, v in m2.state_dict().items():
            check(torch.equal(v, want[k].float()), f"from_pretrained {dtype}: {k}")


# ---- configs ---------------------------------------------------------------------------------------------
def read_cfg(kind, p):
    return json.loads(tool("config", kind, p).stdout)


def test_configs():
    q = Qwen3Config(vocab_size=151936, hidden_size=4096, intermediate_size=12288, num_hidden_layers=36,
                    num_attention_heads=32, num_key_value_heads=8, head_dim=128, max_position_embeddings=40960,
                    rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=False, bos_token_id=151643,
                    eos_token_id=151645, dtype="bfloat16")
    d = path("cfg_qwen3")
    q.save_pretrained(d)
    c = read_cfg("qwen3", d)
    for k in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
              "num_key_value_heads", "head_dim", "max_position_embeddings", "rms_norm_eps", "tie_word_embeddings",
              "bos_token_id", "eos_token_id"):
        check(c[k] == getattr(q, k), f"qwen3 {k}: {c[k]} vs {getattr(q, k)}")
    check(c["rope_theta"] == 1000000.0, f"rope_theta {c['rope_theta']}")
    check(c.get("torch_dtype") == "bfloat16", f"dtype {c.get('torch_dtype')}")
    # A tied 1.7B-like config without head_dim in the file: transformers' default (128) applies.
    q17 = json.load(open(os.path.join(d, "config.json")))
    q17.update(hidden_size=2048, num_attention_heads=16, tie_word_embeddings=True)
    q17.pop("head_dim")
    os.makedirs(path("cfg_q17"))
    json.dump(q17, open(path("cfg_q17", "config.json"), "w"))
    c = read_cfg("qwen3", path("cfg_q17"))
    hf = AutoConfig.from_pretrained(path("cfg_q17"))
    check(c["head_dim"] == hf.head_dim and c["tie_word_embeddings"] is True, f"head_dim default {c['head_dim']}")

    # s2s-written qwen3 config read by transformers.
    tool("config-write", "qwen3", d, path("cfg_qwen3_s2s.json"))
    os.makedirs(path("cfg_qwen3_s2s"))
    shutil.copy(path("cfg_qwen3_s2s.json"), path("cfg_qwen3_s2s", "config.json"))
    back = AutoConfig.from_pretrained(path("cfg_qwen3_s2s"))
    check(type(back).__name__ == "Qwen3Config", "written config is a Qwen3Config")
    for k in ("vocab_size", "hidden_size", "num_key_value_heads", "head_dim", "tie_word_embeddings", "rms_norm_eps",
              "eos_token_id", "bos_token_id", "max_position_embeddings"):
        check(getattr(back, k) == getattr(q, k), f"s2s qwen3 config -> transformers: {k}")
    rp = getattr(back, "rope_parameters", None) or {}
    theta = rp.get("rope_theta", getattr(back, "rope_theta", None))
    check(theta == 1000000.0, f"rope_theta read back by transformers: {theta}")

    enc_kw = dict(d_model=64, encoder_layers=3, encoder_attention_heads=4, encoder_ffn_dim=256, num_mel_bins=80,
                  max_source_positions=750)
    a = Qwen2AudioConfig(audio_config=enc_kw, text_config=dict(model_type="qwen2", hidden_size=64))
    a.save_pretrained(path("cfg_qwen2_audio"))
    e = Qwen2AudioEncoderConfig(**enc_kw)
    e.save_pretrained(path("cfg_encoder"))
    for p in ("cfg_qwen2_audio", "cfg_encoder"):
        c = read_cfg("encoder", path(p))
        for k, v in enc_kw.items():
            check(c[k] == v, f"{p}: {k} {c[k]} vs {v}")
    tool("config-write", "encoder", path("cfg_qwen2_audio"), path("cfg_encoder_s2s.json"))
    back = Qwen2AudioEncoderConfig.from_dict(json.load(open(path("cfg_encoder_s2s.json"))))
    for k, v in enc_kw.items():
        check(getattr(back, k) == v, f"s2s encoder config -> transformers: {k}")

    # An OmniSpeechConfig as OpenS2S train.py builds it: the component configs' to_dict() nested, defaults
    # for the adapter, kernel sizes as the string OpenS2S splits.
    tts = Qwen3Config(vocab_size=168030, hidden_size=2048, intermediate_size=6144, num_hidden_layers=28,
                      num_attention_heads=16, num_key_value_heads=8, head_dim=128, tie_word_embeddings=True,
                      rope_theta=1000000.0)
    omni = {"architectures": ["OmniSpeechModel"], "audio_encoder_config": e.to_dict(), "llm_config": q.to_dict(),
            "tts_lm_config": tts.to_dict(), "lora_config": None, "conv_kernel_sizes": "5,5",
            "adapter_inner_dim": 512, "interleave_strategy": "4:8", "model_type": "", "torch_dtype": "bfloat16"}
    os.makedirs(path("cfg_omni"))
    json.dump(omni, open(path("cfg_omni", "config.json"), "w"), indent=2)
    c = read_cfg("omnispeech", path("cfg_omni"))
    check(c["conv_kernel_sizes"] == "5,5" and c["interleave_strategy"] == "4:8" and c["adapter_inner_dim"] == 512,
          f"omnispeech top level {c}")
    check(c["llm_config"]["hidden_size"] == 4096 and c["tts_lm_config"]["vocab_size"] == 168030 and
          c["tts_lm_config"]["tie_word_embeddings"] is True and c["audio_encoder_config"]["d_model"] == 64,
          "omnispeech nested")
    tool("config-write", "omnispeech", path("cfg_omni"), path("cfg_omni_s2s.json"))
    w = json.load(open(path("cfg_omni_s2s.json")))
    llm = Qwen3Config(**{k: v for k, v in w["llm_config"].items()})
    check(llm.hidden_size == 4096 and llm.num_key_value_heads == 8, "written llm_config builds a Qwen3Config")
    check([int(k) for k in w["conv_kernel_sizes"].split(",")] == [5, 5], "written kernel sizes split like OpenS2S")
    check(w["interleave_strategy"].split(":") == ["4", "8"], "written interleave strategy")

    # Unsupported or missing fields name the file and the field.
    bad = dict(q.to_dict())
    bad["attention_bias"] = True
    os.makedirs(path("cfg_bad1"))
    json.dump(bad, open(path("cfg_bad1", "config.json"), "w"))
    r = tool("config", "qwen3", path("cfg_bad1"), ok=False)
    check(r.returncode != 0 and path("cfg_bad1", "config.json") in r.stderr and "attention_bias" in r.stderr,
          f"attention_bias error: {r.stderr}")
    del bad["attention_bias"]
    del bad["hidden_size"]
    json.dump({"audio_encoder_config": e.to_dict(), "llm_config": bad, "tts_lm_config": tts.to_dict()},
              open(path("cfg_bad1", "config.json"), "w"))
    r = tool("config", "omnispeech", path("cfg_bad1"), ok=False)
    check(r.returncode != 0 and "llm_config.hidden_size" in r.stderr and "cfg_bad1" in r.stderr,
          f"missing nested field: {r.stderr}")


# ---- three Hugging Face directories -> OpenS2S names --------------------------------------------------------
def test_three_dirs():
    torch.manual_seed(5)
    acfg = Qwen2AudioConfig(
        audio_config=dict(d_model=16, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=32,
                          num_mel_bins=8, max_source_positions=10),
        text_config=dict(model_type="qwen2", hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, vocab_size=50))
    audio = Qwen2AudioForConditionalGeneration(acfg)
    audio.save_pretrained(path("three_audio"))
    llm = tiny_qwen3(tie=False, seed=6)
    llm.save_pretrained(path("three_llm"), max_shard_size="30KB")
    tts = tiny_qwen3(tie=True, vocab=120, seed=7).to(torch.bfloat16)
    tts.save_pretrained(path("three_tts"))
    out = path("three_out")
    r = tool("load-hf", path("three_audio"), path("three_llm"), path("three_tts"), out)
    lines = r.stdout.splitlines()
    check("missing audio_adapter.fc1.weight" in lines and "missing llm2tts.weight" in lines, f"report {lines}")
    check(any(x.startswith("resized llm_model.model.embed_tokens.weight: 96 rows") for x in lines), "resized")
    got = load_file(os.path.join(out, "model.safetensors"))
    want = {}
    # transformers 5 names the encoder model.audio_tower in memory and audio_tower on disk.
    for k, v in audio.state_dict().items():
        for pre in ("audio_tower.", "model.audio_tower."):
            if k.startswith(pre):
                want["audio_encoder_model." + k[len(pre):]] = v.float()
    check(len(want) == len([k for k in load_file(os.path.join(path("three_audio"), "model.safetensors"))
                            if k.startswith("audio_tower.")]), "audio tower tensors on disk")
    for k, v in llm.state_dict().items():
        want["llm_model." + k] = v.float()
    for k, v in load_file(os.path.join(path("three_tts"), "model.safetensors")).items():
        want["tts_lm_model." + k] = v.float()
    emb = got.pop("llm_model.model.embed_tokens.weight")
    check(torch.equal(emb[:96], want.pop("llm_model.model.embed_tokens.weight")), "resized embedding rows")
    check(torch.equal(emb[96:], torch.zeros(1, 32)), "new embedding row keeps its initial value")
    for k in ("audio_adapter.fc1.weight", "llm2tts.weight"):
        got.pop(k)
    same_tensors(got, want, "three HF dirs -> OpenS2S")
    check("tts_lm_model.lm_head.weight" not in got, "tied TTS has no lm_head")


# ---- malformed checkpoints ---------------------------------------------------------------------------------
def expect_fail(p, needle, what):
    r = tool("open", p, ok=False)
    check(r.returncode != 0 and p in r.stderr and needle in r.stderr, f"{what}: rc={r.returncode} {r.stderr!r}")


def test_malformed():
    src = path("package.safetensors")
    raw = open(src, "rb").read()
    hlen = int.from_bytes(raw[:8], "little")

    def variant(name, data):
        p = path(name)
        open(p, "wb").write(data)
        return p

    expect_fail(variant("cut.safetensors", raw[:-5]), "truncated", "truncated data")
    expect_fail(variant("cut_header.safetensors", raw[: 8 + hlen // 2]), "larger than the rest", "truncated header")
    expect_fail(variant("huge.safetensors", (1 << 62).to_bytes(8, "little") + raw[8:]), "100 MB", "huge header length")
    expect_fail(variant("garbage.safetensors", raw[:8] + b"\x89PNG" + raw[12:]), "not a safetensors", "garbage header")
    header = json.loads(raw[8:8 + hlen])
    header["f32"]["data_offsets"] = [o + 4 for o in header["f32"]["data_offsets"]]
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    expect_fail(variant("offsets.safetensors", len(h).to_bytes(8, "little") + h + raw[8 + hlen:]), "f32",
                "shifted offsets")
    d = path("hf_qwen3_bf16")
    shard = sorted(f for f in os.listdir(d) if f.startswith("model-"))[1]
    os.rename(os.path.join(d, shard), path("moved_shard"))
    r = tool("open", d, ok=False)
    check(r.returncode != 0 and os.path.join(d, shard) in r.stderr and "index.json" in r.stderr,
          f"missing shard: {r.stderr!r}")
    os.rename(path("moved_shard"), os.path.join(d, shard))


def main():
    try:
        for t in (test_safetensors_package, test_transformers_sharded, test_writer_to_transformers, test_configs,
                  test_three_dirs, test_malformed):
            try:
                t()
            except Exception as e:  # one broken area should not hide the others
                failures.append(f"{t.__name__}: {e!r}")
                print("ERROR in", t.__name__, repr(e), file=sys.stderr)
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    if failures:
        print(f"test_checkpoint.py: {len(failures)} failure(s)", file=sys.stderr)
        sys.exit(1)
    print("test_checkpoint.py: ok")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The s2s tokenizer against Hugging Face `tokenizers` on the committed tiny Qwen-style tokenizers.

usage: python3 tests/data/test_tokenizer.py S2S_BINARY BUILD_DIR   (from the repository root; ctest does this)

Checks, for the LLM and the TTS tokenizer: ids of every corpus line and of the whole corpus equal HF's;
decoding (with and without special tokens, and of prefixes that cut multi-byte characters) equals HF's;
the same with the file rewritten in the other merges format and with other added-token flags and
pre-tokenizer options; malformed files and invalid input fail with messages that name the file and field;
and --bench counts the tokens HF does. The speed against HF is bench/bench_data.py's, not a test's.
"""
import copy
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import zlib

os.environ["TOKENIZERS_PARALLELISM"] = "false"
from tokenizers import Tokenizer  # noqa: E402

S2S = os.path.abspath(sys.argv[1])
ROOT = os.getcwd()
LLM = os.path.join(ROOT, "configs/tiny/tokenizer")
TTS = os.path.join(ROOT, "configs/tiny/tts-tokenizer")
CORPUS = os.path.join(ROOT, "tests/data/tokenizer_corpus.txt")
TMP = tempfile.mkdtemp(prefix="s2s_tok_")
FUZZ_N = int(os.environ.get("S2S_TOK_FUZZ", "400"))  # random strings per tokenizer
failures = []


def check(ok, what):
    if not ok:
        failures.append(what)
        print("FAIL:", what)


def s2s(*args, ok=True):
    r = subprocess.run([S2S, "tokenize", *args], capture_output=True)
    if ok and r.returncode:
        raise SystemExit(f"s2s tokenize {' '.join(args)} failed ({r.returncode}): {r.stderr.decode()}")
    return r


def ids_of(out):
    return [int(x) for x in out.split()]


def read_corpus():
    with open(CORPUS, encoding="utf-8", newline="") as f:
        text = f.read()
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
    return text, lines


def write(path, text):
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)


def compare_encode(name, tokdir, hf, text, lines):
    """Line by line and whole text; returns the HF encodings of the lines."""
    path = os.path.join(TMP, "input.txt")
    write(path, text)
    ours = s2s("--tokenizer", tokdir, "--file", path, "--lines").stdout.decode().split("\n")
    theirs = hf.encode_batch(lines)
    bad = 0
    for i, (line, h) in enumerate(zip(lines, theirs)):
        if ids_of(ours[i]) != h.ids:
            bad += 1
            if bad <= 5:
                print(f"  {name} line {i + 1} {line[:60]!r}\n    hf  {h.ids}\n    s2s {ours[i]}")
    check(bad == 0, f"{name}: {bad} of {len(lines)} lines differ from HF")
    whole = ids_of(s2s("--tokenizer", tokdir, "--file", path).stdout.decode())
    check(whole == hf.encode(text).ids, f"{name}: whole-text ids differ from HF")
    print(f"{name}: {len(lines)} lines and the whole text ({len(whole)} ids) match HF")
    return theirs


def compare_decode(name, tokdir, hf, encodings):
    bad = 0
    calls = 0
    rnd = random.Random(1)
    for enc in encodings:
        ids = enc.ids
        if not ids:
            continue
        cases = [(ids, False), (ids, True)]
        if any(len(t.encode()) != len(t) for t in enc.tokens):  # non-ASCII: cut it mid-character too
            cut = rnd.randrange(1, len(ids) + 1)
            cases.append((ids[:cut], False))
        for sub, skip in cases:
            args = ["--tokenizer", tokdir, "--decode", " ".join(map(str, sub))] + (["--skip-special"] if skip else [])
            got = s2s(*args).stdout.decode("utf-8")[:-1]  # the CLI ends with a newline
            want = hf.decode(sub, skip_special_tokens=skip)
            calls += 1
            if got != want:
                bad += 1
                if bad <= 5:
                    print(f"  {name} decode{' skip' if skip else ''} {sub[:12]}...\n    hf  {want!r}\n    s2s {got!r}")
    check(bad == 0, f"{name}: {bad} of {calls} decodes differ from HF")
    print(f"{name}: {calls} decodes match HF")


FUZZ_PIECES = [" ", "  ", "   ", "\t", "\r", "\r\r", "\u00a0", "\u3000", "\u180e", "\u2028", "a", "b", "The", "the",
               "café", "Cafe\u0301", "\u0301", "e\u1df6\u0301", "'", "'s", "'S", "'ll", "'ſ", "0", "12", "345", "٣",
               "中", "文字", "日本", "한", "😀", "👍🏽", "👨‍👩‍👧", "!", "?!", "...", "—", "_", "-", "\\", "\"",
               "<", "|", ">", "<|", "|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>", "<|endoftext|>",
               "<|im_audio_start|>", "<|im_tts_end|>", "<|audio_3|>", "<|audio_16383|>", "<|audio_", "\x01", "\u200d"]


def fuzz_lines(n, seed):
    """Random strings made of the pieces where splitting rules meet: whitespace, marks, apostrophes, tokens."""
    rnd = random.Random(seed)
    return ["".join(rnd.choice(FUZZ_PIECES) for _ in range(rnd.randrange(0, 24))) for _ in range(n)]


def variant(name, base_dir, edit, text, lines):
    """Rewrites tokenizer.json with edit(d), then compares ids with HF on the corpus and on fuzz strings."""
    with open(os.path.join(base_dir, "tokenizer.json"), encoding="utf-8") as f:
        d = json.load(f)
    edit(d)
    vdir = os.path.join(TMP, name)
    os.makedirs(vdir, exist_ok=True)
    write(os.path.join(vdir, "tokenizer.json"), json.dumps(d, ensure_ascii=False, indent=2))
    hf = Tokenizer.from_file(os.path.join(vdir, "tokenizer.json"))
    compare_encode(name, vdir, hf, text, lines)
    fuzz = fuzz_lines(FUZZ_N, zlib.crc32(name.encode()))
    compare_encode(name + " fuzz", vdir, hf, "\n".join(fuzz), fuzz)


def string_merges(d):  # the original Qwen2 files write merges as "a b"
    d["model"]["merges"] = [" ".join(m) for m in d["model"]["merges"]]


def added_flags(d):
    for t in d["added_tokens"]:
        c = t["content"]
        if c == "<|im_start|>":
            t["lstrip"] = True
        elif c == "<|im_end|>":
            t["rstrip"] = True
        elif c == "<think>":
            t["single_word"] = True
        elif c == "</think>":
            t["normalized"] = True
        elif c == "<|endoftext|>":
            t["lstrip"] = t["rstrip"] = True
    # an added token whose content is a model token keeps the model id; ids in the file are advisory
    d["added_tokens"].append({"id": 99999, "content": "the", "single_word": False, "lstrip": False,
                              "rstrip": False, "normalized": True, "special": False})
    d["added_tokens"].append({"id": 99999, "content": "Caf\u00e9", "single_word": True, "lstrip": False,
                              "rstrip": False, "normalized": True, "special": False})


def gpt2_style(d):  # ByteLevel alone: GPT-2's regex and a prefix space
    d["pre_tokenizer"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}
    d["normalizer"] = None


def ignore_merges(d):
    d["model"]["ignore_merges"] = True


def malformed(base_dir):
    with open(os.path.join(base_dir, "tokenizer.json"), encoding="utf-8") as f:
        good = f.read()
    d0 = json.loads(good)
    cases = []

    def case(name, text, expect):
        cases.append((name, text, expect))

    case("truncated", good[: len(good) // 2], "invalid JSON")
    d = copy.deepcopy(d0); del d["model"]["vocab"]; case("no_vocab", json.dumps(d), "model.vocab")
    d = copy.deepcopy(d0); d["model"]["merges"][3] = ["\u0120t", "NOT_A_TOKEN"]; case("bad_merge", json.dumps(d), "model.merges[3]")
    d = copy.deepcopy(d0); d["model"]["merges"][5] = "onlyone"; case("merge_form", json.dumps(d), "model.merges[5]")
    d = copy.deepcopy(d0); del d["added_tokens"][2]["content"]; case("added_content", json.dumps(d), "added_tokens[2]")
    d = copy.deepcopy(d0); d["added_tokens"][0]["special"] = "yes"; case("added_flag", json.dumps(d), "added_tokens[0].special")
    d = copy.deepcopy(d0); d["normalizer"] = {"type": "Lowercase"}; case("normalizer", json.dumps(d), "normalizer")
    d = copy.deepcopy(d0); d["pre_tokenizer"]["pretokenizers"][0]["pattern"] = {"Regex": "(unclosed"}
    case("regex", json.dumps(d), "pre_tokenizer.pretokenizers[0]")
    d = copy.deepcopy(d0); d["model"]["vocab"]["\u0120t"] = -3; case("vocab_id", json.dumps(d), "model.vocab")
    d = copy.deepcopy(d0); d["model"]["type"] = "WordPiece"; case("model_type", json.dumps(d), "model.type")
    d = copy.deepcopy(d0); d["post_processor"] = {"type": "TemplateProcessing"}; case("post", json.dumps(d), "post_processor")
    for name, text, expect in cases:
        vdir = os.path.join(TMP, "bad_" + name)
        os.makedirs(vdir, exist_ok=True)
        path = os.path.join(vdir, "tokenizer.json")
        write(path, text)
        r = s2s("--tokenizer", vdir, "--text", "hi", ok=False)
        err = r.stderr.decode()
        check(r.returncode != 0 and path in err and expect in err,
              f"malformed {name}: rc {r.returncode}, want '{path}' and '{expect}' in: {err.strip()}")
    r = s2s("--tokenizer", os.path.join(TMP, "no_such_dir"), "--text", "hi", ok=False)
    check(r.returncode != 0 and "no_such_dir" in r.stderr.decode(), "missing directory gives an error")
    # invalid UTF-8 input names the byte
    path = os.path.join(TMP, "invalid.txt")
    with open(path, "wb") as f:
        f.write(b"abc\xff\xfe def")
    r = s2s("--tokenizer", base_dir, "--file", path, ok=False)
    check(r.returncode != 0 and "invalid UTF-8 at byte 3" in r.stderr.decode(), "invalid UTF-8 is refused")
    r = s2s("--tokenizer", base_dir, "--decode", "1 2 99999999", ok=False)
    check(r.returncode != 0 and "99999999" in r.stderr.decode(), "out-of-range id is refused")
    print(f"malformed: {len(cases) + 4} error cases give clear messages")


def edge_inputs(tokdir, hf):
    """Inputs the corpus file cannot hold: NUL bytes, text without a trailing newline."""
    for text in ["nul \x00 inside \x00é", "\x00", "no newline at the end", "\n", "\n\n\r\n", "é\u0301\x00"]:
        path = os.path.join(TMP, "edge.txt")
        write(path, text)
        got = ids_of(s2s("--tokenizer", tokdir, "--file", path).stdout.decode())
        check(got == hf.encode(text).ids, f"edge input {text!r}: {got} vs {hf.encode(text).ids}")


def special_ids(tokdir, hf):
    info = s2s("--tokenizer", tokdir, "--info").stdout.decode().split()
    kv = dict(zip(info[::2], map(int, info[1::2])))
    check(kv["vocab_size"] == hf.get_vocab_size(with_added_tokens=True), f"vocab size {kv}")
    check(kv["model_vocab"] == hf.get_vocab_size(with_added_tokens=False), f"model vocab size {kv}")
    check(kv["eos"] == hf.token_to_id("<|im_end|>"), f"eos id {kv}")
    check(kv["pad"] == hf.token_to_id("<|endoftext|>"), f"pad id {kv}")


def bench_text():
    _, lines = read_corpus()
    rnd = random.Random(0)
    out, n = [], 0
    while n < 300_000:
        line = rnd.choice(lines)
        out.append(line)
        n += len(line.encode()) + 1
    return "\n".join(out)


def bench_count(name, tokdir, hf, text):
    """--bench encodes the text it times: its token count is HF's. The speed itself is bench/bench_data.py's
    (bench/run.sh --data), not a test's: a timing depends on what else the machine runs."""
    path = os.path.join(TMP, "bench.txt")
    write(path, text)
    n_hf = len(hf.encode(text).ids)
    out = s2s("--tokenizer", tokdir, "--file", path, "--bench").stdout.decode().split()
    kv = dict(zip(out[::2], out[1::2]))
    check(int(kv["tokens"]) == n_hf and float(kv["tokens_per_s"]) > 0,
          f"{name} bench: token counts differ ({kv['tokens']} vs {n_hf})")
    print(f"{name} bench: {n_hf} tokens, as HF")


def transformers_loads(dirs, text):
    """The directories are Hugging Face tokenizer directories: AutoTokenizer loads them, same ids."""
    try:
        from transformers import AutoTokenizer
    except ImportError:
        print("transformers not installed: AutoTokenizer check skipped")
        return
    for d in dirs:
        at = AutoTokenizer.from_pretrained(d)
        hf = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
        check(at.encode(text) == hf.encode(text).ids, f"AutoTokenizer({d}) ids differ from tokenizers")
        check(at.eos_token == "<|im_end|>", f"AutoTokenizer({d}) eos is {at.eos_token}")
    print("transformers.AutoTokenizer loads both directories with the same ids")


def main():
    t_start = time.time()
    text, lines = read_corpus()
    llm = Tokenizer.from_file(os.path.join(LLM, "tokenizer.json"))
    tts = Tokenizer.from_file(os.path.join(TTS, "tokenizer.json"))

    enc = compare_encode("llm", LLM, llm, text, lines)
    fuzz = fuzz_lines(FUZZ_N, 1)
    compare_encode("llm fuzz", LLM, llm, "\n".join(fuzz), fuzz)
    compare_encode("tts fuzz", TTS, tts, "\n".join(fuzz), fuzz)
    compare_decode("llm", LLM, llm, enc)
    enc = compare_encode("tts", TTS, tts, text, lines)
    compare_decode("tts", TTS, tts, [e for e, l in zip(enc, lines) if "audio" in l or "<|" in l])
    units = "".join(f"<|audio_{random.Random(i).randrange(16384)}|>" for i in range(500))
    compare_encode("tts-units", TTS, tts, units + "\n", [units])
    special_ids(LLM, llm)
    special_ids(TTS, tts)
    edge_inputs(LLM, llm)

    variant("string-merges", LLM, string_merges, text, lines)
    variant("added-flags", LLM, added_flags, text, lines)
    variant("gpt2-style", LLM, gpt2_style, text, lines)
    variant("ignore-merges", LLM, ignore_merges, text, lines)
    malformed(LLM)

    bench_count("llm text", LLM, llm, bench_text())
    bench_count("tts units", TTS, tts, "".join(f"<|audio_{(i * 7919) % 16384}|>" for i in range(20000)))
    transformers_loads([LLM, TTS], text)

    print(f"{time.time() - t_start:.1f} s")
    if failures:
        print(f"inputs kept in {TMP}")
        print(f"0 passed, {len(failures)} failed")
        sys.exit(1)
    shutil.rmtree(TMP, ignore_errors=True)
    print("test_tokenizer: all checks passed")


if __name__ == "__main__":
    main()

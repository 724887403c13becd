"""`s2s prep` writes shards whose input_ids, labels, token_types, audio, units, teacher prompts and speaker
embeddings equal a Python rendering of OpenS2S process_dataset (tests/data/opens2s_reference.py, with Hugging Face
transformers tokenizers) token for token; bad lines are reported as file:line and skipped with the right counts;
--jobs 1 and --jobs 3 write identical shards; a killed or failing run never leaves an incomplete file under a
final shard name.

usage: python3 tests/data/test_prep.py S2S_BINARY BUILD_DIR   (from the repository root; ctest does this)
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import wave

import h5py
import numpy as np
from transformers import AutoTokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import opens2s_reference as ref  # noqa: E402

S2S = sys.argv[1] if len(sys.argv) > 1 else "build/s2s"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LLM_TOK = os.path.join(ROOT, "configs/tiny/tokenizer")
TTS_TOK = os.path.join(ROOT, "configs/tiny/tts-tokenizer")
os.environ["HDF5_USE_FILE_LOCKING"] = "FALSE"
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, flush=True)


def write_wav(path, pcm, rate=16000):
    pcm = np.asarray(pcm, np.int16)
    with wave.open(path, "wb") as f:
        f.setnchannels(1 if pcm.ndim == 1 else pcm.shape[1])
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes(pcm.tobytes())


def prep(manifests, out, *extra, check_rc=None):
    cmd = [S2S, "prep", "--manifest", ",".join(manifests), "--tokenizer", LLM_TOK, "--tts-tokenizer", TTS_TOK,
           "--out", out, "--quiet", *extra]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if check_rc is not None and p.returncode != check_rc:
        check(False, f"{' '.join(cmd)}: exit {p.returncode}, expected {check_rc}\n{p.stdout}{p.stderr}")
    return p


def read_samples(out, kind):
    """Every sample of `kind` in out/, shard by shard in name order, as dicts of lists."""
    samples = []
    for name in sorted(n for n in os.listdir(out) if n.startswith(kind + "-") and n.endswith(".h5")):
        with h5py.File(os.path.join(out, name), "r") as f:
            n = int(f.attrs["num_samples"])
            to = f["text_offsets"][:]
            ids, labels, types = f["input_ids"][:], f["labels"][:], f["token_types"][:]
            flags = f["flags"][:]
            sao = f["sample_audio_offsets"][:] if "audio" in f else np.zeros(n + 1, np.int64)
            ao = f["audio_offsets"][:] if "audio" in f else None
            uo = f["unit_offsets"][:] if "units" in f else np.zeros(n + 1, np.int64)
            tof = f["teacher_offsets"][:] if "teacher_ids" in f else np.zeros(n + 1, np.int64)
            for i in range(n):
                s = dict(input_ids=ids[to[i]:to[i + 1]].tolist(), labels=labels[to[i]:to[i + 1]].tolist(),
                         token_types=types[to[i]:to[i + 1]].tolist(), flags=int(flags[i]),
                         audios=[f["audio"][ao[j]:ao[j + 1]] for j in range(sao[i], sao[i + 1])],
                         units=f["units"][uo[i]:uo[i + 1]].tolist() if "units" in f else [],
                         teacher_ids=f["teacher_ids"][tof[i]:tof[i + 1]].tolist() if "teacher_ids" in f else [],
                         teacher_labels=f["teacher_labels"][tof[i]:tof[i + 1]].tolist() if "teacher_ids" in f else [],
                         spk_emb=f["spk_emb"][i] if "spk_emb" in f else None,
                         emotion=int(f["emotion"][i]) if "emotion" in f else -1, shard=name)
                samples.append(s)
    return samples


def dump_dir(out):
    """Every shard's datasets and attributes as bytes, plus prep.json: what two runs must agree on."""
    d = {}
    for name in sorted(os.listdir(out)):
        path = os.path.join(out, name)
        if name.endswith(".h5"):
            with h5py.File(path, "r") as f:
                d[name] = ({k: (str(f[k].dtype), f[k].shape, f[k][()].tobytes()) for k in f},
                           {k: str(v) for k, v in f.attrs.items()})
        else:
            d[name] = open(path, "rb").read()
    return d


def main():
    tok = AutoTokenizer.from_pretrained(LLM_TOK)
    tts = AutoTokenizer.from_pretrained(TTS_TOK)
    # OpenS2S's offline step adds these to the LLM tokenizer; the tiny tokenizer already has them.
    for t in ("<|im_audio_start|>", "<|im_audio_end|>", "<|im_tts_start|>", "<|im_tts_end|>"):
        assert tok.convert_tokens_to_ids(t) is not None and tok.convert_tokens_to_ids(t) >= 0, t
    tmp = tempfile.mkdtemp(prefix="s2s_prep_")
    try:
        run_tests(tmp, tok, tts)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print(f"{len(failures)} failure(s)")
        sys.exit(1)
    print("test_prep: all passed")


def run_tests(tmp, tok, tts):
    rng = np.random.default_rng(7)
    audio_dir = os.path.join(tmp, "audio")
    os.makedirs(audio_dir)
    pcm = {
        "a16.wav": rng.integers(-20000, 20000, 16000).astype(np.int16),
        "b16.wav": rng.integers(-20000, 20000, 12000).astype(np.int16),
        "short.wav": rng.integers(-20000, 20000, 4000).astype(np.int16),
    }
    for name, x in pcm.items():
        write_wav(os.path.join(audio_dir, name), x)
    # 24 kHz stereo: resampled and down-mixed by prep; checked by length (data/audio/audio.c has its own tests).
    write_wav(os.path.join(audio_dir, "c24.wav"), rng.integers(-9000, 9000, (19200, 2)), rate=24000)
    spk = rng.standard_normal((1, 1, 512)).astype(np.float32)
    np.save(os.path.join(audio_dir, "spk.npy"), spk)
    abs_b16 = os.path.join(audio_dir, "b16.wav")

    def item(text="", audio="", units="", spk_emb=""):  # the README's item form: all four keys
        return {"text": text, "audio": audio, "speech_units": units, "spk_emb": spk_emb}

    instruct = [
        # speech in / text out, single turn (text_generation.py's stage-1 form)
        {"messages": [{"role": "user", "content": [item("Continue the following sentence in a coherent style: "),
                                                   item(audio="a16.wav")]},
                      {"role": "assistant", "content": [item("It was a bright cold day in April.")]}]},
        # the README example: speech in / speech out
        {"messages": [{"role": "user", "content": [item("continue the following sentence"), item(audio="a16.wav")]},
                      {"role": "assistant", "content": [item("hello", units="<|audio_0|><|audio_1|>")]}]},
        # speech in / speech out with a speaker embedding, absolute audio path
        {"messages": [{"role": "user", "content": [item(audio=abs_b16)]},
                      {"role": "assistant", "content": [item("Sure, here you go.", units="<|audio_16383|><|audio_7|>"
                                                             "<|audio_7|><|audio_1200|>", spk_emb="spk.npy")]}]},
        # text in / speech out, Chinese
        {"messages": [{"role": "user", "content": [item("今天天气怎么样？")]},
                      {"role": "assistant", "content": [item("今天天气很好。", units="<|audio_3|><|audio_4|><|audio_5|>")]}]},
        # multi-turn: speech, then text with a text + speech reply; keys left out as HF datasets would fill None
        {"messages": [{"role": "user", "content": [{"audio": "b16.wav"}]},
                      {"role": "assistant", "content": [{"text": "I hear you.", "speech_units": "<|audio_9|>"}]},
                      {"role": "user", "content": [{"text": "Tell me more, 请说中文。"}]},
                      {"role": "assistant", "content": [{"text": "好的。"},
                                                        {"text": "我们去公园散步吧。", "speech_units": "<|audio_11|><|audio_12|>"}]}]},
        # a custom system prompt, string contents, text only
        {"messages": [{"role": "system", "content": "You are an empathetic assistant."},
                      {"role": "user", "content": "I lost my keys again..."},
                      {"role": "assistant", "content": "That sounds frustrating. Where did you last see them?"}]},
        # two audios in one turn (a segment and a resampled stereo file), an empty item, units as indices
        {"messages": [{"role": "user", "content": [item(audio="a16.wav:1000:9000"), item(),
                                                   item("and", audio=""), {"audio": "c24.wav", "text": None}]},
                      {"role": "assistant", "content": [{"text": "Two clips.", "speech_units": [0, 16383, 42]}]}]},
        # a system message given as items, then a longer dialogue without speech
        {"messages": [{"role": "system", "content": [{"text": "Answer briefly."}]},
                      {"role": "user", "content": [{"text": "2+2?"}]},
                      {"role": "assistant", "content": [{"text": "4."}]},
                      {"role": "user", "content": [{"text": "And 3+3?"}]},
                      {"role": "assistant", "content": [{"text": "6."}]}]},
    ]
    align = [
        {"audio": "a16.wav", "continuation": "and then the rain stopped.", "transcript": "It rained all day",
         "emotion": 2},
        {"audio": "b16.wav", "continuation": "我很高兴。", "emotion": "happy"},
        {"audio": "b16.wav:0:8000", "continuation": "Yes.", "transcript": "Is it?", "instruction": ""},
    ]
    stage2a = [
        {"text": "Hello world.", "units": "<|audio_5|><|audio_7|><|audio_16000|>"},
        {"text": "端到端的语音模型。", "units": [1, 2, 3, 4]},
    ]
    man_a, man_b = os.path.join(tmp, "a.jsonl"), os.path.join(tmp, "b.jsonl")
    with open(man_a, "w") as f:
        for r in instruct:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    with open(man_b, "w") as f:
        for r in align + stage2a:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")

    # ---- token for token against the reference ----
    out = os.path.join(tmp, "out")
    p = prep([man_a, man_b], out, "--audio-root", audio_dir, "--emotion-labels", "neutral,happy,sad", check_rc=0)
    check(f"{len(instruct) + len(align) + len(stage2a)} kept" in p.stdout and "0 skipped" in p.stdout,
          f"summary line: {p.stdout!r}")
    check(p.stderr == "", f"no skipped lines expected, got {p.stderr!r}")
    got = read_samples(out, "instruct")
    check(len(got) == len(instruct), f"instruct samples {len(got)} != {len(instruct)}")
    for i, (r, s) in enumerate(zip(instruct, got)):
        e = ref.process_dataset(r, tok, tts)
        for k in ("input_ids", "labels", "token_types"):
            check(s[k] == e[k], f"instruct {i}: {k}\n got {s[k]}\n exp {e[k]}")
        check(s["units"] == [u for us in e["speech_units"] for u in us], f"instruct {i}: units {s['units']}")
        check(len(s["audios"]) == len(e["audio_paths"]), f"instruct {i}: audio count")
        for a, path in zip(s["audios"], e["audio_paths"]):
            m = re.fullmatch(r"(.*):(\d+):(\d+)", path)
            name = os.path.basename(m.group(1) if m else path)
            if name in pcm:
                x = pcm[name][int(m.group(2)):int(m.group(2)) + int(m.group(3))] if m else pcm[name]
                check(np.array_equal(a, x), f"instruct {i}: audio {path} differs from the wav")
            else:
                check(len(a) == 12800, f"instruct {i}: {path} resampled to {len(a)} samples, expected 12800")
        has_spk = any(e["spk_emb_paths"])
        check(bool(s["flags"] & 2) == has_spk, f"instruct {i}: HAS_SPK_EMB flag")
        if has_spk:
            check(np.array_equal(s["spk_emb"], spk.reshape(-1)), f"instruct {i}: spk_emb")
    # the reference's reading: the pieces the design brief lists, checked on the README example by hand
    im = lambda t: tok.convert_tokens_to_ids(t)  # noqa: E731
    s = got[1]
    check(s["input_ids"][:len(tok.encode("<|im_start|>"))] == [im("<|im_start|>")], "sample opens with <|im_start|>")
    check(s["input_ids"].count(-200) == 1 and s["token_types"].count(1) == len(tok.encode(
        "<|im_tts_start|>hello<|im_tts_end|>")), "README example: one audio, one tts span")
    check(s["units"] == [tts.convert_tokens_to_ids("<|audio_0|>"), tts.convert_tokens_to_ids("<|audio_1|>"),
                         tts.eos_token_id], f"README example units {s['units']}")

    got = read_samples(out, "align")
    check(len(got) == len(align), f"align samples {len(got)}")
    for i, (r, s) in enumerate(zip(align, got)):
        e = ref.align_record(r, tok)
        for k in ("input_ids", "labels", "token_types"):
            check(s[k] == e[k], f"align {i}: {k}\n got {s[k]}\n exp {e[k]}")
        check(s["teacher_ids"] == e.get("teacher_ids", []), f"align {i}: teacher_ids")
        check(s["teacher_labels"] == e.get("teacher_labels", []), f"align {i}: teacher_labels")
        emo = r.get("emotion")
        emo = ["neutral", "happy", "sad"].index(emo) if isinstance(emo, str) else (-1 if emo is None else emo)
        check(s["emotion"] == emo, f"align {i}: emotion {s['emotion']} != {emo}")
        check(len(s["audios"]) == 1, f"align {i}: one audio")
    check(np.array_equal(got[2]["audios"][0], pcm["b16.wav"][:8000]), "align segment audio")

    got = read_samples(out, "tts_pretrain")
    check(len(got) == len(stage2a), f"tts_pretrain samples {len(got)}")
    for i, (r, s) in enumerate(zip(stage2a, got)):
        e = ref.tts_record(r, tts)
        for k in ("input_ids", "labels", "token_types"):
            check(s[k] == e[k], f"tts_pretrain {i}: {k}\n got {s[k]}\n exp {e[k]}")
        check(s["units"] == e["speech_units"][0], f"tts_pretrain {i}: units")

    summary = json.load(open(os.path.join(out, "prep.json")))
    check(summary["kept"] == len(instruct) + len(align) + len(stage2a) and summary["skipped"] == 0,
          f"prep.json counts {summary}")
    import hashlib
    check(summary["llm_tokenizer_sha256"] == hashlib.sha256(open(os.path.join(LLM_TOK, "tokenizer.json"), "rb")
                                                            .read()).hexdigest(), "llm tokenizer sha256")
    with h5py.File(os.path.join(out, "instruct-00000.h5"), "r") as f:
        check(f.attrs["llm_tokenizer_sha256"] == summary["llm_tokenizer_sha256"], "shard llm hash attribute")
        check(f.attrs["tts_tokenizer_sha256"] == summary["tts_tokenizer_sha256"], "shard tts hash attribute")
    with h5py.File(os.path.join(out, "tts_pretrain-00000.h5"), "r") as f:
        check(f.attrs["llm_tokenizer_sha256"] == "", "tts_pretrain shards carry no LLM hash")
    for name in os.listdir(out):
        if name.endswith(".h5"):
            q = subprocess.run([S2S, "inspect", os.path.join(out, name)], capture_output=True, text=True)
            check(q.returncode == 0, f"s2s inspect {name}: {q.stdout}{q.stderr}")

    # an existing output is refused without --overwrite
    p = prep([man_a], out, "--audio-root", audio_dir, check_rc=1)
    check("--overwrite" in p.stderr, f"re-running into an output dir: {p.stderr!r}")

    # --enable-thinking drops <think></think>
    out_t = os.path.join(tmp, "out_think")
    prep([man_a], out_t, "--audio-root", audio_dir, "--enable-thinking", check_rc=0)
    for i, (r, s) in enumerate(zip(instruct, read_samples(out_t, "instruct"))):
        e = ref.process_dataset(r, tok, tts, enable_thinking=True)
        check(s["input_ids"] == e["input_ids"] and s["labels"] == e["labels"], f"enable_thinking instruct {i}")

    test_bad_lines(tmp, audio_dir)
    test_jobs_and_rolling(tmp, audio_dir, man_a, man_b)
    test_interrupted(tmp, audio_dir)


def test_bad_lines(tmp, audio_dir):
    good_instruct = json.dumps({"messages": [{"role": "user", "content": [{"audio": "a16.wav"}]},
                                             {"role": "assistant", "content": [{"text": "ok"}]}]})
    long_text = " ".join(["word"] * 400)
    lines = [  # (line, reason pattern or None for kept)
        (good_instruct, None),
        ('{"messages": [', r"invalid JSON"),
        (json.dumps({"messages": [{"role": "user", "content": [{"audio": "nope.wav"}]},
                                  {"role": "assistant", "content": "x"}]}),
         r"messages\[0\]\.content\[0\]\.audio: .*nope\.wav"),
        (json.dumps({"audio": "a16.wav", "transcript": "hi"}), r"continuation: missing"),
        (json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": [
            {"text": "x", "speech_units": "<|audio_1|>oops"}]}]}),
         r"messages\[1\]\.content\[0\]\.speech_units: .*not a speech unit"),
        (json.dumps({"text": "hi", "units": [16384]}), r"units\[0\]: a unit index must be an integer in 0\.\.16383"),
        (json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": [
            {"audio": "a16.wav"}]}]}), r"audio input is only allowed in a user turn"),
        (json.dumps({"messages": [{"role": "tool", "content": "hi"}]}), r"messages\[0\]\.role must be"),
        (json.dumps({"messages": [{"role": "user", "content": [{"audio": "short.wav"}]},
                                  {"role": "assistant", "content": "x"}]}), r"fewer than 8000"),
        ("   ", "blank"),
        (json.dumps({"text": long_text, "units": [1, 2]}), r"more than --max-tokens 300"),
        (json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": [
            {"speech_units": "<|audio_1|>"}]}]}), r"a speech response needs its text"),
        (json.dumps({"messages": {"role": "user"}}), r"messages must be a list"),
        (json.dumps({"foo": 1}), r"unknown record"),
        (json.dumps({"messages": [{"role": "user", "content": "hi"}]}), r"nothing to train on"),
        (json.dumps({"text": "fine", "units": "<|audio_2|>"}), None),
    ]
    man = os.path.join(tmp, "broken.jsonl")
    with open(man, "w") as f:
        for line, _ in lines:
            f.write(line + "\n")
    out = os.path.join(tmp, "out_broken")
    p = prep([man], out, "--audio-root", audio_dir, "--max-tokens", "300", "--jobs", "2", check_rc=0)
    err = p.stderr.splitlines()
    kept = sum(1 for _, r in lines if r is None)
    bad = [(n + 1, r) for n, (_, r) in enumerate(lines) if r not in (None, "blank")]
    check(len(err) == len(bad), f"expected {len(bad)} reported lines, got {len(err)}:\n{p.stderr}")
    for (lineno, pat), msg in zip(bad, err):
        check(msg.startswith(f"{man}:{lineno}: ") and re.search(pat, msg), f"line {lineno}: {msg!r} !~ {pat}")
    check(f"{len(bad) + kept} records: {kept} kept" in p.stdout and f"{len(bad)} skipped" in p.stdout,
          f"counts: {p.stdout!r}")
    summary = json.load(open(os.path.join(out, "prep.json")))
    check((summary["records"], summary["kept"], summary["skipped"]) == (len(bad) + kept, kept, len(bad)),
          f"prep.json counts {summary['records']} {summary['kept']} {summary['skipped']}")
    # nothing kept: exit 1
    man2 = os.path.join(tmp, "all_bad.jsonl")
    with open(man2, "w") as f:
        f.write("not json\n")
    p = prep([man2], os.path.join(tmp, "out_all_bad"), check_rc=1)
    check(f"{man2}:1: invalid JSON" in p.stderr and "no record was kept" in p.stderr, f"all bad: {p.stderr!r}")


def test_jobs_and_rolling(tmp, audio_dir, man_a, man_b):
    # enough records for many shards at a small --shard-mb
    man = os.path.join(tmp, "many.jsonl")
    with open(man, "w") as f:
        for _ in range(12):
            f.write(open(man_a).read() + open(man_b).read())
    outs = {}
    for jobs in (1, 3):
        outs[jobs] = os.path.join(tmp, f"out_jobs{jobs}")
        prep([man], outs[jobs], "--audio-root", audio_dir, "--emotion-labels", "neutral,happy,sad",
             "--shard-mb", "0.1", "--jobs", str(jobs), check_rc=0)
    d1, d3 = dump_dir(outs[1]), dump_dir(outs[3])
    check(sorted(d1) == sorted(d3), f"--jobs 1 vs 3 file lists differ: {sorted(d1)} {sorted(d3)}")
    for name in d1:
        check(d1[name] == d3.get(name), f"--jobs 1 vs 3: {name} differs")
    summary = json.load(open(os.path.join(outs[1], "prep.json")))
    limit = summary["shard_bytes"]
    n_instruct = summary["kinds"]["instruct"]["shards"]
    check(len(n_instruct) > 3, f"expected several instruct shards, got {len(n_instruct)}")
    for kind, info in summary["kinds"].items():
        for sh in info["shards"][:-1]:
            check(sh["bytes"] >= limit, f"{kind} shard {sh['file']} closed early at {sh['bytes']} bytes")
        check(sum(sh["samples"] for sh in info["shards"]) == info["samples"], f"{kind} shard sample counts")
        names = [sh["file"] for sh in info["shards"]]
        check(names == [f"{kind}-{i:05d}.h5" for i in range(len(names))], f"{kind} shard names {names}")


def complete(path):
    """True when the file is a whole shard: its attributes and every offsets dataset agree."""
    try:
        with h5py.File(path, "r") as f:
            n = int(f.attrs["num_samples"])
            ok = len(f["text_offsets"]) == n + 1 and f["text_offsets"][-1] == len(f["input_ids"])
            if "audio" in f:
                ok = ok and f["audio_offsets"][-1] == len(f["audio"])
            return ok
    except Exception as ex:  # noqa: BLE001
        print("not complete:", path, ex)
        return False


def test_interrupted(tmp, audio_dir):
    # a run slow enough to kill part-way: resampled stereo audio in every record
    rng = np.random.default_rng(3)
    write_wav(os.path.join(audio_dir, "long44.wav"), rng.integers(-9000, 9000, (44100 * 4, 2)), rate=44100)
    line = json.dumps({"messages": [
        {"role": "user", "content": [{"audio": "long44.wav"}]},
        {"role": "assistant", "content": [{"text": "ok", "speech_units": "<|audio_1|>"}]}]})
    killed = False
    for attempt in range(3):
        man = os.path.join(tmp, "slow.jsonl")
        with open(man, "w") as f:
            f.write((line + "\n") * (200 * 4 ** attempt))
        out = os.path.join(tmp, "out_killed")
        shutil.rmtree(out, ignore_errors=True)
        cmd = [S2S, "prep", "--manifest", man, "--tokenizer", LLM_TOK, "--tts-tokenizer", TTS_TOK,
               "--out", out, "--audio-root", audio_dir, "--shard-mb", "0.5", "--quiet"]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        seen = set()
        # No time limit here (the ctest TIMEOUT is the hang guard): on a busy machine the two shards come later.
        while proc.poll() is None:
            if os.path.isdir(out):
                final = [n for n in os.listdir(out) if n.endswith(".h5")]
                for n in final:  # a shard under its final name is complete the moment it appears
                    if n not in seen:
                        seen.add(n)
                        check(complete(os.path.join(out, n)), f"{n} visible before it was complete")
                if len(final) >= 2:
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    killed = True
                    break
            time.sleep(0.005)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if killed:
            break
    check(killed, "could not interrupt a prep run part-way")
    if killed:
        names = os.listdir(out)
        check("prep.json" not in names, "a killed run must not write prep.json")
        for n in names:
            if n.endswith(".h5"):
                check(complete(os.path.join(out, n)), f"after the kill {n} is incomplete")
        # the leftover .tmp is a crashed write: refused as an output without --overwrite, cleaned with it
        p = subprocess.run(cmd, capture_output=True, text=True)
        check(p.returncode == 1 and "--overwrite" in p.stderr, f"rerun into a killed output: {p.stderr!r}")

    # a run that fails part-way (the second manifest is a directory) removes its open shard and keeps the
    # completed ones, and writes no prep.json
    small = os.path.join(tmp, "small.jsonl")
    with open(small, "w") as f:
        f.write((line + "\n") * 12)
    out = os.path.join(tmp, "out_failed")
    p = prep([small, audio_dir], out, "--audio-root", audio_dir, "--shard-mb", "0.5", check_rc=1)
    check("read error" in p.stderr or "directory" in p.stderr, f"failing manifest: {p.stderr!r}")
    names = sorted(os.listdir(out))
    check("prep.json" not in names and not any(n.endswith(".tmp") for n in names),
          f"after a failure: {names}")
    check(any(n.endswith(".h5") for n in names), f"completed shards stay after a failure: {names}")
    for n in names:
        check(complete(os.path.join(out, n)), f"after a failure {n} is incomplete")


if __name__ == "__main__":
    main()

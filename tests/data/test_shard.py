"""Shards written by h5py per docs/shard-format.md load in s2s, value for value; damaged or malformed shards are
refused by `s2s inspect` with exit 1 and a message naming the file and the fault.

usage: python3 tests/data/test_shard.py S2S_BINARY BUILD_DIR   (from the repository root; ctest does this)
"""
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile

import h5py
import numpy as np

S2S = sys.argv[1] if len(sys.argv) > 1 else "build/s2s"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HAS_UNITS, HAS_SPK, HAS_EMOTION, HAS_TEACHER = 1, 2, 4, 8
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, flush=True)


def offsets(lengths):
    return np.concatenate([[0], np.cumsum(np.asarray(lengths, np.int64))]).astype(np.int64)


def random_sample(rng, kind, i):
    """A valid sample of `kind` as a dict of numpy arrays / None."""
    if kind == "instruct":
        n_audio, has_units, has_spk, has_teacher, has_emotion = i % 3, i % 4 != 1, i % 5 == 2, False, False
    elif kind == "align":
        n_audio, has_units, has_spk, has_teacher, has_emotion = 1 + (i % 4 == 3), False, False, i % 2 == 0, i % 3 != 0
    else:
        n_audio, has_units, has_spk, has_teacher, has_emotion = 0, True, i % 2 == 1, False, False
    n = n_audio + int(rng.integers(1, 30))
    ids = rng.integers(0, 151000, n).astype(np.int32)
    labels = np.where(rng.integers(0, 3, n) == 0, ids, -100).astype(np.int32)
    pos = rng.choice(n, n_audio, replace=False) if n_audio else []
    ids[pos], labels[pos] = -200, -100
    if kind == "align":  # a labelled continuation closes every stage-1 record
        tail = rng.integers(0, 151000, int(rng.integers(1, 6))).astype(np.int32)
        ids, labels = np.concatenate([ids, tail]), np.concatenate([labels, tail])
        n = len(ids)
    sample = dict(input_ids=ids, labels=labels, token_types=rng.integers(0, 2, n).astype(np.int8),
                  audios=[rng.integers(-32768, 32768, int(rng.integers(1, 3000))).astype(np.int16)
                          for _ in range(n_audio)],
                  units=rng.integers(151669, 168054, int(rng.integers(1, 200))).astype(np.int32) if has_units else None,
                  spk_emb=rng.standard_normal(512).astype(np.float32) if has_spk else None,
                  emotion=int(rng.integers(0, 8)) if has_emotion else None, teacher_ids=None, teacher_labels=None)
    if has_teacher:
        k = int((labels != -100).sum())
        t = rng.integers(0, 151000, k + int(rng.integers(1, 20))).astype(np.int32)
        tl = np.full(len(t), -100, np.int32)
        if k:
            tl[-k:] = t[-k:]
        sample["teacher_ids"], sample["teacher_labels"] = t, tl
    return sample


def write_shard(path, samples, kind="instruct", attrs=None, data=None, drop=(), ds_kwargs=None):
    """Writes `samples` following docs/shard-format.md. attrs / data override or add root attributes / datasets
    (to make broken shards); drop removes datasets; ds_kwargs passes chunking / compression to create_dataset."""
    n = len(samples)
    audios = [a for s in samples for a in s["audios"]]
    flags = np.array([(HAS_UNITS if s["units"] is not None else 0) | (HAS_SPK if s["spk_emb"] is not None else 0) |
                      (HAS_EMOTION if s["emotion"] is not None else 0) |
                      (HAS_TEACHER if s["teacher_ids"] is not None else 0) for s in samples], np.uint8)
    ds = {
        "text_offsets": offsets([len(s["input_ids"]) for s in samples]),
        "input_ids": np.concatenate([s["input_ids"] for s in samples]).astype(np.int32),
        "labels": np.concatenate([s["labels"] for s in samples]).astype(np.int32),
        "token_types": np.concatenate([s["token_types"] for s in samples]).astype(np.int8),
        "flags": flags,
    }
    if audios:
        ds["sample_audio_offsets"] = offsets([len(s["audios"]) for s in samples])
        ds["audio_offsets"] = offsets([len(a) for a in audios])
        ds["audio"] = np.concatenate(audios).astype(np.int16)
    if any(s["units"] is not None for s in samples):
        ds["unit_offsets"] = offsets([0 if s["units"] is None else len(s["units"]) for s in samples])
        ds["units"] = np.concatenate([s["units"] for s in samples if s["units"] is not None]).astype(np.int32)
    if any(s["teacher_ids"] is not None for s in samples):
        ds["teacher_offsets"] = offsets([0 if s["teacher_ids"] is None else len(s["teacher_ids"]) for s in samples])
        ds["teacher_ids"] = np.concatenate([s["teacher_ids"] for s in samples if s["teacher_ids"] is not None])
        ds["teacher_labels"] = np.concatenate([s["teacher_labels"] for s in samples if s["teacher_ids"] is not None])
    if any(s["spk_emb"] is not None for s in samples):
        ds["spk_emb"] = np.stack([np.zeros(512, np.float32) if s["spk_emb"] is None else s["spk_emb"]
                                  for s in samples])
    if any(s["emotion"] is not None for s in samples):
        ds["emotion"] = np.array([-1 if s["emotion"] is None else s["emotion"] for s in samples], np.int8)
    ds.update(data or {})
    a = {"format": "s2s-shard", "version": 1, "kind": kind, "num_samples": n, "sample_rate": 16000,
         "llm_tokenizer_sha256": hashlib.sha256(b"llm tokenizer.json").hexdigest(),
         "tts_tokenizer_sha256": hashlib.sha256(b"tts tokenizer.json").hexdigest(), "created_by": "test_shard.py"}
    a.update(attrs or {})
    with h5py.File(path, "w") as f:
        for k, v in a.items():
            if v is not None:
                f.attrs[k] = v
        for k, v in ds.items():
            if k not in drop:
                f.create_dataset(k, data=v, **(ds_kwargs or {}))


def inspect(path, *args):
    p = subprocess.run([S2S, "inspect", path, *args], capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def dump(path):
    rc, out, err = inspect(path, "--sample", "all", "--json")
    check(rc == 0, f"{path}: inspect --sample all --json failed: {err.strip()}")
    return json.loads(out) if rc == 0 else None


def same_values(path, samples, kind):
    d = dump(path)
    if d is None:
        return
    check(d["kind"] == kind and d["num_samples"] == len(samples), f"{path}: header {d['kind']} {d['num_samples']}")
    for i, (s, j) in enumerate(zip(samples, d["samples"])):
        where = f"{path} sample {i}"
        for k in ("input_ids", "labels", "token_types"):
            check(np.array_equal(np.asarray(j[k]), s[k]), f"{where}: {k} differs")
        check(len(j["audio"]) == len(s["audios"]) and
              all(np.array_equal(np.asarray(x, np.int16), y) for x, y in zip(j["audio"], s["audios"])),
              f"{where}: audio differs")
        for k in ("units", "teacher_ids", "teacher_labels"):
            check((j[k] is None) == (s[k] is None) and (s[k] is None or np.array_equal(np.asarray(j[k]), s[k])),
                  f"{where}: {k} differs")
        check((j["spk_emb"] is None) == (s["spk_emb"] is None) and
              (s["spk_emb"] is None or np.array_equal(np.asarray(j["spk_emb"], np.float32), s["spk_emb"])),
              f"{where}: spk_emb differs")
        check(j["emotion"] == s["emotion"], f"{where}: emotion {j['emotion']} vs {s['emotion']}")


def expect_fault(tmp, name, pattern, samples=None, kind="instruct", mutate=None, **kw):
    """Writes a shard (then optionally mutates the file), and expects inspect to exit 1 with a message naming the
    file and matching `pattern`."""
    path = os.path.join(tmp, name + ".h5")
    write_shard(path, samples, kind, **kw)
    if mutate:
        mutate(path)
    rc, out, err = inspect(path)
    ok = rc == 1 and path in err and re.search(pattern, err) and "Traceback" not in err and "HDF5-DIAG" not in err
    check(ok, f"{name}: expected exit 1 with /{pattern}/ naming the file, got rc={rc} stderr={err.strip()!r}")


def main():
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="s2s_test_shard_") as tmp:
        # 1. The example in the documentation writes a valid shard.
        doc = open(os.path.join(ROOT, "docs", "shard-format.md")).read()
        code = re.search(r"```python\n(.*?)```", doc, re.S).group(1)
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            scope = {}
            exec(code, scope)
        finally:
            os.chdir(cwd)
        ex = os.path.join(tmp, "example.h5")
        rc, out, err = inspect(ex)
        check(rc == 0 and "OK" in out, f"doc example: rc={rc} {err.strip()}")
        doc_samples = [dict(input_ids=np.array(s["input_ids"], np.int32), labels=np.array(s["labels"], np.int32),
                            token_types=np.array(s["token_types"], np.int8), audios=s["audios"],
                            units=np.array(s["units"], np.int32) if s["units"] else None, spk_emb=s["spk_emb"],
                            emotion=None, teacher_ids=None, teacher_labels=None) for s in scope["samples"]]
        same_values(ex, doc_samples, "instruct")

        # 2. Random shards of every kind, in several h5py storage variants, read back exactly.
        per_kind = {k: [random_sample(rng, k, i) for i in range(12)] for k in ("instruct", "align", "tts_pretrain")}
        for kind, samples in per_kind.items():
            path = os.path.join(tmp, f"{kind}.h5")
            write_shard(path, samples, kind)
            same_values(path, samples, kind)
        inst = per_kind["instruct"]
        variants = {
            "chunked_gzip": dict(ds_kwargs=dict(chunks=True, compression="gzip", maxshape=None)),
            "fixed_len_attrs": dict(attrs={"format": np.bytes_(b"s2s-shard"), "kind": np.bytes_(b"instruct"),
                                           "created_by": np.bytes_(b"fixed"), "version": np.int32(1)}),
            "big_endian_ids": dict(data={"input_ids": np.concatenate([s["input_ids"] for s in inst]).astype(">i4")}),
        }
        for name, kw in variants.items():
            path = os.path.join(tmp, name + ".h5")
            write_shard(path, inst, "instruct", **kw)
            same_values(path, inst, "instruct")
        rc, out, err = inspect(os.path.join(tmp, "instruct.h5"))
        check(rc == 0 and re.search(r"samples\s+12", out) and "audio" in out, f"summary: {out}")
        rc, out, err = inspect(os.path.join(tmp, "instruct.h5"), "--sample", "12")
        check(rc == 1 and "out of range" in err, f"--sample 12 of 12: rc={rc} {err.strip()}")

        # 3. Damaged and malformed shards.
        s = inst
        T = sum(len(x["input_ids"]) for x in s)
        n = len(s)

        def truncate(p):
            size = os.path.getsize(p)
            with open(p, "r+b") as f:
                f.truncate(size // 2)

        def garbage_all(p):
            with open(p, "wb") as f:
                f.write(np.random.default_rng(1).bytes(4096))

        def group_for_dataset(p):
            with h5py.File(p, "a") as f:
                del f["input_ids"]
                f.create_group("input_ids")

        def garbage_header(p):  # keep the signature, scramble the metadata behind it
            with open(p, "r+b") as f:
                f.seek(8)
                f.write(np.random.default_rng(2).bytes(2040))

        text_off = offsets([len(x["input_ids"]) for x in s])
        nonmono = text_off.copy()
        nonmono[3], nonmono[4] = nonmono[4], nonmono[3]
        past = text_off.copy()
        past[-1] += 5
        A = sum(len(x["audios"]) for x in s)
        amap = offsets([len(x["audios"]) for x in s])
        amap_out = amap.copy()
        amap_out[-1] = A + 3
        ids_extra_audio = np.concatenate([x["input_ids"] for x in s]).astype(np.int32)
        ids_extra_audio[text_off[0]] = -200  # sample 0 (no audios) gets a placeholder
        lab = np.concatenate([x["labels"] for x in s])
        ids_extra_audio_lab = lab.copy()
        ids_extra_audio_lab[text_off[0]] = -100
        shifted = np.concatenate([x["input_ids"] for x in s]).astype(np.int32)
        shifted_lab = np.roll(np.where(shifted >= 0, shifted, -100), 1).astype(np.int32)
        bad_types = np.concatenate([x["token_types"] for x in s])
        bad_types[2] = 2
        flags = np.array([HAS_UNITS if x["units"] is not None else 0 for x in s], np.uint8)
        flags[1] = flags[1] | HAS_SPK  # without an spk_emb dataset... (instruct sample 2 has one; drop it below)
        cases = [
            ("truncated", r"damaged or truncated", dict(mutate=truncate)),
            ("garbage", r"not an HDF5 file", dict(mutate=garbage_all)),
            ("garbage_header", r"damaged|truncated|cannot|missing", dict(mutate=garbage_header)),
            ("wrong_version", r"version 2 is not supported", dict(attrs={"version": 2})),
            ("wrong_format", r"'format' is 'hdf5-thing'", dict(attrs={"format": "hdf5-thing"})),
            ("no_format", r"missing root attribute 'format'", dict(attrs={"format": None})),
            ("no_num_samples", r"missing root attribute 'num_samples'", dict(attrs={"num_samples": None})),
            ("version_float", r"'version' is float64, expected an integer", dict(attrs={"version": 1.0})),
            ("bad_kind", r"'kind' = 'stage9'", dict(attrs={"kind": "stage9"})),
            ("bad_rate", r"'sample_rate' = 8000", dict(attrs={"sample_rate": 8000})),
            ("bad_hash", r"'llm_tokenizer_sha256'.*not a sha256", dict(attrs={"llm_tokenizer_sha256": "ABC"})),
            ("num_samples_off", r"'(text_offsets|flags)' has \d+ entries, expected \d+ \(num_samples",
             dict(attrs={"num_samples": n + 1})),
            ("missing_labels", r"missing dataset 'labels'", dict(drop=("labels",))),
            ("missing_flags", r"missing dataset 'flags'", dict(drop=("flags",))),
            ("half_units", r"missing dataset 'units' \(while 'unit_offsets'", dict(drop=("units",))),
            ("half_audio", r"missing dataset 'audio_offsets'", dict(drop=("audio_offsets",))),
            ("offsets_nonmonotonic", r"text_offsets\[4\] = \d+ < text_offsets\[3\]",
             dict(data={"text_offsets": nonmono})),
            ("offsets_past_end", r"text_offsets\[12\] = %d but there are %d entries in 'input_ids'" % (T + 5, T),
             dict(data={"text_offsets": past})),
            ("offsets_wrong_length", r"'text_offsets' has 12 entries, expected 13",
             dict(data={"text_offsets": text_off[:-1]})),
            ("offsets_first_nonzero", r"text_offsets\[0\] = 1", dict(data={"text_offsets": text_off + 1})),
            ("labels_float", r"'labels' has dtype float32, the schema requires int32",
             dict(data={"labels": lab.astype(np.float32)})),
            ("ids_int64", r"'input_ids' has dtype int64",
             dict(data={"input_ids": np.concatenate([x["input_ids"] for x in s]).astype(np.int64)})),
            ("audio_float", r"'audio' has dtype float32",
             dict(data={"audio": np.concatenate([a for x in s for a in x["audios"]]).astype(np.float32)})),
            ("flags_int8", r"'flags' has dtype int8, the schema requires uint8",
             dict(data={"flags": np.zeros(n, np.int8)})),
            ("ids_2d", r"'input_ids' has 2 dimensions", dict(data={"input_ids": np.zeros((T, 1), np.int32)})),
            ("spk_wrong_shape", r"'spk_emb' has shape \[12, 256\]", dict(data={"spk_emb": np.zeros((n, 256), np.float32)})),
            ("labels_short", r"'labels' has \d+ entries, expected %d" % T, dict(data={"labels": lab[:-1]})),
            ("audio_map_out_of_range", r"sample_audio_offsets\[12\] = %d but there are %d audios" % (A + 3, A),
             dict(data={"sample_audio_offsets": amap_out})),
            ("audio_offsets_past_end", r"audio_offsets\[%d\] = \d+ but there are \d+ samples in 'audio'" % A,
             dict(data={"audio_offsets": offsets([len(a) for x in s for a in x["audios"]]) * 2})),
            ("placeholders", r"sample 0: input_ids has 1 audio placeholders \(-200\) but the sample has 0 audios",
             dict(data={"input_ids": ids_extra_audio, "labels": ids_extra_audio_lab})),
            ("labels_shifted", r"sample \d+: labels\[\d+\] = \d+ but input_ids", dict(data={"labels": shifted_lab})),
            ("token_type_2", r"sample \d+: token_types\[\d+\] = 2", dict(data={"token_types": bad_types})),
            ("reserved_flag", r"sample 0: flags = 0x80 sets reserved bits",
             dict(data={"flags": np.array([0x80] + [0] * (n - 1), np.uint8)})),
            ("flag_spk_without_dataset", r"sample 1: flags sets HAS_SPK_EMB but the shard has no dataset 'spk_emb'",
             dict(data={"flags": flags}, drop=("spk_emb",))),
            ("flag_units_wrong", r"sample 0: flags clears HAS_UNITS but the sample has 'units'",
             dict(data={"flags": np.zeros(n, np.uint8)})),
            ("not_a_dataset", r"'input_ids' is not a dataset", dict(mutate=group_for_dataset)),
        ]
        for name, pattern, kw in cases:
            expect_fault(tmp, name, pattern, samples=s, **kw)

        al = per_kind["align"]
        t_lab = np.concatenate([x["teacher_labels"] for x in al if x["teacher_ids"] is not None])
        t_lab[:] = -100
        expect_fault(tmp, "teacher_count", r"sample 0: teacher_labels marks 0 positions but labels marks [1-9]",
                     samples=[x for x in al], kind="align", data={"teacher_labels": t_lab})
        emo = np.array([-1 if x["emotion"] is None else x["emotion"] for x in al], np.int8)
        emo[0] = 3  # sample 0 has no emotion but now a value: flags disagree
        expect_fault(tmp, "emotion_flag", r"sample 0: flags clears HAS_EMOTION", samples=al, kind="align",
                     data={"emotion": emo})
        expect_fault(tmp, "align_without_audio", r"align sample needs at least one audio",
                     samples=per_kind["instruct"], kind="align")
        expect_fault(tmp, "missing_file", r"no such file", samples=s, mutate=os.remove)

    if failures:
        print(f"test_shard.py: {len(failures)} failures")
        sys.exit(1)
    print("test_shard.py: OK")


if __name__ == "__main__":
    main()

"""A Python rendering of OpenS2S's `process_dataset` (CASIA-LM/OpenS2S, src/instruction_dataset.py), written from
a reading of that code, plus the record forms `s2s prep` adds (docs/prep.md). tests/data/test_prep.py compares
the shards `s2s prep` writes with what this module produces, token for token.

What OpenS2S does, and this module reproduces:
- every piece is a separate `tokenizer.encode(...)` call, so BPE never merges across pieces;
- a system turn "You are a helpful assistant." opens every sample, unlabelled;
- a turn opens with enc("<|im_start|>") + enc(role) + enc("\\n"), plus enc("<think></think>") on assistant turns
  unless enable_thinking; the opener is never labelled;
- items are tested in the order audio, speech_units, text; a falsy item is skipped;
- user audio: enc("<|im_audio_start|>") + [-200] + enc("<|im_audio_end|>"), unlabelled (assistant audio: error);
- assistant speech: enc("<|im_tts_start|>" + text + "<|im_tts_end|>") as one string, token_type 1, labelled;
  units = tts.encode(speech_units) + [tts.eos_token_id] (user speech_units: error);
- text: enc(text), labelled on assistant turns only (other roles: error);
- a turn closes with enc("<|im_end|>\\n"), labelled on assistant turns;
- samples with an audio shorter than 8000 samples (0.5 s at 16 kHz) or unreadable are dropped (check_audio).

The s2s extensions, marked EXTENSION below: a leading "system" message replaces the fixed system prompt (OpenS2S
raises NotImplementedError on it); a string content is one text item (OpenS2S raises); speech_units may be a
list of unit indices. Stage-1 and stage-2a records are defined by docs/prep.md.
"""

AUDIO_TOKEN_INDEX = -200
IGNORE_INDEX = -100
SYSTEM_PROMPT = "You are a helpful assistant."
ALIGN_INSTRUCTION = "Continue the following sentence in a coherent style: "
ALIGN_EMOTION_INSTRUCTION = "Continue the following sentence based on the conveyed emotion tone in a coherent style: "


class Sequence:
    """input_ids / labels / token_types built piece by piece."""

    def __init__(self, tok, enable_thinking=False):
        self.tok, self.enable_thinking = tok, enable_thinking
        self.input_ids, self.labels, self.token_types = [], [], []

    def add(self, ids, labelled, token_type=0):
        self.input_ids += ids
        self.labels += list(ids) if labelled else [IGNORE_INDEX] * len(ids)
        self.token_types += [token_type] * len(ids)

    def piece(self, text, labelled=False, token_type=0):
        self.add(self.tok.encode(text), labelled, token_type)

    def open_turn(self, role):
        for p in ("<|im_start|>", role, "\n"):
            self.piece(p)
        if role == "assistant" and not self.enable_thinking:
            self.piece("<think></think>")

    def close_turn(self, role):
        self.piece("<|im_end|>\n", labelled=role == "assistant")

    def system(self, prompt):
        self.open_turn("system")
        if prompt:
            self.piece(prompt)
        self.close_turn("system")


def tts_units(tts, units):
    if isinstance(units, list):  # EXTENSION: unit indices
        offset = tts.convert_tokens_to_ids("<|audio_0|>")
        return [offset + u for u in units] + [tts.eos_token_id]
    return tts.encode(units) + [tts.eos_token_id]


def process_dataset(record, tok, tts=None, enable_thinking=False):
    """OpenS2S process_dataset for one {"messages": [...]} record. Returns a dict with input_ids, labels,
    token_types, audio_paths, speech_units (one list per speech item) and spk_emb_paths."""
    seq = Sequence(tok, enable_thinking)
    audio_paths, speech_units, spk_emb_paths = [], [], []
    messages = list(record["messages"])
    if messages and messages[0]["role"] == "system":  # EXTENSION: a custom system prompt
        first = messages.pop(0)
        content = first["content"]
        seq.open_turn("system")
        for item in ([{"text": content}] if isinstance(content, str) else content):
            if item.get("text"):
                seq.piece(item["text"])
        seq.close_turn("system")
    else:
        seq.system(SYSTEM_PROMPT)
    for message in messages:
        role, content = message["role"], message["content"]
        assert role in ("user", "assistant")
        seq.open_turn(role)
        if isinstance(content, str):  # EXTENSION: one text item
            content = [{"text": content}]
        for item in content:
            if item.get("audio"):
                assert role == "user"
                seq.piece("<|im_audio_start|>")
                seq.add([AUDIO_TOKEN_INDEX], labelled=False)
                seq.piece("<|im_audio_end|>")
                audio_paths.append(item["audio"])
            elif item.get("speech_units"):
                assert role == "assistant" and item.get("text") and tts is not None
                seq.piece("<|im_tts_start|>" + item["text"] + "<|im_tts_end|>", labelled=True, token_type=1)
                speech_units.append(tts_units(tts, item["speech_units"]))
                spk_emb_paths.append(item.get("spk_emb") or "")
            elif item.get("text"):
                seq.piece(item["text"], labelled=role == "assistant")
        seq.close_turn(role)
    return dict(input_ids=seq.input_ids, labels=seq.labels, token_types=seq.token_types, audio_paths=audio_paths,
                speech_units=speech_units, spk_emb_paths=spk_emb_paths)


def align_record(record, tok, enable_thinking=False):
    """Stage-1 {"audio", "continuation"[, "transcript", "emotion", "instruction"]} (docs/prep.md): the student is the
    OpenS2S dialogue user [instruction, audio] -> assistant [continuation]; the teacher replaces the audio by the
    transcript, the user text being one piece instruction + transcript."""
    instruction = record.get("instruction")
    if instruction is None:
        instruction = ALIGN_EMOTION_INSTRUCTION if record.get("emotion") is not None else ALIGN_INSTRUCTION
    student = process_dataset({"messages": [
        {"role": "user", "content": [{"text": instruction}, {"audio": record["audio"]}]},
        {"role": "assistant", "content": [{"text": record["continuation"]}]}]}, tok, None, enable_thinking)
    out = dict(student)
    if record.get("transcript"):
        teacher = process_dataset({"messages": [
            {"role": "user", "content": [{"text": instruction + record["transcript"]}]},
            {"role": "assistant", "content": [{"text": record["continuation"]}]}]}, tok, None, enable_thinking)
        out["teacher_ids"], out["teacher_labels"] = teacher["input_ids"], teacher["labels"]
    return out


def tts_record(record, tts):
    """Stage-2a {"text", "units"}: TTS-tokenizer text ids, unlabelled, and units + EOS."""
    ids = tts.encode(record["text"])
    return dict(input_ids=ids, labels=[IGNORE_INDEX] * len(ids), token_types=[0] * len(ids),
                speech_units=[tts_units(tts, record["units"])])
